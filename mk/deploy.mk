# `sam deploy` for real, offline, and the template scanners. Included from the Makefile (`include mk/deploy.mk`),
# after mk/sam.mk (it uses its SAM venv and build target).
#
#   make localstack     the pinned local AWS emulator (LocalStack core, no Docker) in build-cache/venv-localstack
#   make deploy-local   build if needed, start the emulator on 127.0.0.1, `sam deploy` the built artifact into it,
#                       check what it built through the emulator's APIs, update it once, stop everything
#   make lint-venv      the pinned scanners (cfn-lint, checkov, cfn-lint-serverless) in build-cache/venv-lint
#   make lint-template  the three scanners on template.yaml (checks skipped on purpose: template.yaml Metadata)

LOCALSTACK_VENV ?= build-cache/venv-localstack
LINT_VENV ?= build-cache/venv-lint
DEPLOY_LOCAL_ARGS ?=

.PHONY: localstack deploy-local lint-venv lint-template

$(LOCALSTACK_VENV)/.installed: build/requirements-localstack.txt | $(VENV)/.installed
	test -x $(LOCALSTACK_VENV)/bin/python || $(PYTHON_BOOTSTRAP) -m venv $(LOCALSTACK_VENV) || $(PY) -m venv --without-pip $(LOCALSTACK_VENV)
	$(VENV)/bin/uv pip sync --quiet --python $(LOCALSTACK_VENV)/bin/python build/requirements-localstack.txt
	touch $@

localstack: $(LOCALSTACK_VENV)/.installed ## install the pinned local AWS emulator (LocalStack core, no Docker) into build-cache/

deploy-local: build $(LOCALSTACK_VENV)/.installed ## sam deploy the built artifact into a local AWS emulator (loopback) and check it
	@$(PY) -m tools.commands.deploy_local --sam $(SAM) --localstack-venv $(LOCALSTACK_VENV) $(DEPLOY_LOCAL_ARGS)

$(LINT_VENV)/.installed: build/requirements-lint.txt | $(VENV)/.installed
	test -x $(LINT_VENV)/bin/python || $(PYTHON_BOOTSTRAP) -m venv $(LINT_VENV) || $(PY) -m venv --without-pip $(LINT_VENV)
	$(VENV)/bin/uv pip sync --quiet --python $(LINT_VENV)/bin/python build/requirements-lint.txt
	touch $@

lint-venv: $(LINT_VENV)/.installed ## install the pinned template scanners into build-cache/venv-lint

lint-template: $(LINT_VENV)/.installed ## cfn-lint, checkov and the serverless rules on template.yaml
	@$(PY) -m tools.commands.lint_template --venv $(LINT_VENV)

# `make lint` (the Makefile's ruff and mypy) runs the template scanners too.
lint: lint-template
