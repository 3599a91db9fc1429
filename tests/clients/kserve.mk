# The KServe Python client, in a venv of its own (tests/clients/requirements-kserve.txt says
# why), for the real-client tests of the model server. Included by the top-level Makefile;
# `make test` and `make test-unit` build it, and export its interpreter to the tests.

KSERVE_VENV ?= $(HOME)/.cache/modelops/kserve-client-venv
export MODELOPS_KSERVE_PYTHON := $(KSERVE_VENV)/bin/python

##@ Test clients

$(KSERVE_VENV)/.installed: tests/clients/requirements-kserve.txt
	python3 -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/pip install --quiet --upgrade pip
	$(KSERVE_VENV)/bin/pip install --quiet -r $<
	touch $@

.PHONY: kserve-client
kserve-client: $(KSERVE_VENV)/.installed ## Build the KServe client venv the server protocol tests use.
