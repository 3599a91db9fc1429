# Serving benchmark: the reference model server vs MLServer (benchmarks/serving).
# Included by the top-level Makefile; uses its PY and install target. run.py builds MLServer's
# own venv (~/.cache/modelops/bench/mlserver-venv) from requirements-mlserver.txt on first use.

BENCH_SERVING_ARGS ?=

##@ Benchmarks: serving

.PHONY: bench-serving
bench-serving: install ## Model server vs MLServer (~5 min; BENCH_SERVING_ARGS=--quick: ~1 min); writes benchmarks/serving/results.md.
	$(PY) benchmarks/serving/run.py $(BENCH_SERVING_ARGS)
