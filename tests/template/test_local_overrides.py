"""The local overrides the template declares (for `sam local invoke --env-vars`) change nothing when deployed.

SAM passes only variables the template declares, so AWS_ENDPOINT_URL, SNOWFLAKE_HOST, SNOWFLAKE_PORT and
SNOWFLAKE_PROTOCOL are declared, from parameters that default to "". Lambda then sets them to "" in the
deployed function: these tests prove that "" means the real AWS endpoints and the real Snowflake host.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from adapters.secrets import parse_credentials
from adapters.snowflake import SnowflakeWarehouse
from pipeline.settings import Settings
from tools.sam_template import FUNCTION_ID, function_spec

# variable -> the template parameter it comes from
LOCAL_OVERRIDES = {
    "AWS_ENDPOINT_URL": "AwsEndpointUrl",
    "SNOWFLAKE_HOST": "SnowflakeHost",
    "SNOWFLAKE_PORT": "SnowflakePort",
    "SNOWFLAKE_PROTOCOL": "SnowflakeProtocol",
}
REQUIRED = {"SnowflakeDatabase": "TUMOURS", "SnowflakeSchema": "SCORING"}
LOCAL = {
    "AwsEndpointUrl": "http://172.30.0.1:4566",
    "SnowflakeHost": "172.30.0.1",
    "SnowflakePort": "4567",
    "SnowflakeProtocol": "http",
}


def deployed_environment(template: dict[str, Any], overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The function's variables as CloudFormation sets them from the parameters (defaults unless overridden)."""
    return function_spec(template, FUNCTION_ID, {**REQUIRED, **(overrides or {})}).environment


def test_the_overrides_are_declared_from_parameters_that_default_to_empty(template: dict[str, Any]) -> None:
    # Given the function's declared environment
    env = template["Resources"][FUNCTION_ID]["Properties"]["Environment"]["Variables"]
    for variable, parameter in LOCAL_OVERRIDES.items():
        # Then each override is declared (so an env file can set it) from its parameter
        assert env[variable] == {"Ref": parameter}
        # And the parameter's default is empty
        assert template["Parameters"][parameter]["Default"] == ""


@pytest.mark.parametrize(
    ("overrides", "s3_endpoint", "secrets_endpoint"),
    [
        pytest.param({}, "https://s3.amazonaws.com", "https://secretsmanager.us-east-1.amazonaws.com", id="deployed"),
        pytest.param(LOCAL, LOCAL["AwsEndpointUrl"], LOCAL["AwsEndpointUrl"], id="local-stack"),
    ],
)
def test_aws_endpoint_url_empty_means_the_real_aws_endpoints(
    template: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    overrides: dict[str, str],
    s3_endpoint: str,
    secrets_endpoint: str,
) -> None:
    # Given the function's environment as deployed with these parameters (AWS_ENDPOINT_URL is then set, maybe "")
    env = deployed_environment(template, overrides)
    assert env["AWS_ENDPOINT_URL"] == overrides.get("AwsEndpointUrl", "")
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")  # no profile may add an endpoint
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", env["AWS_ENDPOINT_URL"])
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="y")
    # When boto3 builds the clients the function uses (S3 in the handler, Secrets Manager in Powertools)
    s3 = session.client("s3")
    secrets = session.client("secretsmanager")
    # Then an empty value leaves boto3 on AWS's own endpoints, and a set value points it at the stack
    assert s3.meta.endpoint_url == s3_endpoint
    assert secrets.meta.endpoint_url == secrets_endpoint


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({}, {}, id="deployed"),
        pytest.param(LOCAL, {"host": "172.30.0.1", "port": 4567, "protocol": "http"}, id="local-stack"),
    ],
)
def test_snowflake_host_port_protocol_empty_mean_the_account_host(
    template: dict[str, Any], overrides: dict[str, str], expected: dict[str, Any]
) -> None:
    # Given the settings parsed from the function's environment as deployed with these parameters
    settings = Settings.from_env(deployed_environment(template, overrides))
    credentials = parse_credentials({"user": "u", "password": "p", "account": "myorg-myaccount"}, "secret")
    seen: dict[str, Any] = {}

    def connect(**kwargs: Any) -> object:
        seen.update(kwargs)
        return object()

    # When the warehouse adapter opens its connection
    SnowflakeWarehouse(settings, lambda: credentials, connect=connect)._connection()
    # Then empty overrides pass no host, port or protocol: the connector goes to
    # <account>.snowflakecomputing.com over https; set ones pass exactly what was set
    assert seen["account"] == "myorg-myaccount"
    assert {k: seen[k] for k in ("host", "port", "protocol") if k in seen} == expected
