# tenantflow — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml dev/pyproject.toml | sha256sum | cut -c1-12)
PYTEST_ARGS ?=

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml dev/pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,bench,dev]' -e ./dev
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## create .venv with the package, its test/bench/dev extras and dev/ (the dev tooling)

sysdeps: ## Debian packages the project needs (node runtime, mmdebstrap, bubblewrap; Go if missing)
	bash hack/install-system-deps.sh

binaries: venv sysdeps ## build the control plane from Go modules (cached in ~/.cache/tenantflow)
	$(BIN)/tenantflow-dev-cluster build

images: binaries ## the operator, sandbox and pause images as OCI archives (no registry, cached)
	$(BIN)/tenantflow-dev-cluster images

test: binaries ## all of it: unit + integration + e2e against a local control plane
	@set -o pipefail; $(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; rc=0; fi; exit $$rc

unit: venv ## only the fast tests: no cluster, no network (< 30 s)
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

e2e: binaries ## integration + e2e against the local control plane and its node
	$(BIN)/python -m pytest -m "not unit" $(PYTEST_ARGS)

demo: binaries ## local control plane + operator + example tenants and workflows
	$(BIN)/python hack/demo.py

down: venv ## stop the local control plane
	$(BIN)/tenantflow-dev-cluster down

lint: venv ## ruff, mypy --strict and the layering contracts (.importlinter)
	$(BIN)/ruff check operator dev tests e2e bench hack conftest.py
	$(BIN)/ruff format --check operator dev tests e2e bench hack conftest.py
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: venv ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix operator dev tests e2e bench hack conftest.py
	$(BIN)/ruff format operator dev tests e2e bench hack conftest.py

bench: venv ## benchmarks, written to bench/results/*.json
	$(BIN)/python -m bench

bench-peers: binaries ## tenantflow vs Temporal and DBOS, and the API server's ceiling (builds the peers once)
	$(BIN)/python -m bench peers

chaos: binaries ## the fault-injection and isolation suite, long: >= 1,000 faults
	CHAOS_MIN_FAULTS=$${CHAOS_MIN_FAULTS:-1000} CHAOS_SECONDS=$${CHAOS_SECONDS:-600} \
	CHAOS_RATE=$${CHAOS_RATE:-0.1} $(BIN)/python -m pytest e2e/chaos -s $(PYTEST_ARGS)

crds: venv ## regenerate crds/ from the pydantic models
	$(BIN)/python -m tenantflow.api.generate crds charts/tenantflow/crds

containerfiles: venv ## regenerate the Containerfiles from the image definitions (dev/.../imagedefs.py)
	$(BIN)/python -m tenantflow_dev.devcluster.containerfiles

api-snapshot: venv ## record the CRDs' fields in tests/data/api-snapshot (refuses a removal without conversion)
	$(BIN)/python -m tenantflow.api.snapshot tests/data/api-snapshot

release: binaries ## build a release into dist/ (images, chart, CRDs, SHA256SUMS); RELEASE_TAG=1 also tags it
	$(BIN)/python hack/release.py build $(if $(filter 1,$(RELEASE_TAG)),--tag) \
	  $(if $(filter 1,$(ALLOW_DIRTY)),--allow-dirty)

kind-e2e: venv ## the e2e suite on a kind cluster (needs Docker and kind)
	bash hack/kind-e2e.sh

.PHONY: help venv sysdeps binaries images test unit e2e demo down lint fmt bench bench-peers chaos crds containerfiles api-snapshot release kind-e2e
