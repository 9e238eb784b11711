"""template.yaml as data: a YAML loader that tolerates CloudFormation short-form tags (!Ref, !Sub, ...),
the function's settings with parameters resolved, and the SAM -> CloudFormation translation.

Development only (tools/commands/invoke.py, tests/template/); nothing here is shipped.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
FUNCTION_ID = "ScoringFunction"

# Managed policies SAM may attach (the translator needs their ARNs; offline we give them ourselves).
MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "AWSXrayWriteOnlyAccess": "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
    "AWSLambdaSQSQueueExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",
}
PSEUDO_PARAMETERS = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::StackName": "tumour-scoring",
    "AWS::URLSuffix": "amazonaws.com",
}


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader plus the short-form intrinsic functions, turned into their long form ({"Fn::Sub": ...})."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a mapping")
    return data


def parameter_values(template: dict[str, Any], overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Parameter defaults, then overrides (as `sam deploy --parameter-overrides` or env.json "Parameters")."""
    values = {name: str(spec["Default"]) for name, spec in template.get("Parameters", {}).items() if "Default" in spec}
    values.update({k: str(v) for k, v in (overrides or {}).items()})
    return values


class UnresolvableError(ValueError):
    """An intrinsic that needs a deployed resource (GetAtt, Ref to a resource, ...)."""


def resolve(value: Any, params: dict[str, str]) -> Any:
    """Resolve Ref/Sub/Join/If-free values against parameters and pseudo parameters."""
    scope = {**PSEUDO_PARAMETERS, **params}
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            if arg in scope:
                return scope[arg]
            raise UnresolvableError(f"!Ref {arg}")
        if key == "Fn::Sub":
            text, extra = (
                (arg, {}) if isinstance(arg, str) else (arg[0], {k: resolve(v, params) for k, v in arg[1].items()})
            )

            def sub(match: re.Match[str]) -> str:
                name = match.group(1)
                if name in extra:
                    return str(extra[name])
                if name in scope:
                    return scope[name]
                raise UnresolvableError(f"${{{name}}}")

            return re.sub(r"\$\{([A-Za-z0-9:._]+)\}", sub, text)
        if key == "Fn::Join":
            sep, items = arg
            return sep.join(str(resolve(item, params)) for item in items)
        if key.startswith("Fn::"):
            raise UnresolvableError(key)
    if isinstance(value, dict):
        return {k: resolve(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, params) for v in value]
    return value


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    handler: str
    runtime: str
    timeout: int
    memory_size: int
    environment: dict[str, str]  # resolved; variables that need a deployed resource are left out
    unresolved: tuple[str, ...]


def function_spec(
    template: dict[str, Any], logical_id: str = FUNCTION_ID, parameters: dict[str, str] | None = None
) -> FunctionSpec:
    """Handler, runtime, timeout, memory and environment of one function (Globals.Function merged in)."""
    resource = template["Resources"][logical_id]
    if resource.get("Type") != "AWS::Serverless::Function":
        raise ValueError(f"{logical_id} is not an AWS::Serverless::Function")
    globals_ = template.get("Globals", {}).get("Function", {})
    props = {**globals_, **resource.get("Properties", {})}
    params = parameter_values(template, parameters)
    env_raw = {
        **globals_.get("Environment", {}).get("Variables", {}),
        **resource.get("Properties", {}).get("Environment", {}).get("Variables", {}),
    }
    env: dict[str, str] = {}
    unresolved = []
    for name, raw in env_raw.items():
        try:
            env[name] = str(resolve(raw, params))
        except UnresolvableError:
            unresolved.append(name)
    return FunctionSpec(
        logical_id=logical_id,
        handler=str(resolve(props["Handler"], params)),
        runtime=str(resolve(props["Runtime"], params)),
        timeout=int(resolve(props.get("Timeout", 3), params)),
        memory_size=int(resolve(props.get("MemorySize", 128), params)),
        environment=env,
        unresolved=tuple(unresolved),
    )


def translate(path: Path = TEMPLATE, parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """The CloudFormation template SAM would deploy (aws-sam-translator, offline)."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator
    from samtranslator.yaml_helper import yaml_parse

    os.environ.setdefault("AWS_DEFAULT_REGION", PSEUDO_PARAMETERS["AWS::Region"])
    sam_template = yaml_parse(path.read_text(encoding="utf-8"))
    # As `sam package` would: local CodeUri -> an S3 location (the translator accepts nothing else).
    for resource in sam_template.get("Resources", {}).values():
        props = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = "s3://packaged-artifacts/function.zip"
    session = boto3.session.Session(region_name=PSEUDO_PARAMETERS["AWS::Region"])
    translator = Translator(managed_policy_map=None, sam_parser=Parser(), boto_session=session)
    result: dict[str, Any] = translator.translate(
        sam_template, parameter_values=dict(parameters or {}), get_managed_policy_map=lambda: MANAGED_POLICIES
    )
    return result
