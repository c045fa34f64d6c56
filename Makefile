# Developer entry points for airflow-provider-bctrl. Quickstart: `make demo`, then `make test`.
#
# Everything runs inside .venv, which is created from `python3` on first use and re-installed when
# pyproject.toml changes. Nothing here needs anything but python3, make and, for the tests, Debian's
# chromium (browser tests) and curl (benchmark smoke tests), which `make system-deps` installs as root.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules --no-print-directory

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# Re-install when the dependencies change; the stamp lives inside the venv so `rm -rf .venv` resets both.
STAMP := $(VENV)/.installed-stamp
# The distributed (CeleryExecutor) leg has its own venv, so its pins (celery<5.7, the amazon provider,
# moto) never touch .venv's resolution. Re-installed when requirements/celery.txt or pyproject.toml change.
CELERY_VENV := .venv-celery
CELERY_PY := $(CELERY_VENV)/bin/python
CELERY_STAMP := $(CELERY_VENV)/.installed-stamp
SITE_DIR ?= site
CHROMIUM := /usr/bin/chromium
# Type-checked paths: the package, the example DAGs and the scripts, whichever exist yet.
MYPY_PATHS ?= $(wildcard airflow_provider_bctrl example_dags scripts)
PYTEST_ARGS ?=
# DISTRIBUTED=0 leaves test-distributed out of `make test` (.ci/run runs it as a leg of its own).
DISTRIBUTED ?= 1
BENCH_ARGS ?=
# pip's "find-links location is ignored" chatter from a machine-wide config: hidden; errors still show.
PIP_FILTER := { grep -v -e 'is ignored: it is neither a file nor a directory' || true; }

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_NO_INPUT := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help venv system-deps browser-deps test lint format typecheck unit docs demo bench clean distclean \
  venv-celery celery-system-deps test-distributed demo-celery

help: ## Show the targets
	@echo "Usage: make <target>"
	@echo
	@awk -F ':.*## ' '/^[a-z-]+:.*## / { printf "  %-18s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

# ---------------------------------------------------------------------------------------- venv

$(STAMP): pyproject.toml
	@if ! [ -x "$(PY)" ] || ! "$(PY)" -c 'import sys' 2>/dev/null; then \
	  command -v "$(PYTHON)" >/dev/null || { echo "ERROR: $(PYTHON) not found; install Python 3.10+." >&2; exit 1; }; \
	  echo "==> Creating $(VENV) with $$($(PYTHON) --version 2>&1)"; \
	  rm -rf "$(VENV)"; \
	  "$(PYTHON)" -m venv "$(VENV)"; \
	fi
	@echo "==> Installing airflow-provider-bctrl[test,docs] into $(VENV) (first time: a few minutes)"
	@start=$$SECONDS; \
	"$(PY)" -m pip install --quiet --progress-bar off --upgrade pip 2>&1 | $(PIP_FILTER); \
	PYTHONWARNINGS="ignore:Editable installation" \
	  "$(PY)" -m pip install --quiet --progress-bar off -e ".[test,docs]" 2>&1 | $(PIP_FILTER); \
	echo "==> $(VENV) ready ($$((SECONDS - start)) s)"
	@touch "$@"

venv: $(STAMP) ## Create or update .venv (done automatically by the other targets)

$(CELERY_STAMP): requirements/celery.txt pyproject.toml
	@if ! [ -x "$(CELERY_PY)" ] || ! "$(CELERY_PY)" -c 'import sys' 2>/dev/null; then \
	  echo "==> Creating $(CELERY_VENV) with $$($(PYTHON) --version 2>&1)"; \
	  rm -rf "$(CELERY_VENV)"; \
	  "$(PYTHON)" -m venv "$(CELERY_VENV)"; \
	fi
	@echo "==> Installing requirements/celery.txt + the checkout into $(CELERY_VENV) (first time: a few minutes)"
	@start=$$SECONDS; \
	"$(CELERY_PY)" -m pip install --quiet --progress-bar off --no-deps -r requirements/celery.txt 2>&1 | $(PIP_FILTER); \
	PYTHONWARNINGS="ignore:Editable installation" \
	  "$(CELERY_PY)" -m pip install --quiet --progress-bar off --no-deps -e . 2>&1 | $(PIP_FILTER); \
	"$(CELERY_PY)" -m pip check >/dev/null || { "$(CELERY_PY)" -m pip check >&2; exit 1; }; \
	echo "==> $(CELERY_VENV) ready ($$((SECONDS - start)) s)"
	@touch "$@"

venv-celery: $(CELERY_STAMP) ## Create or update .venv-celery (the distributed leg's venv)

# ----------------------------------------------------------------------------- browser tests

system-deps: ## Install the Debian packages the tests use: chromium (UI tests), curl (benchmark smoke tests); root only
	@missing=""; \
	[ -x "$(CHROMIUM)" ] || missing="chromium"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	if [ -z "$$missing" ]; then \
	  echo "==> system packages: chromium ($(CHROMIUM)) and curl are installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "==> Installing Debian packages for the tests (apt-get):$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq; \
	  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 $$missing >/dev/null; \
	  [ -x "$(CHROMIUM)" ] || { echo "ERROR: apt-get finished but $(CHROMIUM) is missing" >&2; exit 1; }; \
	  command -v curl >/dev/null || { echo "ERROR: apt-get finished but curl is missing" >&2; exit 1; }; \
	  echo "==> installed:$$missing"; \
	else \
	  echo "NOTE:$$missing missing and this is not root (or not Debian), so nothing was installed."; \
	  echo "      The tests that need them will fail until you run: sudo apt-get install$$missing"; \
	fi

browser-deps: system-deps ## The same as system-deps (its former name)

celery-system-deps: ## Install the Debian packages of the distributed leg: postgresql, redis-server; root only
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="postgresql"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	if [ -z "$$missing" ]; then \
	  echo "==> system packages: postgresql and redis-server are installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "==> Installing Debian packages for the distributed leg (apt-get):$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq; \
	  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 $$missing >/dev/null; \
	  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { echo "ERROR: apt-get finished but postgresql is missing" >&2; exit 1; }; \
	  command -v redis-server >/dev/null || { echo "ERROR: apt-get finished but redis-server is missing" >&2; exit 1; }; \
	  echo "==> installed:$$missing"; \
	else \
	  echo "NOTE:$$missing missing and this is not root (or not Debian), so nothing was installed."; \
	  echo "      The distributed leg will fail until you run: sudo apt-get install$$missing"; \
	fi

# ------------------------------------------------------------------------------------ checks

test: system-deps $(STAMP) ## Everything CI runs: lint, typecheck, all tests (the distributed leg too), docs build
	@failed=(); summary=(); \
	steps=(lint typecheck unit); [ "$(DISTRIBUTED)" = 0 ] || steps+=(test-distributed); steps+=(docs); \
	for step in "$${steps[@]}"; do \
	  echo; echo "==================== make $$step"; \
	  start=$$SECONDS; \
	  if $(MAKE) $$step; then status=ok; else status=FAILED; failed+=("$$step"); fi; \
	  summary+=("$$(printf '  %-16s %-7s %5ss' "$$step" "$$status" "$$((SECONDS - start))")"); \
	done; \
	echo; echo "==================== summary"; printf '%s\n' "$${summary[@]}"; \
	if [ $${#failed[@]} -gt 0 ]; then echo "make test: FAILED: $${failed[*]}"; exit 1; fi; \
	echo "make test: all checks passed"

lint: $(STAMP) ## ruff check + ruff format --check
	"$(BIN)/ruff" check .
	"$(BIN)/ruff" format --check .

format: $(STAMP) ## Apply ruff's fixes and formatting
	"$(BIN)/ruff" check --fix .
	"$(BIN)/ruff" format .

typecheck: $(STAMP) ## mypy
	"$(BIN)/mypy" $(MYPY_PATHS)

unit: $(STAMP) ## pytest in .venv: every test but the distributed leg; PYTEST_ARGS="-k x" to narrow
	@rc=0; "$(PY)" -m pytest -m "not distributed" $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "ERROR: pytest collected no tests (exit 5); that counts as a failure." >&2; fi; \
	exit $$rc

test-distributed: celery-system-deps $(CELERY_STAMP) ## The CeleryExecutor test (PostgreSQL, Redis, S3, 2 workers) in .venv-celery
	@start=$$SECONDS; rc=0; \
	"$(CELERY_PY)" -m pytest -m distributed tests/distributed -p no:cacheprovider -q -s -rA $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "ERROR: pytest collected no distributed test (exit 5)." >&2; fi; \
	echo "==> test-distributed exited $$rc after $$((SECONDS - start)) s"; \
	exit $$rc

docs: $(STAMP) ## mkdocs build --strict into ./site
	"$(BIN)/mkdocs" build --strict --clean --site-dir "$(SITE_DIR)"
	@echo "==> Docs built: $(SITE_DIR)/index.html"

# ------------------------------------------------------------------------------ run things

demo: $(STAMP) ## Upload and collect a file against a local BCTRL emulator
	@"$(PY)" scripts/demo.py

demo-celery: celery-system-deps $(CELERY_STAMP) ## Airflow on CeleryExecutor here (2 workers, PostgreSQL, Redis, S3): 4 runs, then stop
	@"$(CELERY_PY)" scripts/demo_celery.py

bench: $(STAMP) ## The benchmarks (docs/performance.md); BENCH_ARGS=--quick for a one-minute smoke run
	@"$(PY)" benchmarks/run.py $(BENCH_ARGS)

clean: ## Remove build output and caches (keeps .venv)
	rm -rf "$(SITE_DIR)" build dist .pytest_cache .mypy_cache .ruff_cache *.egg-info
	find . \( -path ./$(VENV) -o -path ./$(CELERY_VENV) \) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean ## clean, and remove .venv and .venv-celery too
	rm -rf "$(VENV)" "$(CELERY_VENV)"
