# Generated files: the CRDs (crds/), their Helm copies (helm/modelops/templates/crds/) and the
# API reference (docs/api.md), all from the pydantic models in operator/modelops/api/.
# Included by the top-level Makefile.

##@ Generated files

.PHONY: generate verify-generated

generate: ## Regenerate CRDs, Helm CRD templates and docs/api.md from operator/modelops/api
	.venv/bin/python -m modelops.api.crdgen

verify-generated: ## Fail if any generated file is stale (what CI runs; changes nothing)
	.venv/bin/python -m modelops.api.crdgen --check
