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

# The parameters of the first deploy (ModelVersion and ConfigurationFingerprint as `make deploy` sets them, so the
# per-model-version rollback alarms exist; a DeploymentType other than the default, to see it arrive); the second
# changes the queue's concurrency only, with the same fingerprint: no new version, the alias stays. (A new fingerprint
# or model version cannot be deployed here: UNCHECKABLE says why.)
PARAMETERS = {
    "SnowflakeDatabase": "TUMOURS",
    "SnowflakeSchema": "SCORING",
    "SnowflakeWarehouse": "LOAD_WH",
    "QueueMaximumConcurrency": "5",
    "QueueBatchSize": "10",
    "QueueBatchingWindowSeconds": "2",
    "QueueMaxReceiveCount": "3",
    "DeploymentType": "Linear10PercentEvery1Minute",
    "ModelVersion": "local-model-1.0.0+0123456789ab.cdef0123",
    "ConfigurationFingerprint": "1111111111aaaaaaaaaaaaaaaaaaaaaa",
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
    "codedeploy": "LocalStack's community core has no CodeDeploy: the application and deployment group are"
    " placeholders (physical id 'unknown'), so no traffic shift, configuration or rollback alarm can be read back",
}
# LocalStack's CloudFormation never answers CreateChangeSet for a template whose DeploymentPreference has Alarms (its
# request thread spins; measured with 2026.3.0, any Alarms list, with or without Fn::If). Its CodeDeploy resources are
# placeholders anyway, so deploy-local deploys the built template with DeploymentPreference.Alarms removed, and says so;
# the alarms themselves are deployed and checked, and the group's alarm list is tests/template/test_canary.py's.
EMULATOR_TEMPLATE = WORK / "template.emulator.yaml"
# Not checkable here at all.
UNCHECKABLE = {
    "the function runs": "no Lambda runtime here (no Docker, no download): `make invoke` and `make sam-local-invoke`"
    " run the artifact",
    "IAM and TLS-only policies are enforced": "LocalStack's community core stores policies but does not enforce them",
    "the deployment group's rollback alarms": "removed from the template deploy-local deploys (LocalStack's"
    " CloudFormation hangs on DeploymentPreference.Alarms): tests/template/test_canary.py on the translated template",
    "traffic shifting and automatic rollback": "no CodeDeploy here; the shift and the rollback are CodeDeploy's,"
    " configured as tests/template/test_canary.py checks",
    "a new version moves the alias": "LocalStack's CloudFormation updates an alias by creating it again (CreateAlias:"
    " 'Alias already exists', the update rolls back): tests/template/test_canary.py (the fingerprint decides the"
    " version)",
    "a new ModelVersion updates the per-model alarms": "LocalStack's CloudFormation does not implement updating an"
    " AWS::CloudWatch::Alarm (it keeps the old one silently): tests/template/test_canary.py",
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
        self.codedeploy = client("codedeploy")
