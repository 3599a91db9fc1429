# Operator benchmark: modelops vs a null operator vs a minimal kopf operator (benchmarks/operator).
# Included by the top-level Makefile; uses its PY, install and tools targets. Every contender
# runs from the project venv (kopf and the kubernetes client are the operator's own
# dependencies), on a local control plane the runner starts and stops itself.

BENCH_OPERATOR_ARGS ?=

##@ Benchmarks: operator

.PHONY: bench-operator
bench-operator: install tools ## modelops vs null vs minimal kopf operator: throughput, resync, Model scale, memory, soak (BENCH_OPERATOR_ARGS=--quick: 200 runs); writes benchmarks/operator/results.md.
	$(PY) benchmarks/operator/run.py $(BENCH_OPERATOR_ARGS)
