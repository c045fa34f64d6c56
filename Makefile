# Developer entry points for airflow-provider-bctrl. Quickstart: `make demo`, then `make test`.
#
# Everything runs inside .venv, which is created from `python3` on first use and re-installed when
# pyproject.toml changes. Nothing here needs anything but python3, make and, for the tests, Debian's
# chromium (browser tests), curl and node (benchmark smoke tests), which `make system-deps` installs as root.

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
# Supported Airflow lines (docs/installation.md); each has a pinned dependency set in constraints/.
# .venv is the newest line's; `make test-matrix AIRFLOW=<line>` builds .venv-airflow-<line> for another.
AIRFLOW_LINES := 2.11 3.0 3.1 3.2 3.3
NEWEST_AIRFLOW := 3.3
AIRFLOW ?= $(NEWEST_AIRFLOW)
CONSTRAINTS := constraints/airflow-$(NEWEST_AIRFLOW).txt
# What a non-newest leg runs: everything but the browser and full-deployment tests (their markers in
# pyproject.toml say why), except the one browser check of the connection form (`ui_form`; playwright
# comes with the test extra, chromium from `make system-deps`); the newest line runs them all, through `make test`.
MATRIX_MARKERS ?= (not ui or ui_form) and not deployment and not distributed
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
# make dist: its tools, installed into .venv on first use (not test extras: the constraints files pin
# exactly the project's dependencies). make test-wheel: the venv the wheel goes into, and the
# constraints it is installed with (the newest Airflow line's, as a user would use Airflow's).
DIST_TOOLS := "build>=1.2" "twine>=5"
WHEEL_VENV ?= .venv-wheel
WHEEL_CONSTRAINTS ?= $(CONSTRAINTS)
# make emulator: the port (the environment variable of the same name overrides it). The API key is
# $BCTRL_EMULATOR_API_KEY when set, else the emulator's built-in bctrl_emulator_key.
BCTRL_EMULATOR_PORT ?= 8787
# pip's "find-links location is ignored" chatter from a machine-wide config: hidden; errors still show.
PIP_FILTER := { grep -v -e 'is ignored: it is neither a file nor a directory' || true; }

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_NO_INPUT := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help venv system-deps browser-deps test test-matrix lint format typecheck unit docs demo bench clean distclean \
	dist test-wheel emulator venv-celery celery-system-deps test-distributed demo-celery

help: ## Show the targets
	@echo "Usage: make <target>"
	@echo
	@awk -F ':.*## ' '/^[a-z-]+:.*## / { printf "  %-18s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

# ---------------------------------------------------------------------------------------- venv

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@if ! [ -x "$(PY)" ] || ! "$(PY)" -c 'import sys' 2>/dev/null; then \
	  command -v "$(PYTHON)" >/dev/null || { echo "ERROR: $(PYTHON) not found; install Python 3.11+." >&2; exit 1; }; \
	  "$(PYTHON)" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	    echo "ERROR: $(PYTHON) is $$($(PYTHON) --version 2>&1); the provider needs Python 3.11+ (as Airflow's" \
	      "providers do). Install one and run e.g. 'make $(or $(MAKECMDGOALS),demo) PYTHON=python3.11'." >&2; exit 1; }; \
	  echo "==> Creating $(VENV) with $$($(PYTHON) --version 2>&1)"; \
	  rm -rf "$(VENV)"; \
	  "$(PYTHON)" -m venv "$(VENV)"; \
	fi
	@echo "==> Installing airflow-provider-bctrl[test,docs] into $(VENV) (first time: a few minutes)"
	@start=$$SECONDS; \
	"$(PY)" -m pip install --quiet --progress-bar off --upgrade pip 2>&1 | $(PIP_FILTER); \
	PYTHONWARNINGS="ignore:Editable installation" \
	  "$(PY)" -m pip install --quiet --progress-bar off -c "$(CONSTRAINTS)" -e ".[test,docs]" 2>&1 | $(PIP_FILTER); \
	echo "==> $(VENV) ready ($$((SECONDS - start)) s)"
	@touch "$@"

venv: $(STAMP) ## Create or update .venv (done automatically by the other targets)

# One venv per older Airflow line, made from scratch (never patched in place) whenever pyproject.toml
# or that line's constraints file changes; uv (from .venv) installs ~160 pinned packages in seconds.
.venv-airflow-%/.installed-stamp: pyproject.toml constraints/airflow-%.txt | $(STAMP)
	@echo "==> Creating .venv-airflow-$* from constraints/airflow-$*.txt"
	@start=$$SECONDS; \
	rm -rf ".venv-airflow-$*"; \
	"$(BIN)/uv" venv --quiet --seed --python "$(PYTHON)" ".venv-airflow-$*"; \
	"$(BIN)/uv" pip install --quiet --python ".venv-airflow-$*/bin/python" \
	  -c "constraints/airflow-$*.txt" -e ".[test]"; \
	echo "==> .venv-airflow-$* ready ($$((SECONDS - start)) s): $$(.venv-airflow-$*/bin/airflow version 2>/dev/null | tail -n1)"
	@touch "$@"

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

system-deps: ## Install the Debian packages the tests use: chromium (UI tests), curl and nodejs (benchmark smoke tests); root only
	@missing=""; \
	[ -x "$(CHROMIUM)" ] || missing="chromium"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	if [ -z "$$missing" ]; then \
	  echo "==> system packages: chromium ($(CHROMIUM)), curl and node are installed"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "==> Installing Debian packages for the tests (apt-get):$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq; \
	  apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 $$missing >/dev/null; \
	  [ -x "$(CHROMIUM)" ] || { echo "ERROR: apt-get finished but $(CHROMIUM) is missing" >&2; exit 1; }; \
	  command -v curl >/dev/null || { echo "ERROR: apt-get finished but curl is missing" >&2; exit 1; }; \
	  command -v node >/dev/null || { echo "ERROR: apt-get finished but node is missing" >&2; exit 1; }; \
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

test: system-deps $(STAMP) ## lint, typecheck, all tests (the distributed leg too; DISTRIBUTED=0 leaves it out), docs build (CI then runs test-wheel)
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

test-matrix: system-deps $(STAMP) ## The suite on one Airflow line in its own venv: make test-matrix AIRFLOW=3.1 (lines: 2.11 3.0 3.1 3.2 3.3)
	@case " $(AIRFLOW_LINES) " in *" $(AIRFLOW) "*) ;; \
	  *) echo "ERROR: AIRFLOW=$(AIRFLOW) is not a supported line; pick one of: $(AIRFLOW_LINES)" >&2; exit 2;; esac
	@$(MAKE) ".venv-airflow-$(AIRFLOW)/.installed-stamp"
	@echo "==> pytest on Airflow $(AIRFLOW) (-m '$(MATRIX_MARKERS)')"
	@rc=0; ".venv-airflow-$(AIRFLOW)/bin/python" -m pytest -m "$(MATRIX_MARKERS)" $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "ERROR: pytest collected no tests (exit 5); that counts as a failure." >&2; fi; \
	exit $$rc

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

# ----------------------------------------------------------------------------- the artifact

dist: $(STAMP) ## Build the sdist and wheel into dist/ and check them (twine, the wheel's contents)
	@"$(PY)" -c 'import build, twine' 2>/dev/null || { echo "==> Installing build and twine into $(VENV)"; \
	  "$(PY)" -m pip install --quiet --progress-bar off -c "$(CONSTRAINTS)" $(DIST_TOOLS) 2>&1 | $(PIP_FILTER); }
	rm -rf dist; mkdir -p build
	@# Without --sdist/--wheel, build makes the sdist and then the wheel from it, so nothing stale
	@# from the working tree (build/lib) can slip into the wheel.
	"$(PY)" -m build --outdir dist . >build/dist.log 2>&1 || { tail -n 40 build/dist.log; exit 1; }
	"$(BIN)/twine" check --strict dist/*
	"$(PY)" scripts/check_dist.py dist

test-wheel: dist ## Install the wheel (not editable) into .venv-wheel with Airflow and run a DAG with it
	"$(PY)" scripts/test_wheel.py --dist dist --venv "$(WHEEL_VENV)" $(if $(WHEEL_CONSTRAINTS),--constraint "$(WHEEL_CONSTRAINTS)")

# ------------------------------------------------------------------------------ run things

emulator: $(STAMP) ## Run the local BCTRL emulator on 127.0.0.1:8787 until Ctrl+C (docs/emulator.md)
	@echo "==> API key: $${BCTRL_EMULATOR_API_KEY:-bctrl_emulator_key}; state in a temporary folder; Ctrl+C stops it"
	@exec "$(PY)" -m airflow_provider_bctrl.testing.emulator --port "$(BCTRL_EMULATOR_PORT)"

demo: $(STAMP) ## Upload and collect a file against a local BCTRL emulator
	@"$(PY)" scripts/demo.py

demo-celery: celery-system-deps $(CELERY_STAMP) ## Airflow on CeleryExecutor here (2 workers, PostgreSQL, Redis, S3): 4 runs, then stop
	@"$(CELERY_PY)" scripts/demo_celery.py

bench: $(STAMP) ## The benchmarks, production path (https, native server) first (docs/performance.md); BENCH_ARGS=--quick for a smoke run
	@"$(PY)" benchmarks/run.py $(BENCH_ARGS)

clean: ## Remove build output and caches (keeps .venv)
	rm -rf "$(SITE_DIR)" build dist .pytest_cache .mypy_cache .ruff_cache *.egg-info
	find . \( -path ./$(VENV) -o -path ./$(CELERY_VENV) \) -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +

distclean: clean ## clean, and remove .venv, .venv-wheel, .venv-celery and the .venv-airflow-* venvs too
	rm -rf "$(VENV)" "$(WHEEL_VENV)" "$(CELERY_VENV)" .venv-airflow-*
