# Drift benchmark: ours vs Evidently's DataDriftPreset vs a scipy loop (benchmarks/drift).
# Included by the top-level Makefile; uses its PY and install target. Evidently gets its own
# venv, never $(VENV): its dependency closure is large and holds pandas below 3
# (see requirements-evidently.txt); a changed requirements file rebuilds it.

EVIDENTLY_VENV   ?= $(HOME)/.cache/modelops/bench/evidently-venv
BENCH_DRIFT_ARGS ?=

##@ Benchmarks: drift

$(EVIDENTLY_VENV)/.installed: benchmarks/drift/requirements-evidently.txt
	python3 -m venv $(EVIDENTLY_VENV)
	$(EVIDENTLY_VENV)/bin/pip install --quiet --upgrade pip
	$(EVIDENTLY_VENV)/bin/pip install --quiet -r $<
	touch $@

.PHONY: bench-drift
bench-drift: install $(EVIDENTLY_VENV)/.installed ## Ours vs Evidently vs scipy, 10k/100k/1M rows (BENCH_DRIFT_ARGS=--quick: 10k/100k); writes benchmarks/drift/results.md.
	$(PY) benchmarks/drift/run.py --evidently-python $(EVIDENTLY_VENV)/bin/python $(BENCH_DRIFT_ARGS)

.PHONY: bench-drift-fidelity
bench-drift-fidelity: install $(EVIDENTLY_VENV)/.installed ## Verdict fidelity vs Evidently on real and synthetic shifts (BENCH_DRIFT_ARGS=--quick: fewer seeds); writes benchmarks/drift/fidelity.md.
	$(PY) benchmarks/drift/fidelity.py --evidently-python $(EVIDENTLY_VENV)/bin/python $(BENCH_DRIFT_ARGS)
