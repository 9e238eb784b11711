# SAM targets: build, local invoke, validate, deploy. Included from the Makefile (`include mk/sam.mk`);
# Not usable on its own: it relies on the Makefile's PYTHON_BOOTSTRAP and install targets.
#
#   make build                      sam build (no Docker): .aws-sam/build/ScoringFunction + the built template
#   make invoke EVENT=events/x.json the built artifact on one event under aws-lambda-rie + awslambdaric (no Docker)
#   make local-stack                moto + fakesnow for `sam local invoke` (our Docker network), until Ctrl-C
#   make sam-local-invoke EVENT=... the real `sam local invoke` of the built artifact against the local stack
#   make local-image                the offline stand-in for SAM's python3.13 emulation image (once; cached)
#   make validate                   sam validate --lint, and cfn-lint on the SAM-translated template
#   make deploy                     sam deploy (samconfig.toml) with ModelVersion from model/metadata.json;
#                                   first time: make deploy-guided
#   make artifact-report            size, largest glibc symbol version, init time with and without bytecode

PY ?= .venv/bin/python
VENV ?= .venv
SAM_VENV ?= build-cache/venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_FUNCTION := ScoringFunction
ARTIFACT := .aws-sam/build/$(SAM_FUNCTION)
RUNTIME_PROVIDED := .aws-sam/runtime-provided
RUNTIME_RIC := .aws-sam/runtime-ric
LOCAL_IMAGE := tumour-scoring/lambda-python:3.13-trixie
OFFICIAL_IMAGE := public.ecr.aws/lambda/python:3.13
# sam local invoke's emulation image: SAM's official one when this machine already has it (pulled with
# registry access), else the offline stand-in (`make local-image`). SAM_INVOKE_IMAGE=official lets SAM pull it.
SAM_INVOKE_IMAGE ?= $(shell docker image inspect $(OFFICIAL_IMAGE) >/dev/null 2>&1 && echo official || echo $(LOCAL_IMAGE))
EVENT ?= events/s3-put.json
# The region is the user's, as plain `sam` finds it: AWS_DEFAULT_REGION, AWS_REGION, else the profile's (boto3's
# resolution, AWS_PROFILE included); us-east-1 only when none is configured anywhere, as SAM's own default. Never a
# fixed one: `make deploy-guided` offers it, and Enter would put patient data in that jurisdiction (docs/deploy.md).
SAM_ENV := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-$${AWS_REGION:-$$($(PY) -c 'import boto3; print(boto3.session.Session().region_name or "us-east-1")' 2>/dev/null || echo us-east-1)}}
# What goes into the artifact: rebuild when any of it changes.
ARTIFACT_INPUTS := template.yaml requirements/runtime.txt model/model.tflite model/metadata.json \
	build/build_artifact.py build/Makefile \
	$(shell find src -name '*.py' -not -path '*/__pycache__/*' 2>/dev/null)

.PHONY: build build-no-sam sam-cli runtime-provided runtime-ric invoke local-image local-stack sam-local-invoke \
	validate deploy deploy-guided artifact-report

$(SAM_VENV)/.installed: build/requirements-sam.txt | $(VENV)/.installed
	test -x $(SAM_VENV)/bin/python || $(PYTHON_BOOTSTRAP) -m venv $(SAM_VENV) || $(PY) -m venv --without-pip $(SAM_VENV)
	$(VENV)/bin/uv pip sync --quiet --python $(SAM_VENV)/bin/python build/requirements-sam.txt
	touch $@

sam-cli: $(SAM_VENV)/.installed ## install the pinned SAM CLI into its own venv (build-cache/venv-sam)

build: .aws-sam/build/.stamp-$(SAM_FUNCTION) ## sam build without Docker (BuildMethod: makefile -> build/build_artifact.py)

.aws-sam/build/.stamp-$(SAM_FUNCTION): $(ARTIFACT_INPUTS) | $(VENV)/.installed $(SAM_VENV)/.installed
	@echo "sam build --template-file template.yaml" >&2
	@$(SAM_ENV) $(SAM) build --template-file template.yaml >&2
	@touch $@

build-no-sam: $(VENV)/.installed ## the same artifact without SAM CLI (no built template for sam deploy)
	$(PY) build/build_artifact.py --out $(ARTIFACT)

runtime-provided: $(RUNTIME_PROVIDED)/.installed ## boto3 & co. as the Lambda runtime provides them (for invoke)

$(RUNTIME_PROVIDED)/.installed: requirements/runtime.txt build/build_artifact.py | $(VENV)/.installed
	@$(PY) build/build_artifact.py --runtime-provided $(RUNTIME_PROVIDED) >&2
	@touch $@

runtime-ric: $(RUNTIME_RIC)/.installed ## awslambdaric, the Runtime Interface Client (for invoke without Docker)

$(RUNTIME_RIC)/.installed: build/local-image/requirements.txt | $(VENV)/.installed
	@echo "awslambdaric -> $(RUNTIME_RIC)" >&2
	@rm -rf $(RUNTIME_RIC)
	@$(VENV)/bin/uv pip install --quiet --target $(RUNTIME_RIC) --python-version 3.13 \
		--python-platform x86_64-manylinux_2_28 --only-binary :all: --no-deps --require-hashes \
		-r build/local-image/requirements.txt >&2
	@touch $@

invoke: build runtime-provided runtime-ric ## EVENT=events/<file> through the built artifact, aws-lambda-rie + awslambdaric, no Docker
	@$(PY) -m tools.commands.invoke $(EVENT) --env-vars events/env.json

local-image: runtime-provided ## build the offline python3.13 emulation image for sam local invoke (once; reused)
	@build/local-image/build.sh $(LOCAL_IMAGE) $(RUNTIME_PROVIDED) $(VENV)/bin/uv

local-stack: $(VENV)/.installed ## moto + fakesnow for sam local invoke, on our Docker network; prints the env file; Ctrl-C stops
	@$(if $(filter official,$(SAM_INVOKE_IMAGE)),,$(MAKE) --no-print-directory local-image >&2)
	@$(PY) -m tools.commands.serve_stack --invoke-image $(SAM_INVOKE_IMAGE)

sam-local-invoke: build runtime-provided sam-cli ## EVENT=events/<file> through the real sam local invoke (Docker) against the stack
	@$(if $(filter official,$(SAM_INVOKE_IMAGE)),,$(MAKE) --no-print-directory local-image >&2)
	@echo "tools.commands.invoke --sam $(EVENT) --invoke-image $(SAM_INVOKE_IMAGE)" >&2
	@$(PY) -m tools.commands.invoke --sam $(EVENT) --env-vars events/env.json --invoke-image $(SAM_INVOKE_IMAGE)

validate: $(VENV)/.installed $(SAM_VENV)/.installed ## sam validate --lint, cfn-lint on the translated template
	$(SAM_ENV) $(SAM) validate --lint --template-file template.yaml
	mkdir -p .aws-sam && $(PY) -m tools.commands.artifact_checks translated-template > .aws-sam/translated.json
	$(VENV)/bin/cfn-lint .aws-sam/translated.json

# Both pass ModelVersion=<model/metadata.json's model_version> after samconfig.toml's saved overrides, so that the
# canary's rollback alarms watch the model this artifact ships (tools/commands/deploy_model_version.py).
DEPLOY_MODEL_VERSION := $(PY) -m tools.commands.deploy_model_version --

deploy-guided: build ## first deployment: asks for the parameters and saves them in samconfig.toml
	$(SAM_ENV) $(DEPLOY_MODEL_VERSION) $(SAM) deploy --guided

deploy: build ## deploy with the saved settings (samconfig.toml); a new version takes traffic as DeploymentType says
	$(SAM_ENV) $(DEPLOY_MODEL_VERSION) $(SAM) deploy

artifact-report: build runtime-provided ## artifact size, glibc needs, init time with and without bytecode
	$(PY) -m tools.commands.artifact_checks report
