"""`make deploy-local`: the real `sam deploy` of the built artifact into a local AWS emulator, then checks.

1. Starts LocalStack's community core on 127.0.0.1 (tools/localstack_offline.py, its own venv: `make localstack`),
   without Docker. Where this machine allows it (root, or user namespaces), everything runs in a network namespace
   of its own with only a loopback interface: no request can leave the machine, whatever any tool tries.
2. Runs `sam deploy --resolve-s3` (the pinned SAM CLI, build-cache/venv-sam) of .aws-sam/build/template.yaml.
3. Checks what was built through the emulator's APIs (boto3), never by re-reading the template: queues, event
   source mapping, function, role, bucket, log group, alarms, outputs.
4. Checks behaviour: uploads inside and outside the notification filter, a poison message reaching the DLQ after
   maxReceiveCount receives, a second deploy with a changed parameter updating in place, and a stack delete that
   keeps the bucket and the dead-letter queue.
5. Prints a summary (passed, failed, and the emulator's gaps, listed as such and never counted as passes), writes
   it to .local/deploy-local/summary.json, and stops what it started. Exit status 1 when any check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".local" / "deploy-local"
BUILT_TEMPLATE = ROOT / ".aws-sam" / "build" / "template.yaml"
STACK = "tumour-scoring-local"
REGION = "us-east-1"
NETNS_FLAG = "DEPLOY_LOCAL_NETNS"

# The parameters of the first deploy; the second changes QueueMaximumConcurrency only.
PARAMETERS = {
    "SnowflakeDatabase": "TUMOURS",
    "SnowflakeSchema": "SCORING",
    "SnowflakeWarehouse": "LOAD_WH",
    "QueueMaximumConcurrency": "5",
    "QueueBatchSize": "10",
    "QueueBatchingWindowSeconds": "2",
    "QueueMaxReceiveCount": "3",
}
UPDATED = {"QueueMaximumConcurrency": "7"}
ALARM_TOPIC = "tumour-scoring-local-alarms"
ACCESS_LOG_BUCKET = "tumour-scoring-local-access-logs"
PREFIX = "incoming/"

# What this emulator does not model (checked, and reported as a gap when it answers otherwise; never a pass).
GAPS = {
    "bucket key": "LocalStack's S3 does not keep BucketKeyEnabled",
    "lifecycle": "LocalStack's CloudFormation does not apply the bucket's LifecycleConfiguration",
    "log retention": "LocalStack's CloudFormation does not apply the log group's RetentionInDays",
    "access logging": "LocalStack's CloudFormation does not apply the bucket's LoggingConfiguration",
}
# Not checkable here at all.
UNCHECKABLE = {
    "the function runs": "no Lambda runtime here (no Docker, no download): `make invoke` and `make sam-local-invoke`"
    " run the artifact",
    "IAM and TLS-only policies are enforced": "LocalStack's community core stores policies but does not enforce them",
}


@dataclass
class Check:
    name: str
    status: str  # "pass", "fail" or "gap"
    detail: str = ""


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def check(self, name: str, ok: bool, detail: Any = "", gap: str | None = None) -> bool:
        status = "pass" if ok else ("gap" if gap else "fail")
        text = f"{gap}; the emulator answered {detail}" if (gap and not ok) else ("" if ok else str(detail))
        self.checks.append(Check(name, status, text))
        mark = {"pass": "ok  ", "fail": "FAIL", "gap": "gap "}[status]
        print(f"  {mark} {name}" + (f": {text}" if text else ""), file=sys.stderr, flush=True)
        return ok

    def equal(self, name: str, actual: Any, expected: Any, gap: str | None = None) -> bool:
        return self.check(name, actual == expected, f"{actual!r} (expected {expected!r})", gap)

    def count(self, status: str) -> int:
        return sum(1 for c in self.checks if c.status == status)


# --- the emulator -------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def emulator(venv: Path, report: Report) -> Iterator[str]:
    """LocalStack on 127.0.0.1:<free port>, stopped (its whole process group) on the way out."""
    port = free_port()
    data = WORK / "localstack"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    log = (WORK / "localstack.log").open("w")
    python = venv / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{python} missing: run `make localstack`")
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(python), str(ROOT / "tools" / "localstack_offline.py"), f"127.0.0.1:{port}", str(data)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=WORK,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the emulator exited ({proc.returncode}): see {WORK / 'localstack.log'}")
            try:
                with urllib.request.urlopen(f"{endpoint}/_localstack/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the emulator did not answer in 180 s: see {WORK / 'localstack.log'}")
            time.sleep(0.5)
        report.timings["emulator start"] = round(time.monotonic() - started, 1)
        print(f"[deploy-local] emulator up on {endpoint} ({report.timings['emulator start']} s)", file=sys.stderr)
        yield endpoint
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        print("[deploy-local] emulator stopped", file=sys.stderr)


def aws_env(endpoint: str) -> dict[str, str]:
    """Fake credentials (the emulator accepts any; real keys never reach it) and the emulator's endpoint."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(key, None)
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "SAM_CLI_TELEMETRY": "0",
            "SAM_CLI_POLL_DELAY": "1",
            "NO_PROXY": "*",
        }
    )
    return env


class Clients:
    def __init__(self, endpoint: str) -> None:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
        config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=60)

        def client(name: str) -> Any:
            return session.client(name, endpoint_url=endpoint, config=config)  # type: ignore[call-overload]

        self.cfn = client("cloudformation")
        self.sqs = client("sqs")
        self.s3 = client("s3")
        self.lam = client("lambda")
        self.iam = client("iam")
        self.logs = client("logs")
        self.cw = client("cloudwatch")
        self.sns = client("sns")


# --- sam deploy ---------------------------------------------------------------------------------------------------


def sam_deploy(sam: Path, endpoint: str, parameters: dict[str, str], label: str, report: Report) -> bool:
    overrides = [f"{k}={v}" for k, v in parameters.items()]
    command = [
        str(sam),
        "deploy",
        "--template-file",
        str(BUILT_TEMPLATE),
        "--stack-name",
        STACK,
        "--resolve-s3",
        "--region",
        REGION,
        "--capabilities",
        "CAPABILITY_IAM",
        "--no-confirm-changeset",
        "--no-fail-on-empty-changeset",
        "--no-progressbar",
        "--parameter-overrides",
        *overrides,
    ]
    log = WORK / f"sam-deploy-{label}.log"
    print(f"[deploy-local] sam deploy ({label}; log: {log.relative_to(ROOT)})", file=sys.stderr, flush=True)
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=aws_env(endpoint), cwd=ROOT)
    report.timings[f"sam deploy ({label})"] = round(time.monotonic() - started, 1)
    text = log.read_text(encoding="utf-8", errors="replace")
    tail = " | ".join(text.strip().splitlines()[-3:])
    return report.check(f"sam deploy ({label}) exits 0", proc.returncode == 0, f"exit {proc.returncode}: {tail}")


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


def check_wiring(c: Clients, r: Report, topic_arn: str) -> dict[str, str]:
    status, outputs, resources = stack_state(c)
    r.equal("stack status after the first deploy", status, "CREATE_COMPLETE")
    expected_resources = {
        "ScoringFunction",
        "ScoringFunctionRole",
        "ScoringFunctionLogGroup",
        "ScoringFunctionIngestQueueMessages",
        "InputBucket",
        "InputBucketPolicy",
        "IngestQueue",
        "IngestQueuePolicy",
        "DeadLetterQueue",
        "DeadLetterQueuePolicy",
        "DeadLetterAlarm",
        "FunctionErrorsAlarm",
        "IngestQueueAgeAlarm",
    }
    r.equal("stack resources", sorted(resources), sorted(expected_resources))
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

    # Event source mapping
    mappings = c.lam.list_event_source_mappings(FunctionName=function_name)["EventSourceMappings"]
    r.equal("one event source mapping", len(mappings), 1)
    m = mappings[0] if mappings else {}
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

    # Alarms
    alarms = {a["AlarmName"]: a for a in c.cw.describe_alarms()["MetricAlarms"]}
    wanted = {
        "DeadLetterAlarmName": ("AWS/SQS", "ApproximateNumberOfMessagesVisible", d["QueueArn"].rsplit(":", 1)[-1]),
        "IngestQueueAgeAlarmName": ("AWS/SQS", "ApproximateAgeOfOldestMessage", q["QueueArn"].rsplit(":", 1)[-1]),
        "FunctionErrorsAlarmName": ("AWS/Lambda", "Errors", function_name),
    }
    for output, (namespace, metric, dimension) in wanted.items():
        alarm = alarms.get(outputs.get(output, "?"), {})
        r.equal(
            f"alarm {output[: -len('AlarmName')]}: metric",
            (
                alarm.get("Namespace"),
                alarm.get("MetricName"),
                [dim.get("Value") for dim in alarm.get("Dimensions", [])],
            ),
            (namespace, metric, [dimension]),
        )
        r.equal(
            f"alarm {output[: -len('AlarmName')]}: notifies the topic (firing and clearing)",
            (alarm.get("AlarmActions"), alarm.get("OKActions")),
            ([topic_arn], [topic_arn]),
        )

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
    }
    r.equal("outputs", outputs, expected_outputs)
    return {
        "queue_url": queue_url,
        "dlq_url": dlq_url,
        "bucket": bucket,
        "function": function_name,
        "function_arn": str(f.get("FunctionArn")),
        "esm": str(m.get("UUID")),
    }


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
    status, outputs, _ = stack_state(c)
    r.equal("stack status after the second deploy", status, "UPDATE_COMPLETE")
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


def prepare(c: Clients) -> str:
    """What the optional parameters point at: an SNS topic for the alarms, a bucket for access logs."""
    c.s3.create_bucket(Bucket=ACCESS_LOG_BUCKET)
    arn: str = c.sns.create_topic(Name=ALARM_TOPIC)["TopicArn"]
    return arn


# --- isolation and main -------------------------------------------------------------------------------------------


def isolate(argv: list[str]) -> None:
    """Re-run in a new network namespace (loopback only) where the kernel allows it; else go on, saying so."""
    if os.environ.get(NETNS_FLAG):
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare and ip:
        for flags in (["-n"], ["-rn"]):
            probe = subprocess.run([unshare, *flags, ip, "link", "set", "lo", "up"], capture_output=True)
            if probe.returncode == 0:
                env = {**os.environ, NETNS_FLAG: " ".join(flags)}
                os.execvpe(unshare, [unshare, *flags, sys.executable, "-m", "tools.deploy_local", *argv], env)
    print(
        "[deploy-local] no network namespace here (unshare not permitted): running on the host's network,"
        " with telemetry off and every endpoint on 127.0.0.1",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sam", type=Path, default=ROOT / "build-cache" / "venv-sam" / "bin" / "sam")
    parser.add_argument("--localstack-venv", type=Path, default=ROOT / "build-cache" / "venv-localstack")
    parser.add_argument("--no-isolate", action="store_true", help="run on the host's network (loopback endpoints)")
    args = parser.parse_args(argv)
    if not args.no_isolate:
        isolate(argv)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(f"stopped by signal {signum}")  # unwinds through `emulator`, which stops it

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    if not BUILT_TEMPLATE.exists():
        raise SystemExit(f"{BUILT_TEMPLATE} missing: run `make build`")
    WORK.mkdir(parents=True, exist_ok=True)
    report = Report()
    netns = os.environ.get(NETNS_FLAG)
    report.notes.append(
        f"network: own namespace, loopback only (unshare {netns})" if netns else "network: the host's (no namespace)"
    )
    started = time.monotonic()
    ids: dict[str, str] = {}
    with emulator(args.localstack_venv.resolve(), report) as endpoint:
        c = Clients(endpoint)
        topic_arn = prepare(c)
        if sam_deploy(
            args.sam.resolve(),
            endpoint,
            {**PARAMETERS, "AlarmTopicArn": topic_arn, "InputBucketAccessLogBucket": ACCESS_LOG_BUCKET},
            "create",
            report,
        ):
            checks = time.monotonic()
            ids = check_wiring(c, report, topic_arn)
            check_behaviour(c, report, ids)
            report.timings["checks"] = round(time.monotonic() - checks, 1)
            second = {
                **PARAMETERS,
                **UPDATED,
                "AlarmTopicArn": topic_arn,
                "InputBucketAccessLogBucket": ACCESS_LOG_BUCKET,
            }
            if sam_deploy(args.sam.resolve(), endpoint, second, "update", report):
                check_update(c, report, ids)
            check_delete(c, report, ids)
    report.timings["total"] = round(time.monotonic() - started, 1)
    for name, reason in UNCHECKABLE.items():
        report.checks.append(Check(name, "gap", reason))
    summary = {
        "passed": report.count("pass"),
        "failed": report.count("fail"),
        "gaps": report.count("gap"),
        "checks": [asdict(c) for c in report.checks],
        "timings_s": report.timings,
        "notes": report.notes,
    }
    (WORK / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print("\n[deploy-local] summary", file=sys.stderr)
    for check in report.checks:
        if check.status != "pass":
            print(f"  {check.status.upper():4} {check.name}: {check.detail}", file=sys.stderr)
    print(
        f"  {summary['passed']} passed, {summary['failed']} failed; {summary['gaps']} emulator gaps (not passes);"
        f" timings {report.timings}; {'; '.join(report.notes)}",
        file=sys.stderr,
    )
    return 1 if summary["failed"] or not ids else 0


if __name__ == "__main__":
    sys.exit(main())
