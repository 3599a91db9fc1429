# modelops — run `make help` for the list of targets.
SHELL := bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PY          := $(VENV)/bin/python
K8S_VERSION ?= 1.36.1
TOOLS_DIR   ?= $(HOME)/.cache/modelops/tools/k8s-v$(K8S_VERSION)/bin
STATE_DIR   ?= .k8s-local
PYTEST_ARGS ?=
export MODELOPS_TOOLS_DIR := $(TOOLS_DIR)

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	  /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

.PHONY: install
install: $(VENV)/.installed ## Create .venv and install the project with its dev extra.

.PHONY: tools
tools: ## Build (or reuse cached) Kubernetes, etcd, KWOK and Prometheus binaries.
	bash hack/build-tools.sh all

.PHONY: fmt
fmt: install ## Format the code.
	$(VENV)/bin/ruff format operator harness tests benchmarks
	$(VENV)/bin/ruff check --fix operator harness tests benchmarks

.PHONY: lint
lint: install ## ruff, mypy --strict, import-linter layer contracts.
	$(VENV)/bin/ruff check operator harness tests benchmarks examples
	$(VENV)/bin/ruff format --check operator harness tests benchmarks examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

-include hack/generate.mk
-include hack/install.mk
-include benchmarks/serving/bench.mk
-include benchmarks/drift/bench.mk
-include tests/clients/kserve.mk
-include benchmarks/operator/bench.mk

##@ Tests

.PHONY: test
test: install tools kserve-client system-packages real-nodes-tools images ## Run every test: unit, cluster tests on a local control plane, built images on real nodes.
	$(PY) -m pytest $(PYTEST_ARGS)

.PHONY: test-existing
test-existing: install tools ## The cluster tests against the cluster $$KUBECONFIG names (kind, …): the local-harness ones are skipped, saying why.
	@test -n "$$KUBECONFIG" || { echo "KUBECONFIG must name the cluster to test"; exit 1; }
	$(PY) -m pytest -m cluster --cluster=existing tests/cluster $(PYTEST_ARGS)

.PHONY: test-existing-local
test-existing-local: ## `make test-existing` against a cluster started here (cluster-up, the examples' images loaded), then stopped.
	bash hack/test-existing.sh

.PHONY: test-unit
test-unit: install tools kserve-client base-packages ## Run the unit tests only (no cluster; the helm, kstatus and promtool tests need `make tools`).
	$(PY) -m pytest -m 'not cluster' $(PYTEST_ARGS)

##@ Local cluster

REAL_NODES ?= 2

.PHONY: cluster-up
cluster-up: install tools system-packages real-nodes-tools images ## Start the local control plane (a KWOK node and $(REAL_NODES) real nodes: kubelet + containerd) in $(STATE_DIR).
	$(PY) -m harness.cluster up --state-dir $(STATE_DIR) --real-nodes $(REAL_NODES)

.PHONY: cluster-down
cluster-down: ## Stop the local control plane and everything it started.
	$(PY) -m harness.cluster down --state-dir $(STATE_DIR)

.PHONY: cluster-load
cluster-load: ## Import built IMAGES="…" into the real nodes of the cluster in $(STATE_DIR), as `kind load` does.
	$(PY) -m harness.cluster load --state-dir $(STATE_DIR) $(IMAGES)

.PHONY: cluster-status
cluster-status: ## Show the processes of the local control plane.
	$(PY) -m harness.cluster status --state-dir $(STATE_DIR)

##@ Operator

.PHONY: run
run: install ## Run the operator against $KUBECONFIG, watching all namespaces.
	$(PY) -m modelops --all-namespaces

##@ Demo

.PHONY: demo
demo: install tools system-packages real-nodes-tools images ## The whole lifecycle on a local cluster with real nodes, narrated; leaves it running.
	$(PY) -m harness.demo up --state-dir $(STATE_DIR)

.PHONY: demo-down
demo-down: ## Stop everything `make demo` started.
	$(PY) -m harness.demo down --state-dir $(STATE_DIR)

##@ Images and real nodes (docs/real-nodes.md; need root; `make images` is under Install)

.PHONY: base-packages
base-packages: ## Install the Debian packages the unit tests need (openssl, util-linux, lua5.4).
	bash hack/system-packages.sh base

.PHONY: system-packages
system-packages: ## Install the Debian packages the tests, images and real nodes need (apt-get, only missing ones).
	bash hack/system-packages.sh

.PHONY: test-images
test-images: install images ## Run the built images' entrypoints under podman (tests/harness/test_images.py).
	$(PY) -m pytest tests/harness/test_images.py $(PYTEST_ARGS)

.PHONY: real-nodes-tools
real-nodes-tools: ## Build (or reuse cached) kubelet, kube-proxy and CoreDNS from their Go modules.
	bash hack/build-tools.sh kubelet coredns

.PHONY: test-real-nodes
test-real-nodes: install tools real-nodes-tools images ## Pods from the built images on real nodes (tests/cluster/test_real_nodes.py).
	$(PY) -m pytest tests/cluster/test_real_nodes.py $(PYTEST_ARGS)
