"""Security and wiring properties of the deployed (translated) template."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.settings import ENVIRONMENT
from tools.sam_template import FUNCTION_ID, ROOT

ROLE = f"{FUNCTION_ID}Role"
CODEDEPLOY_ROLE = "CodeDeployRole"  # CodeDeploy's, for the canary (tests/template/test_canary.py)
S3_WRITE = re.compile(r"^s3:(\*|Put.*|Delete.*|Restore.*|Replicate.*|Abort.*|Create.*|.*\*.*)$")


def statements(translated: dict[str, Any], role: str = ROLE) -> Iterator[dict[str, Any]]:
    for policy in translated["Resources"][role]["Properties"].get("Policies", []):
        yield from policy["PolicyDocument"]["Statement"]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def sub_text(value: Any) -> str:
    """The text of a resource ARN: a literal, or the template string of a Fn::Sub."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    return repr(value)


def test_function_is_python313_x86_64_with_tracing_and_a_retained_log_group(translated: dict[str, Any]) -> None:
    props = translated["Resources"][FUNCTION_ID]["Properties"]
    assert props["Runtime"] == "python3.13"
    assert props["Architectures"] == ["x86_64"]
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["Handler"] == "handler.app.lambda_handler"
    log_group = translated["Resources"]["ScoringFunctionLogGroup"]
    assert log_group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}
    assert props["LoggingConfig"]["LogGroup"] == {"Ref": "ScoringFunctionLogGroup"}


@pytest.mark.parametrize("service", ["s3", "secretsmanager"])
def test_no_wildcard_actions_or_resources_for_s3_or_secrets_manager(translated: dict[str, Any], service: str) -> None:
    # Given every Allow statement of the function's role that touches the service
    relevant = [
        s
        for s in statements(translated)
        if s.get("Effect") == "Allow" and any(a.startswith(f"{service}:") for a in as_list(s["Action"]))
    ]
    assert relevant, f"no {service} permissions at all?"
    for statement in relevant:
        # Then no action is a wildcard
        assert not any(a in {"*", f"{service}:*"} for a in as_list(statement["Action"])), statement
        # And every resource names the bucket (prefix) or the secret, never "*"
        for resource in as_list(statement["Resource"]):
            text = sub_text(resource)
            assert text != "*", statement
            if service == "s3":
                assert text.startswith(
                    "arn:${AWS::Partition}:s3:::${InputBucketBaseName}-${AWS::AccountId}-${AWS::Region}"
                ), text
                assert "*" not in text.split(":::", 1)[1].split("/", 1)[0], f"wildcard in the bucket name: {text}"
            else:
                prefix = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
                assert text == prefix + "${SnowflakeSecretName}-??????", text
    if service == "secretsmanager":
        actions = {a for s in relevant for a in as_list(s["Action"])}
        assert actions == {"secretsmanager:GetSecretValue"}


def test_s3_reads_are_limited_to_the_input_prefix(translated: dict[str, Any]) -> None:
    for statement in statements(translated):
        actions = as_list(statement["Action"])
        if "s3:GetObject" in actions:
            assert set(actions) <= {"s3:GetObject", "s3:GetObjectVersion"}
            assert sub_text(statement["Resource"]).endswith("/${InputPrefix}*")
        if "s3:ListBucket" in actions:
            assert statement["Condition"] == {"StringLike": {"s3:prefix": {"Fn::Sub": "${InputPrefix}*"}}}


def test_no_self_trigger_the_function_cannot_write_to_s3(translated: dict[str, Any]) -> None:
    # Given every permission of the function's role (inline policies; managed ones are logs, X-Ray and SQS reads)
    writes = [
        a
        for s in statements(translated)
        if s.get("Effect") == "Allow"
        for a in as_list(s["Action"])
        if S3_WRITE.match(a)
    ]
    # Then nothing it does can create an object, so nothing can trigger it again
    assert writes == []
    # And the role has no managed policy (SAM's AWSLambdaBasicExecutionRole and AWSLambdaSQSQueueExecutionRole
    # grant logs and SQS reads on "*"): every permission is one of the inline statements these tests read
    assert translated["Resources"][ROLE]["Properties"].get("ManagedPolicyArns", []) == []


def test_the_function_runs_with_the_templates_own_role_and_only_lambda_may_assume_it(
    translated: dict[str, Any],
) -> None:
    # Given the function and every IAM role of the deployed template
    roles = {name for name, body in translated["Resources"].items() if body["Type"] == "AWS::IAM::Role"}
    # Then there are the template's own two (SAM generates none: not even CodeDeploy's), and the function uses its own
    assert roles == {ROLE, CODEDEPLOY_ROLE}
    assert translated["Resources"][FUNCTION_ID]["Properties"]["Role"] == {"Fn::GetAtt": [ROLE, "Arn"]}
    # And only Lambda, for this account, may assume it
    trust = translated["Resources"][ROLE]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
        }
    ]


# X-Ray's PutTraceSegments/PutTelemetryRecords support no resource-level permissions: "*" is their only resource.
RESOURCE_LESS_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def test_no_allow_statement_has_a_wildcard_resource_except_for_resource_less_actions(
    translated: dict[str, Any],
) -> None:
    # Given every Allow statement of the function's role
    for statement in statements(translated):
        if statement.get("Effect") != "Allow":
            continue
        resources = [sub_text(r) for r in as_list(statement["Resource"])]
        # Then a "*" resource (or an ARN ending in a bare service wildcard) goes only with actions that cannot be
        # scoped; every other statement names its queue, log group, bucket or secret
        if any(r == "*" for r in resources):
            assert set(as_list(statement["Action"])) <= RESOURCE_LESS_ACTIONS, statement
        # And no action is a service wildcard
        assert not any(a == "*" or a.endswith(":*") for a in as_list(statement["Action"])), statement


@pytest.mark.parametrize(
    ("service", "actions", "resource"),
    [
        (
            "sqs",
            {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"},  # what the event source needs
            {"Fn::GetAtt": ["IngestQueue", "Arn"]},
        ),
        (
            "logs",
            {"logs:CreateLogStream", "logs:PutLogEvents"},  # the log group is the template's: no CreateLogGroup
            {
                "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
                "${ScoringFunctionLogGroup}:*"
            },
        ),
    ],
)
def test_sqs_and_log_permissions_name_the_ingest_queue_and_the_functions_log_group(
    translated: dict[str, Any], service: str, actions: set[str], resource: dict[str, Any]
) -> None:
    # Given the role's statements for the service
    relevant = [s for s in statements(translated) if any(a.startswith(f"{service}:") for a in as_list(s["Action"]))]
    # Then one statement grants exactly the actions the function needs, on its one resource
    assert len(relevant) == 1, relevant
    assert set(as_list(relevant[0]["Action"])) == actions
    assert relevant[0]["Resource"] == resource


def test_the_dead_letter_queue_is_kept_when_the_stack_is_deleted_or_the_queue_replaced(
    translated: dict[str, Any],
) -> None:
    # Given the dead-letter queue (the notifications that still have to load)
    dlq = translated["Resources"]["DeadLetterQueue"]
    # Then neither deleting the stack nor replacing the queue deletes it
    assert dlq["DeletionPolicy"] == "Retain"
    assert dlq["UpdateReplacePolicy"] == "Retain"


def test_input_bucket_access_logging_is_optional_and_off_by_default(
    template: dict[str, Any], translated: dict[str, Any]
) -> None:
    # Given the access-log parameter and the bucket's logging configuration
    parameter = template["Parameters"]["InputBucketAccessLogBucket"]
    logging = translated["Resources"]["InputBucket"]["Properties"]["LoggingConfiguration"]
    # Then it is empty by default, and empty means no LoggingConfiguration at all
    assert parameter["Default"] == ""
    assert translated["Conditions"]["HasAccessLogBucket"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "InputBucketAccessLogBucket"}, ""]}]
    }
    condition, configured, otherwise = logging["Fn::If"]
    assert condition == "HasAccessLogBucket"
    assert otherwise == {"Ref": "AWS::NoValue"}
    # And a named bucket receives the logs under the input bucket's base name
    assert configured["DestinationBucketName"] == {"Ref": "InputBucketAccessLogBucket"}
    assert configured["LogFilePrefix"] == {"Fn::Sub": "${InputBucketBaseName}/"}


def test_bucket_policy_denies_requests_without_tls(translated: dict[str, Any]) -> None:
    policy = translated["Resources"]["InputBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "InputBucket"}
    deny = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert len(deny) == 1
    statement = deny[0]
    assert statement["Principal"] == "*"
    assert statement["Action"] == "s3:*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == [{"Fn::GetAtt": ["InputBucket", "Arn"]}, {"Fn::Sub": "${InputBucket.Arn}/*"}]


def test_bucket_is_encrypted_and_not_public(translated: dict[str, Any]) -> None:
    props = translated["Resources"]["InputBucket"]["Properties"]
    sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(props["PublicAccessBlockConfiguration"]) == 4


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                yield value
            elif key == "Fn::GetAtt":
                yield (value[0] if isinstance(value, list) else value.split(".", 1)[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                yield from (m.split(".", 1)[0] for m in re.findall(r"\$\{([^}!]+)\}", text))
                if not isinstance(value, str):
                    yield from _references(value[1])
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


def test_no_circular_dependency(translated: dict[str, Any]) -> None:
    # Given the dependency graph of the translated template (Ref, GetAtt, Sub, DependsOn)
    resources = translated["Resources"]
    graph = {
        name: {r for r in _references(body.get("Properties", {})) if r in resources}
        | set(as_list(body.get("DependsOn", [])))
        for name, body in resources.items()
    }
    # Then it is acyclic (the classic loops: bucket -> notification -> permission -> function -> policy -> bucket, and
    # bucket -> queue policy -> bucket)
    visiting, done = set(), set()

    def visit(node: str, path: list[str]) -> None:
        if node in done:
            return
        assert node not in visiting, " -> ".join([*path, node])
        visiting.add(node)
        for dep in graph[node]:
            visit(dep, [*path, node])
        visiting.discard(node)
        done.add(node)

    for name in graph:
        visit(name, [])


def test_function_environment_matches_the_settings_contract(template: dict[str, Any]) -> None:
    env = template["Resources"][FUNCTION_ID]["Properties"]["Environment"]["Variables"]
    powertools = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"}
    # Every variable the template sets is one the function reads (AWS_ENDPOINT_URL: boto3 reads it)
    assert set(env) - powertools - {"AWS_ENDPOINT_URL"} <= set(ENVIRONMENT)
    # And the required ones are set, from parameters
    for required in ("SNOWFLAKE_SECRET_NAME", "SNOWFLAKE_DATABASE", "SNOWFLAKE_SCHEMA"):
        assert isinstance(env[required], dict)
        assert "Ref" in env[required]
    assert powertools <= set(env)
    # Local-only wiring reaches the deployed function only as parameters that default to empty
    # (empty = the real endpoints: tests/template/test_local_overrides.py)
    for local in ("SNOWFLAKE_HOST", "SNOWFLAKE_PORT", "SNOWFLAKE_PROTOCOL", "AWS_ENDPOINT_URL"):
        assert template["Parameters"][env[local]["Ref"]]["Default"] == ""


def test_the_makefile_build_target_matches_the_function(template: dict[str, Any]) -> None:
    function = template["Resources"][FUNCTION_ID]
    assert function["Metadata"]["BuildMethod"] == "makefile"
    makefile = ROOT / function["Metadata"]["ContextPath"] / "Makefile"
    assert f"build-{FUNCTION_ID}:" in makefile.read_text(encoding="utf-8")


def test_network_interface_permissions_exist_only_for_a_function_in_a_vpc(translated: dict[str, Any]) -> None:
    # Given the deployed template's VPC option (VpcSubnetIds, empty by default)
    resources = translated["Resources"]
    vpc_config = resources[FUNCTION_ID]["Properties"]["VpcConfig"]
    policy = resources["VpcNetworkInterfacesPolicy"]
    # Then the function joins a VPC only under InVpc, and so does the role's network-interface policy
    assert vpc_config["Fn::If"][0] == "InVpc"
    assert policy["Condition"] == "InVpc"
    assert policy["Properties"]["RoleName"] == {"Ref": ROLE}
    # And that policy holds EC2's network-interface actions only: nothing on S3, SQS, logs or secrets
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    actions = set(as_list(statement["Action"]))
    assert actions and all(
        (a.startswith("ec2:") and "NetworkInterface" in a)
        or a in {"ec2:DescribeSubnets", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"}
        for a in actions
    )
