"""The checks of `make deploy-local`, through the emulator's APIs (boto3), never by re-reading the template: what
was built (queues, event source mapping, function, role, bucket, log group, alarms, outputs), then behaviour
(notifications, the dead-letter queue, an update in place, a delete that keeps the bucket and the DLQ)."""

import fnmatch
import json
import re
import time
from collections.abc import Callable
from typing import Any

from tools.commands.deploy_stack import (
    ACCESS_LOG_BUCKET,
    GAPS,
    PARAMETERS,
    PREFIX,
    REGION,
    STACK,
    UPDATED,
    Clients,
    Report,
)

# --- checks -------------------------------------------------------------------------------------------------------


def stack_state(c: Clients) -> tuple[str, dict[str, str], dict[str, dict[str, str]]]:
    stack = c.cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    resources = {
        r["LogicalResourceId"]: r for r in c.cfn.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    }
    return stack["StackStatus"], outputs, resources


def queue_arn(c: Clients, url: str) -> str:
    arn: str = c.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return arn


def statements(policy: Any) -> list[dict[str, Any]]:
    document = json.loads(policy) if isinstance(policy, str) else policy
    found = document.get("Statement", [])
    return found if isinstance(found, list) else [found]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# The version SAM publishes is ScoringFunctionVersion<hash of the code>: compared without its hash.
VERSION_ID = re.compile(r"^ScoringFunctionVersion[0-9a-f]{10}$")
CODEDEPLOY_RESOURCES = {"ServerlessDeploymentApplication", "ScoringFunctionDeploymentGroup"}
ROLLBACK_ALARMS = ["NewVersionErrorsAlarm", "ModelVersionDriftAlarm", "ModelVersionAccuracyAlarm"]


def logical_ids(resources: dict[str, Any]) -> list[str]:
    return sorted("ScoringFunctionVersion<hash>" if VERSION_ID.match(name) else name for name in resources)


def check_wiring(c: Clients, r: Report, topic_arn: str) -> dict[str, str]:
    status, outputs, resources = stack_state(c)
    r.equal("stack status after the first deploy", status, "CREATE_COMPLETE")
    expected_resources = {
        "ScoringFunction",
        "ScoringFunctionRole",
        "ScoringFunctionLogGroup",
        "ScoringFunctionIngestQueueMessages",
        "ScoringFunctionVersion<hash>",
        "ScoringFunctionAliaslive",
        "CodeDeployRole",
        *CODEDEPLOY_RESOURCES,
        "InputBucket",
        "InputBucketPolicy",
        "IngestQueue",
        "IngestQueuePolicy",
        "DeadLetterQueue",
        "DeadLetterQueuePolicy",
        "DeadLetterAlarm",
        "FunctionErrorsAlarm",
        "IngestQueueAgeAlarm",
        "DriftAlarm",
        "AccuracyAlarm",
        *ROLLBACK_ALARMS,
    }
    r.equal("stack resources", logical_ids(resources), sorted(expected_resources))
    incomplete = {k: v["ResourceStatus"] for k, v in resources.items() if v["ResourceStatus"] != "CREATE_COMPLETE"}
    r.equal("every resource CREATE_COMPLETE", incomplete, {})

    # Queues
    queue_url, dlq_url = outputs.get("IngestQueueUrl", ""), outputs.get("DeadLetterQueueUrl", "")
    q = c.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    d = c.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(q.get("RedrivePolicy", "{}"))
    r.equal("queue redrive target is the DLQ", redrive.get("deadLetterTargetArn"), d["QueueArn"])
    r.equal("queue maxReceiveCount", int(redrive.get("maxReceiveCount", 0)), int(PARAMETERS["QueueMaxReceiveCount"]))
    r.equal("queue visibility timeout", q.get("VisibilityTimeout"), "5700")
    r.equal("queue retention", q.get("MessageRetentionPeriod"), "345600")
    r.equal("DLQ retention (14 days)", d.get("MessageRetentionPeriod"), "1209600")
    r.equal("queue SSE-SQS", q.get("SqsManagedSseEnabled"), "true")
    r.equal("DLQ SSE-SQS", d.get("SqsManagedSseEnabled"), "true")
    bucket = outputs.get("InputBucketName", "")
    bucket_arn = f"arn:aws:s3:::{bucket}"
    allows = [s for s in statements(q.get("Policy", "{}")) if s.get("Effect") == "Allow"]
    r.check(
        "queue policy: S3 of this bucket and account may send, nothing else is allowed",
        len(allows) == 1
        and allows[0].get("Principal") == {"Service": "s3.amazonaws.com"}
        and allows[0].get("Action") == "sqs:SendMessage"
        and allows[0].get("Resource") == q["QueueArn"]
        and allows[0].get("Condition", {}).get("ArnEquals", {}).get("aws:SourceArn") == bucket_arn,
        allows,
    )
    for label, attrs in (("queue", q), ("DLQ", d)):
        denies = [s for s in statements(attrs.get("Policy", "{}")) if s.get("Effect") == "Deny"]
        r.check(
            f"{label} policy denies requests without TLS",
            any(s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} for s in denies),
            denies,
        )

    # Function
    function_name = outputs.get("ScoringFunctionName", "")
    f = c.lam.get_function_configuration(FunctionName=function_name)
    r.equal("function runtime", f.get("Runtime"), "python3.13")
    r.equal("function handler", f.get("Handler"), "handler.app.lambda_handler")
    r.equal("function memory", f.get("MemorySize"), 2048)
    r.equal("function timeout", f.get("Timeout"), 900)
    r.equal("function architecture", f.get("Architectures"), ["x86_64"])
    r.equal("function tracing", f.get("TracingConfig", {}).get("Mode"), "Active")
    r.equal("function log group", f.get("LoggingConfig", {}).get("LogGroup"), outputs.get("LogGroupName"))
    env = f.get("Environment", {}).get("Variables", {})
    expected_env = {
        "SNOWFLAKE_DATABASE": "TUMOURS",
        "SNOWFLAKE_SCHEMA": "SCORING",
        "SNOWFLAKE_WAREHOUSE": "LOAD_WH",
        "SNOWFLAKE_SECRET_NAME": "tumour-scoring/snowflake",
        "TARGET_TABLE": "TUMOUR_SCORES",
        "LOAD_MODE": "append",
        "BATCH_PUBLISH": "true",
        "POWERTOOLS_SERVICE_NAME": "tumour-scoring",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "AWS_ENDPOINT_URL": "",
    }
    r.equal("function environment (parameters reach it)", {k: env.get(k) for k in expected_env}, expected_env)

    # Role
    role_name = f.get("Role", "").rsplit("/", 1)[-1]
    r.equal("function role is the stack's role", role_name, resources["ScoringFunctionRole"]["PhysicalResourceId"])
    role = c.iam.get_role(RoleName=role_name)["Role"]
    trust = statements(role["AssumeRolePolicyDocument"])
    r.check(
        "role trust: only lambda.amazonaws.com",
        [s.get("Principal") for s in trust] == [{"Service": "lambda.amazonaws.com"}],
        trust,
    )
    attached = c.iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    r.equal("role has no managed policies", attached, [])
    role_statements = [
        s
        for name in c.iam.list_role_policies(RoleName=role_name)["PolicyNames"]
        for s in statements(c.iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"])
    ]
    by_action: dict[str, list[str]] = {}
    for s in role_statements:
        for action in as_list(s.get("Action")):
            by_action.setdefault(action, []).extend(as_list(s.get("Resource")))
    sqs_actions = {a for a in by_action if a.startswith("sqs:")}
    r.equal(
        "role: SQS actions", sorted(sqs_actions), ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
    )
    r.check(
        "role: SQS actions only on the ingest queue",
        all(by_action[a] == [q["QueueArn"]] for a in sqs_actions),
        {a: by_action[a] for a in sqs_actions},
    )
    log_arn = f"arn:aws:logs:{REGION}:000000000000:log-group:{outputs.get('LogGroupName')}:*"
    log_actions = {a for a in by_action if a.startswith("logs:")}
    r.equal("role: log actions", sorted(log_actions), ["logs:CreateLogStream", "logs:PutLogEvents"])
    r.check(
        "role: log actions only on the function's log group",
        all(by_action[a] == [log_arn] for a in log_actions),
        {a: by_action[a] for a in log_actions},
    )
    wildcard = sorted(a for a, res in by_action.items() if "*" in res and not a.startswith("xray:"))
    r.equal("role: no '*' resource but X-Ray's", wildcard, [])
    r.check(
        "role: S3 read-only under the prefix",
        all(a in {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket"} for a in by_action if a.startswith("s3:"))
        and by_action.get("s3:GetObject") == [f"{bucket_arn}/{PREFIX}*"],
        {a: v for a, v in by_action.items() if a.startswith("s3:")},
    )

    # The alias "live" and the version it points to (AutoPublishAlias)
    alias_arn = outputs.get("ScoringFunctionAliasArn", "")
    try:
        alias = c.lam.get_alias(FunctionName=function_name, Name="live")
    except c.lam.exceptions.ClientError as exc:
        alias = {"error": exc.response.get("Error", {}).get("Code")}
    published = [
        v["Version"]
        for v in c.lam.list_versions_by_function(FunctionName=function_name)["Versions"]
        if v["Version"] != "$LATEST"
    ]
    r.equal("alias live exists (output ScoringFunctionAliasArn)", alias.get("AliasArn"), alias_arn)
    r.check(
        "alias live points to a published version of the function, not $LATEST",
        alias.get("FunctionVersion") in published
        and not alias.get("RoutingConfig", {}).get("AdditionalVersionWeights"),
        {"alias": alias.get("FunctionVersion"), "published": published, "routing": alias.get("RoutingConfig")},
    )
    version_id = next((name for name in resources if VERSION_ID.match(name)), "?")
    r.equal(
        "that version is the stack's published version",
        resources.get(version_id, {}).get("PhysicalResourceId"),
        f"{f.get('FunctionArn')}:{alias.get('FunctionVersion')}",
    )

    # Event source mapping: the queue's one mapping invokes the alias (so CodeDeploy's routing applies to it)
    mappings = c.lam.list_event_source_mappings(EventSourceArn=q["QueueArn"])["EventSourceMappings"]
    r.equal("one event source mapping on the ingest queue", len(mappings), 1)
    m = mappings[0] if mappings else {}
    r.equal("ESM invokes the alias live (not the unqualified function)", m.get("FunctionArn"), alias_arn)
    r.equal("ESM source is the ingest queue", m.get("EventSourceArn"), q["QueueArn"])
    r.equal("ESM batch size", m.get("BatchSize"), int(PARAMETERS["QueueBatchSize"]))
    r.equal(
        "ESM batching window", m.get("MaximumBatchingWindowInSeconds"), int(PARAMETERS["QueueBatchingWindowSeconds"])
    )
    r.equal(
        "ESM MaximumConcurrency",
        m.get("ScalingConfig", {}).get("MaximumConcurrency"),
        int(PARAMETERS["QueueMaximumConcurrency"]),
    )
    r.equal("ESM ReportBatchItemFailures", m.get("FunctionResponseTypes"), ["ReportBatchItemFailures"])

    # Bucket
    notification = c.s3.get_bucket_notification_configuration(Bucket=bucket)
    configs = notification.get("QueueConfigurations", [])
    rules = sorted(
        tuple(sorted((rule["Name"].lower(), rule["Value"]) for rule in cfg["Filter"]["Key"]["FilterRules"]))
        for cfg in configs
    )
    r.equal(
        "bucket notification filter (prefix and both suffixes)",
        rules,
        sorted([(("prefix", PREFIX), ("suffix", ".csv")), (("prefix", PREFIX), ("suffix", ".csv.gz"))]),
    )
    r.check(
        "bucket notifies the ingest queue of ObjectCreated only",
        all(cfg["QueueArn"] == q["QueueArn"] and cfg["Events"] == ["s3:ObjectCreated:*"] for cfg in configs)
        and not notification.get("LambdaFunctionConfigurations"),
        configs,
    )
    block = c.s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    r.check("bucket public access block (all four)", len(block) == 4 and all(block.values()), block)
    r.equal("bucket versioning", c.s3.get_bucket_versioning(Bucket=bucket).get("Status"), "Enabled")
    sse = c.s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    r.equal("bucket SSE-S3", sse["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"], "AES256")
    r.equal("bucket key", sse.get("BucketKeyEnabled"), True, gap=GAPS["bucket key"])
    ownership = c.s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    r.equal("bucket owner enforced (no ACLs)", ownership, [{"ObjectOwnership": "BucketOwnerEnforced"}])
    bucket_statements = statements(c.s3.get_bucket_policy(Bucket=bucket)["Policy"])
    r.check(
        "bucket policy denies requests without TLS (bucket and objects)",
        any(
            s.get("Effect") == "Deny"
            and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            and sorted(as_list(s.get("Resource"))) == sorted([bucket_arn, f"{bucket_arn}/*"])
            for s in bucket_statements
        ),
        bucket_statements,
    )
    logging = c.s3.get_bucket_logging(Bucket=bucket).get("LoggingEnabled", {})
    r.equal(
        "bucket access logging (InputBucketAccessLogBucket set)",
        (logging.get("TargetBucket"), logging.get("TargetPrefix")),
        (ACCESS_LOG_BUCKET, "tumour-scoring-input/"),
        gap=GAPS["access logging"],
    )
    try:
        lifecycle = c.s3.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
    except c.s3.exceptions.ClientError as exc:
        lifecycle = [exc.response.get("Error", {}).get("Code")]
    r.check(
        "bucket lifecycle (old versions, incomplete uploads)",
        any(
            rule.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays") == 30
            for rule in lifecycle
            if isinstance(rule, dict)
        ),
        lifecycle,
        gap=GAPS["lifecycle"],
    )

    # Log group
    groups = c.logs.describe_log_groups(logGroupNamePrefix=outputs.get("LogGroupName", "?"))["logGroups"]
    r.equal("log group exists", [g["logGroupName"] for g in groups], [outputs.get("LogGroupName")])
    r.equal("log retention", groups[0].get("retentionInDays") if groups else None, 30, gap=GAPS["log retention"])

    # Alarms (by their physical names: the stack's resources), each with its metric and dimensions
    alarms = {a["AlarmName"]: a for a in c.cw.describe_alarms()["MetricAlarms"]}
    service = ("service", "tumour-scoring")
    wanted: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
        "DeadLetterAlarm": (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            [("QueueName", d["QueueArn"].rsplit(":", 1)[-1])],
        ),
        "IngestQueueAgeAlarm": (
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            [("QueueName", q["QueueArn"].rsplit(":", 1)[-1])],
        ),
        "FunctionErrorsAlarm": ("AWS/Lambda", "Errors", [("FunctionName", function_name)]),
        "DriftAlarm": ("TumourScoring", "DriftDetected", [service]),
        "AccuracyAlarm": ("TumourScoring", "EstimatedAccuracy", [service]),
        # The rollback alarms: the new version's errors (alias and executed version), its model's drift and accuracy
        "NewVersionErrorsAlarm": (
            "AWS/Lambda",
            "Errors",
            [
                ("FunctionName", function_name),
                ("Resource", f"{function_name}:live"),
                ("ExecutedVersion", str(alias.get("FunctionVersion"))),
            ],
        ),
        "ModelVersionDriftAlarm": (
            "TumourScoring",
            "DriftDetected",
            [service, ("ModelVersion", PARAMETERS["ModelVersion"])],
        ),
        "ModelVersionAccuracyAlarm": (
            "TumourScoring",
            "EstimatedAccuracy",
            [service, ("ModelVersion", PARAMETERS["ModelVersion"])],
        ),
    }
    for logical_id, (namespace, metric, dimensions) in wanted.items():
        alarm = alarms.get(resources.get(logical_id, {}).get("PhysicalResourceId", "?"), {})
        r.equal(
            f"alarm {logical_id.removesuffix('Alarm')}: metric and dimensions",
            (
                alarm.get("Namespace"),
                alarm.get("MetricName"),
                [(dim.get("Name"), dim.get("Value")) for dim in alarm.get("Dimensions", [])],
            ),
            (namespace, metric, dimensions),
        )
        r.equal(
            f"alarm {logical_id.removesuffix('Alarm')}: notifies the topic (firing and clearing)",
            (alarm.get("AlarmActions"), alarm.get("OKActions")),
            ([topic_arn], [topic_arn]),
        )
    alarm_arns = [
        alarms.get(resources.get(a, {}).get("PhysicalResourceId", "?"), {}).get("AlarmArn") for a in ROLLBACK_ALARMS
    ]

    # CodeDeploy's role: trusted by CodeDeploy only, this function's alias and the rollback alarms only
    check_codedeploy_role(c, r, resources, str(f.get("FunctionArn")), alarm_arns)
    # The CodeDeploy application and deployment group (LocalStack's community core has no CodeDeploy: a gap)
    check_deployment_group(c, r, outputs, resources, PARAMETERS["DeploymentType"], alarms)

    # Outputs
    expected_outputs = {
        "InputBucketName": resources["InputBucket"]["PhysicalResourceId"],
        "ScoringFunctionName": resources["ScoringFunction"]["PhysicalResourceId"],
        "ScoringFunctionArn": f.get("FunctionArn"),
        "LogGroupName": f"/aws/lambda/{STACK}-scoring",
        "IngestQueueUrl": resources["IngestQueue"]["PhysicalResourceId"],
        "IngestQueueArn": q["QueueArn"],
        "DeadLetterQueueUrl": resources["DeadLetterQueue"]["PhysicalResourceId"],
        "DeadLetterQueueArn": d["QueueArn"],
        "DeadLetterAlarmName": resources["DeadLetterAlarm"]["PhysicalResourceId"],
        "FunctionErrorsAlarmName": resources["FunctionErrorsAlarm"]["PhysicalResourceId"],
        "IngestQueueAgeAlarmName": resources["IngestQueueAgeAlarm"]["PhysicalResourceId"],
        "UploadExample": f"aws s3 cp data/breast_cancer.csv s3://{bucket}/{PREFIX}",
        "ScoringFunctionAliasArn": f"{f.get('FunctionArn')}:live",
        "CodeDeployApplicationName": resources["ServerlessDeploymentApplication"]["PhysicalResourceId"],
        "CodeDeployDeploymentGroupName": resources["ScoringFunctionDeploymentGroup"]["PhysicalResourceId"],
        "DeploymentType": PARAMETERS["DeploymentType"],
        "ModelVersion": PARAMETERS["ModelVersion"],
        "ConfigurationFingerprint": PARAMETERS["ConfigurationFingerprint"],
        "NewVersionErrorsAlarmName": resources["NewVersionErrorsAlarm"]["PhysicalResourceId"],
    }
    r.equal("outputs", outputs, expected_outputs)
    return {
        "queue_url": queue_url,
        "dlq_url": dlq_url,
        "bucket": bucket,
        "function": function_name,
        "function_arn": str(f.get("FunctionArn")),
        "esm": str(m.get("UUID")),
        "alias_version": str(alias.get("FunctionVersion")),
        "version_id": version_id,
        "drift_alarm": resources.get("ModelVersionDriftAlarm", {}).get("PhysicalResourceId", "?"),
        "accuracy_alarm": resources.get("ModelVersionAccuracyAlarm", {}).get("PhysicalResourceId", "?"),
    }


def check_codedeploy_role(
    c: Clients, r: Report, resources: dict[str, Any], function_arn: str, alarms: list[Any]
) -> None:
    role_name = resources.get("CodeDeployRole", {}).get("PhysicalResourceId", "?")
    role = c.iam.get_role(RoleName=role_name)["Role"]
    trust = statements(role["AssumeRolePolicyDocument"])
    r.check(
        "CodeDeploy role trust: only codedeploy.amazonaws.com",
        [s.get("Principal") for s in trust] == [{"Service": "codedeploy.amazonaws.com"}],
        trust,
    )
    r.equal(
        "CodeDeploy role has no managed policies (not AWSCodeDeployRoleForLambdaLimited)",
        c.iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"],
        [],
    )
    by_action: dict[str, list[str]] = {}
    for name in c.iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        for s in statements(c.iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]):
            for action in as_list(s.get("Action")):
                by_action.setdefault(action, []).extend(as_list(s.get("Resource")))
    lambda_resources = {a: v for a, v in by_action.items() if a.startswith("lambda:")}
    r.check(
        "CodeDeploy role: Lambda actions only on this function and its alias",
        sorted(lambda_resources) == ["lambda:GetAlias", "lambda:GetProvisionedConcurrencyConfig", "lambda:UpdateAlias"]
        and all(
            len(v) == 1
            and fnmatch.fnmatchcase(function_arn, v[0])
            and fnmatch.fnmatchcase(f"{function_arn}:live", v[0])
            and v[0].endswith(f":function:{STACK}-ScoringFunction-*")
            for v in lambda_resources.values()
        ),
        lambda_resources,
    )
    r.equal(
        "CodeDeploy role: reads only the three rollback alarms",
        {a: sorted(v) for a, v in by_action.items() if not a.startswith("lambda:")},
        {"cloudwatch:DescribeAlarms": sorted(str(arn) for arn in alarms)},
    )


def check_deployment_group(
    c: Clients,
    r: Report,
    outputs: dict[str, str],
    resources: dict[str, Any],
    deployment_type: str,
    alarms: dict[str, Any],
) -> None:
    application = outputs.get("CodeDeployApplicationName", "?")
    try:
        group = c.codedeploy.get_deployment_group(
            applicationName=application, deploymentGroupName=outputs.get("CodeDeployDeploymentGroupName", "?")
        )["deploymentGroupInfo"]
    except Exception as exc:  # the emulator may have no CodeDeploy at all: a gap, with what it answered
        group = {"error": f"{type(exc).__name__}: {str(exc)[:160]}"}
    rollback = [resources.get(a, {}).get("PhysicalResourceId") for a in ROLLBACK_ALARMS]
    r.equal(
        "CodeDeploy deployment group: configuration is CodeDeployDefault.Lambda<DeploymentType>",
        group.get("deploymentConfigName", group.get("error")),
        f"CodeDeployDefault.Lambda{deployment_type}",
        gap=GAPS["codedeploy"],
    )
    r.equal(
        "CodeDeploy deployment group: rolls back on the three alarms, on failure and on request",
        (
            sorted(a.get("name") for a in group.get("alarmConfiguration", {}).get("alarms", [])),
            sorted(group.get("autoRollbackConfiguration", {}).get("events", [])),
            group.get("serviceRoleArn"),
        ),
        (
            sorted(rollback),
            ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST"],
            c.iam.get_role(RoleName=resources.get("CodeDeployRole", {}).get("PhysicalResourceId", "?"))["Role"]["Arn"],
        ),
        gap=GAPS["codedeploy"],
    )
    r.check(
        "the rollback alarms exist (CodeDeploy reads them by name)",
        all(name in alarms for name in rollback),
        rollback,
    )


def wait_for(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return predicate()


def drain(c: Clients, url: str, seconds: float) -> list[dict[str, Any]]:
    """Every message visible in `seconds`, deleted as read."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        batch = c.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, AttributeNames=["All"]
        ).get("Messages", [])
        for message in batch:
            found.append(message)
            c.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def notified_keys(messages: list[dict[str, Any]]) -> set[str]:
    keys = set()
    for message in messages:
        body = json.loads(message["Body"])
        for record in body.get("Records", []):
            keys.add(record["s3"]["object"]["key"])
    return keys


def check_behaviour(c: Clients, r: Report, ids: dict[str, str]) -> None:
    # The function cannot run here: stop the event source mapping so that this script is the queue's only reader.
    c.lam.update_event_source_mapping(UUID=ids["esm"], Enabled=False)
    r.check(
        "ESM can be disabled (so the checks below read the queue alone)",
        wait_for(lambda: c.lam.get_event_source_mapping(UUID=ids["esm"])["State"] == "Disabled", 30),
        c.lam.get_event_source_mapping(UUID=ids["esm"])["State"],
    )
    # The poller's last ReceiveMessage may still be waiting (up to the batching window) and would take a message
    # sent now: let it end, then drop what is there (S3's test events; not PurgeQueue, which may also drop what is
    # sent right after it).
    time.sleep(int(PARAMETERS["QueueBatchingWindowSeconds"]) + 3)
    drain(c, ids["queue_url"], 2)
    inside = [f"{PREFIX}a.csv", f"{PREFIX}b.csv.gz", f"{PREFIX}2026/c.csv"]
    outside = [
        f"{PREFIX}d.txt",
        f"{PREFIX}e.csv.bak",
        f"{PREFIX}g.json.gz",
        "elsewhere/f.csv",
        f"{PREFIX.rstrip('/')}.csv",
    ]
    for key in inside + outside:
        c.s3.put_object(Bucket=ids["bucket"], Key=key, Body=b"mean radius\n1.0\n")
    seen = notified_keys(drain(c, ids["queue_url"], 8))
    r.equal("uploads inside the filter notify the queue", sorted(seen & set(inside)), sorted(inside))
    r.equal("uploads outside the filter do not", sorted(seen - set(inside)), [])

    # A poison message: received maxReceiveCount times (never deleted), then it moves to the DLQ.
    max_receives = int(PARAMETERS["QueueMaxReceiveCount"])
    sent = c.sqs.send_message(QueueUrl=ids["queue_url"], MessageBody='{"poison": true}')["MessageId"]
    receives = 0
    for _ in range(max_receives + 3):
        batch = c.sqs.receive_message(QueueUrl=ids["queue_url"], WaitTimeSeconds=1, VisibilityTimeout=0).get(
            "Messages", []
        )
        receives += sum(1 for m in batch if m["MessageId"] == sent)
    r.equal("poison message received maxReceiveCount times from the queue", receives, max_receives)
    in_dlq = [m for m in drain(c, ids["dlq_url"], 5) if m["MessageId"] == sent]
    r.equal("poison message then waits in the DLQ", [m["Body"] for m in in_dlq], ['{"poison": true}'])


def check_update(c: Clients, r: Report, ids: dict[str, str]) -> None:
    status, outputs, resources = stack_state(c)
    r.equal("stack status after the second deploy", status, "UPDATE_COMPLETE")
    # The same fingerprint (the same code, settings and parameters as make deploy computes it): no new version, the
    # alias stays where it was, and the queue's mapping still invokes it
    alias = c.lam.get_alias(FunctionName=ids["function"], Name="live")
    r.equal(
        "second deploy (same ConfigurationFingerprint): no new version, alias live unchanged",
        (alias.get("FunctionVersion"), [name for name in resources if VERSION_ID.match(name)]),
        (ids["alias_version"], [ids["version_id"]]),
    )
    r.equal(
        "second deploy: the same mapping still invokes the alias",
        c.lam.get_event_source_mapping(UUID=ids["esm"]).get("FunctionArn"),
        f"{ids['function_arn']}:live",
    )
    m = c.lam.get_event_source_mapping(UUID=ids["esm"])
    r.equal(
        "second deploy: MaximumConcurrency updated in place (same mapping)",
        m.get("ScalingConfig", {}).get("MaximumConcurrency"),
        int(UPDATED["QueueMaximumConcurrency"]),
    )
    r.equal(
        "second deploy: function, queues and bucket kept (nothing replaced)",
        (outputs.get("ScoringFunctionArn"), outputs.get("IngestQueueUrl"), outputs.get("InputBucketName")),
        (ids["function_arn"], ids["queue_url"], ids["bucket"]),
    )


def check_delete(c: Clients, r: Report, ids: dict[str, str]) -> None:
    c.cfn.delete_stack(StackName=STACK)

    def gone() -> bool:
        try:
            return bool(c.cfn.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"] == "DELETE_COMPLETE")
        except c.cfn.exceptions.ClientError:
            return True

    r.check("stack delete completes", wait_for(gone, 120), "still there after 120 s")
    buckets = {b["Name"] for b in c.s3.list_buckets()["Buckets"]}
    r.check("stack delete keeps the input bucket (Retain)", ids["bucket"] in buckets, sorted(buckets))
    r.check(
        "stack delete keeps the dead-letter queue (Retain)",
        ids["dlq_url"] in c.sqs.list_queues().get("QueueUrls", []),
        "DLQ deleted",
    )
    r.check(
        "stack delete removes the ingest queue",
        ids["queue_url"] not in c.sqs.list_queues().get("QueueUrls", []),
        "still there",
    )
