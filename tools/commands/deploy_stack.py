"""What `make deploy-local` deploys and how it reports: the stack's names and parameters, the emulator's known
gaps, the report of checks, and the boto3 clients pointed at the emulator (tools/commands/deploy_local.py)."""

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
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
