# Installing modelops: the Helm chart, the kustomize manifests, the container images, and the
# tools that check them (helm, kstatus). Included by the top-level Makefile, which defines
# TOOLS_DIR.

CONTAINER_TOOL ?= podman
IMAGE_REGISTRY ?= ghcr.io/modelops
IMAGE_TAG      ?= 0.1.0
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

images: ## Build the operator, trainer and server images (needs $(CONTAINER_TOOL); none here).
	@set -e; for i in operator trainer server; do \
	  $(CONTAINER_TOOL) build -f images/Containerfile --target $$i \
	    --build-arg VERSION=$(IMAGE_TAG) --build-arg REVISION=$$(git rev-parse HEAD) \
	    -t $(IMAGE_REGISTRY)/$$i:$(IMAGE_TAG) . ; \
	done
