# Installing modelops: the Helm chart, the kustomize manifests, the container images, and the
# tools that check them (helm, kstatus). Included by the top-level Makefile, which defines
# TOOLS_DIR.

IMAGE_REGISTRY ?= ghcr.io/modelops
CHART          := helm/modelops

##@ Install

.PHONY: helm kstatus helm-lint helm-template manifests images

helm: ## Build (or reuse) helm from its Go module into the tools directory.
	bash hack/build-tools.sh helm

kstatus: ## Build (or reuse) hack/kstatus, the kstatus/Flux health checker used by the tests.
	bash hack/build-tools.sh kstatus

helm-lint: helm ## Lint the chart with every ci/*-values.yaml scenario (strict).
	@set -e; for v in $(CHART)/ci/*-values.yaml; do \
	  echo "helm lint --strict -f $$v"; $(TOOLS_DIR)/helm lint --strict $(CHART) -f $$v; \
	done

helm-template: helm ## Render the chart's default install (release modelops, namespace modelops-system).
	$(TOOLS_DIR)/helm template modelops $(CHART) --namespace modelops-system

manifests: ## Render manifests/default into dist/install.yaml (kubectl apply --server-side -f).
	mkdir -p dist
	$(TOOLS_DIR)/kubectl kustomize manifests/default > dist/install.yaml
	@echo "dist/install.yaml: $$(grep -c '^kind:' dist/install.yaml) objects"

images: system-packages ## Build the operator, trainer and server images with podman on a Debian base (cached; docs/real-nodes.md).
	IMAGE_REGISTRY=$(IMAGE_REGISTRY) bash hack/images.sh
