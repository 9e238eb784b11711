# Every command a developer or CI runs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_VERSION := 3.13.0
# The project's interpreter: pyenv's 3.13.0 when present, else a python3.13 on PATH.
PYTHON_BOOTSTRAP := $(shell \
	p="$$(pyenv root 2>/dev/null)/versions/$(PYTHON_VERSION)/bin/python3.13"; \
	if [ -x "$$p" ]; then echo "$$p"; else command -v python3.13; fi)
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)/src:$(CURDIR)
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: help install lock model import-model test test-fast test-snowflake lint format demo score score-usage query report bench backfill rescore clean

include mk/sam.mk
include mk/deploy.mk

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## create .venv (Python 3.13) with the locked dev dependencies

# Two install levels in one .venv. The light one (requirements/local.txt: runtime + local stack, no TensorFlow
# or scikit-learn) serves `make demo` and `make score`; the full one (requirements/dev.txt, a superset with the
# same pins) serves everything else and upgrades a light .venv in place.
$(VENV)/bin/uv:
	@test -n "$(PYTHON_BOOTSTRAP)" || { echo "Python $(PYTHON_VERSION) not found: install it with 'pyenv install $(PYTHON_VERSION)'" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check "uv==0.13.9"

$(VENV)/.installed: requirements/dev.txt requirements/runtime.txt | $(VENV)/bin/uv
	@echo "installing the dev dependencies (requirements/dev.txt) into $(VENV)" >&2
	@$(VENV)/bin/uv pip sync --quiet --python $(PY) requirements/dev.txt
	@touch $@ $(VENV)/.installed-local

# `uv pip install`, not `sync`: it never removes what the full install added.
$(VENV)/.installed-local: requirements/local.txt | $(VENV)/bin/uv
	@echo "installing the demo dependencies (requirements/local.txt) into $(VENV)" >&2
	@$(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements/local.txt
	@touch $@

lock: ## re-resolve requirements/*.txt from requirements/*.in
	cd requirements && ../$(VENV)/bin/uv pip compile -q --python-version 3.13 --python-platform x86_64-manylinux_2_34 runtime.in -o runtime.txt
	cd requirements && ../$(VENV)/bin/uv pip compile -q --python-version 3.13 dev.in -o dev.txt
	cd requirements && ../$(VENV)/bin/uv pip compile -q --python-version 3.13 local.in -o local.txt

model: install ## retrain, export the SavedModel, import it (as import-model does) into model/, rewrite the sample CSV
	$(PY) model/train.py

import-model: install ## convert SAVED_MODEL=<dir> per CONFIG=<file.json> to model.tflite + metadata.json in OUT=<dir> [model/]
	@test -n "$(SAVED_MODEL)" && test -n "$(CONFIG)" || { echo "usage: make import-model SAVED_MODEL=<dir> CONFIG=<file.json> [OUT=<dir>]" >&2; exit 2; }
	$(PY) -m tools.commands.import_model --saved-model "$(SAVED_MODEL)" --config "$(CONFIG)" $(if $(OUT),--out "$(OUT)")

test: install ## every test: unit, model, integration (with the benchmark smoke runs), hardening, artifact, template
	$(PY) -m pytest -q

test-snowflake: install ## the real-account acceptance suite; without SNOWFLAKE_* credentials it says what it needs and exits 0
	PYTHONPATH=$(CURDIR)/src:$(CURDIR) TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m tests.integration.run_real_snowflake

test-fast: install ## unit tests only (no servers, no network): ~20 s of CPU, 20-30 s on an idle 2-vCPU machine
	$(PY) -m pytest -q tests/unit

lint: install ## ruff (lint + format check), mypy, and the template scanners (make lint-template)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# MODEL_DIR=<dir> scores with another imported model (make import-model); the default is model/.
WITH_MODEL_DIR = $(if $(MODEL_DIR),MODEL_DIR="$(abspath $(MODEL_DIR))")

demo: $(VENV)/.installed-local ## the sample file uploaded to the local stack: S3 notification -> queue -> the function (CSV=your.csv for your own) [MODEL_DIR=<dir>]
	@$(WITH_MODEL_DIR) $(PY) -m tools.commands.demo $(if $(CSV),--csv "$(CSV)")

# make exits 2 for any failing recipe, so `make score` cannot pass on the tool's exit status (README "Exit
# status, for scripts"): scripts run bin/score FILE (the same tool), whose status is the documented one.
score: score-usage $(VENV)/.installed-local ## your own file, uploaded to the local stack (S3 -> queue -> the function): FILE=x.csv[.gz] [KEY=incoming/x.csv]
	@$(WITH_MODEL_DIR) $(PY) -m tools.commands.score "$(FILE)" $(if $(KEY),--key "$(KEY)")

score-usage:
	@test -n "$(FILE)" || { echo "usage: make score FILE=path/to/file.csv [KEY=incoming/name.csv]" >&2; exit 2; }

# REAL=1: a real account instead, named by the SNOWFLAKE_* variables (tools/commands/connection.py).
query: $(VENV)/.installed-local ## SQL="SELECT ..." against the emulated Snowflake that demo/score left in .local/ [MODEL_DIR=<dir>] [REAL=1]
	@$(WITH_MODEL_DIR) $(PY) -m tools.commands.query $(if $(SQL),"$(SQL)") $(if $(REAL),--real-account)

# matplotlib draws the plots: the dev dependencies (install), not only the demo's.
report: install ## the model-monitoring report (one HTML file, .local/report.html) where query reads [MODEL_VERSION=v] [LAST=n] [OUT=file] [REAL=1]
	@$(WITH_MODEL_DIR) $(PY) -m tools.commands.report $(if $(OUT),--out "$(OUT)") \
	  $(if $(MODEL_VERSION),--model-version "$(MODEL_VERSION)") $(if $(LAST),--last "$(LAST)") $(if $(REAL),--real-account)

bench: install ## scoring benchmark (figures go to stdout and benchmarks/out/)
	$(PY) benchmarks/bench_scoring.py

# Through the queue by default; IN_PROCESS=1 loads here with the function's environment (WORKERS at a time).
# LOCAL=1 S3=s3://hospital-drop-local/<prefix>: in process, on the bucket of the running `make local-stack`;
# LOCAL=1 alone: a self-contained demo. DRY_RUN=1 applies to every mode: list what would be sent or loaded, do nothing.
backfill: install ## S3=s3://bucket/prefix [STACK=name] [DRY_RUN=1]: queue its objects for the deployed stack (IN_PROCESS=1: load here); LOCAL=1 [S3=...]: the local stack's bucket (a demo without S3)
	$(PY) -m tools.commands.backfill $(if $(LOCAL),--local $(S3),$(S3) $(if $(STACK),--stack $(STACK)) $(if $(IN_PROCESS),--in-process)) \
	  $(if $(DRY_RUN),--dry-run) --workers $(or $(WORKERS),4)

# Files an earlier model version loaded, loaded once more for the served model (tools/commands/rescore.py): through
# the deployed stack's queue (REAL=1 also reads the account's ledger to send exactly those), or LOCAL=1 in process
# on the running `make local-stack`. DRY_RUN=1: list what would be rescored, change nothing.
rescore: install ## S3=s3://bucket/prefix [STACK=name] [REAL=1] [DRY_RUN=1]: rescore for the served model via the deployed queue; LOCAL=1: on make local-stack
	$(PY) -m tools.commands.rescore $(S3) $(if $(LOCAL),--local,$(if $(STACK),--stack $(STACK)) $(if $(REAL),--real-account)) \
	  $(if $(DRY_RUN),--dry-run) --workers $(or $(WORKERS),4)

clean: ## remove build output and caches (keeps .venv)
	rm -rf .aws-sam .local benchmarks/out .pytest_cache .mypy_cache .ruff_cache
