"""The deployed trigger, on the local stack: S3 -> IngestQueue (-> its DLQ) as template.yaml declares it.

Everything is read from template.yaml (tools/sam_template.py), never copied: the SQS event source of the function
(batch size, batching window, maximum concurrency), the queue it reads (visibility timeout, retention, redrive
policy: its dead-letter queue and maxReceiveCount) and the bucket's notification configuration (events, prefix and
suffix filters) that sends to it. ``wire_queue`` creates the two queues on moto and puts that configuration on the
bucket, so that a ``put_object`` sends a real S3 notification to the queue; poller.py then plays the event
source mapping. Development only: nothing here is shipped.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from tools.sam_template import FUNCTION_ID, load_template, parameter_values, resolve

INGEST_QUEUE = "tumour-scoring-ingest-local"
DEAD_LETTER_QUEUE = "tumour-scoring-dlq-local"


@lru_cache(maxsize=1)
def _default_template() -> dict[str, Any]:
    return load_template()  # parsed once per process (the pure-Python YAML loader takes ~0.1 s)


def _get_att(value: Any) -> str:
    """The logical id an ``!GetAtt X.Arn`` names."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return str(value["Fn::GetAtt"][0])
    raise ValueError(f"expected !GetAtt <queue>.Arn, got {value!r}")


@dataclass(frozen=True)
class QueueSettings:
    """The event source mapping and queue attributes of template.yaml, parameters resolved (defaults unless given)."""

    batch_size: int
    maximum_concurrency: int
    batching_window_seconds: float
    visibility_timeout: int
    max_receive_count: int
    message_retention_seconds: int
    dlq_message_retention_seconds: int
    # boto3's QueueConfigurations without QueueArn: {"Events": [...], "Filter": {"Key": {"FilterRules": [...]}}}
    notifications: tuple[dict[str, Any], ...]

    @classmethod
    def from_template(
        cls, template: dict[str, Any] | None = None, parameters: dict[str, str] | None = None, **overrides: Any
    ) -> QueueSettings:
        """Read from template.yaml; ``overrides`` replace fields (e.g. a short ``visibility_timeout`` in tests), and
        an override of None keeps the template's value (a command-line flag that was not given)."""
        template = template or _default_template()
        params = parameter_values(template, parameters)
        resources = template["Resources"]
        [source] = [
            e["Properties"]
            for e in resources[FUNCTION_ID]["Properties"].get("Events", {}).values()
            if e.get("Type") == "SQS"
        ]
        queue_id = _get_att(source["Queue"])
        source = resolve({k: v for k, v in source.items() if k != "Queue"}, params)
        queue = resources[queue_id]["Properties"]
        dlq_id = _get_att(queue["RedrivePolicy"]["deadLetterTargetArn"])
        max_receive_count = resolve(queue["RedrivePolicy"]["maxReceiveCount"], params)
        queue = resolve({k: v for k, v in queue.items() if k != "RedrivePolicy"}, params)
        dlq = resolve(resources[dlq_id]["Properties"], params)
        notifications = []
        for bucket in resources.values():
            config = (bucket.get("Properties") or {}).get("NotificationConfiguration") or {}
            for entry in config.get("QueueConfigurations", []):
                if _get_att(entry["Queue"]) != queue_id:
                    continue
                entry = resolve({k: v for k, v in entry.items() if k != "Queue"}, params)
                rules = entry.get("Filter", {}).get("S3Key", {}).get("Rules", [])
                filters = {"Filter": {"Key": {"FilterRules": rules}}} if rules else {}
                notifications.append({"Events": [entry["Event"]], **filters})
        settings = cls(
            batch_size=int(source.get("BatchSize", 10)),
            maximum_concurrency=int(source.get("ScalingConfig", {}).get("MaximumConcurrency", 1000)),
            batching_window_seconds=float(source.get("MaximumBatchingWindowInSeconds", 0)),
            visibility_timeout=int(queue.get("VisibilityTimeout", 30)),
            max_receive_count=int(max_receive_count),
            message_retention_seconds=int(queue.get("MessageRetentionPeriod", 345_600)),
            dlq_message_retention_seconds=int(dlq.get("MessageRetentionPeriod", 345_600)),
            notifications=tuple(notifications),
        )
        return replace(settings, **{name: value for name, value in overrides.items() if value is not None})

    def notifies(self, key: str, event: str = "s3:ObjectCreated:Put") -> bool:
        """Whether the bucket's notification configuration sends ``event`` for ``key`` to the queue."""
        for notification in self.notifications:
            patterns = notification["Events"]
            if not any(event == p or (p.endswith("*") and event.startswith(p[:-1])) for p in patterns):
                continue
            rules = {
                r["Name"].lower(): r["Value"]
                for r in notification.get("Filter", {}).get("Key", {}).get("FilterRules", [])
            }
            if key.startswith(rules.get("prefix", "")) and key.endswith(rules.get("suffix", "")):
                return True
        return False

    def filters_text(self) -> str:
        """The filters in words, for error messages: ``under incoming/ ending in .csv or .csv.gz``."""
        rules = [
            {r["Name"].lower(): r["Value"] for r in n.get("Filter", {}).get("Key", {}).get("FilterRules", [])}
            for n in self.notifications
        ]
        prefixes = sorted({r.get("prefix", "") for r in rules})
        suffixes = " or ".join(sorted({r.get("suffix", "") for r in rules if r.get("suffix")}))
        return f"under {' or '.join(p or '(any prefix)' for p in prefixes)}" + (
            f" ending in {suffixes}" if suffixes else ""
        )


@dataclass(frozen=True)
class Queues:
    """The local ingest queue and its dead-letter queue."""

    url: str
    arn: str
    dlq_url: str
    dlq_arn: str
    region: str


def wire_queue(
    stack: Any,
    settings: QueueSettings | None = None,
    *,
    bucket: str | None = None,
    queue_name: str = INGEST_QUEUE,
    dlq_name: str = DEAD_LETTER_QUEUE,
) -> Queues:
    """Create the ingest queue and its DLQ on moto with the template's attributes, and put the template's
    notification configuration on the bucket (idempotent; S3 then sends its ``s3:TestEvent`` to the queue)."""
    settings = settings or QueueSettings.from_template()
    sqs = stack.client("sqs")

    def create(name: str, attributes: dict[str, str]) -> tuple[str, str]:
        url = sqs.create_queue(QueueName=name)["QueueUrl"]  # then set: create_queue refuses different attributes
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return str(url), str(arn)

    dlq_url, dlq_arn = create(dlq_name, {"MessageRetentionPeriod": str(settings.dlq_message_retention_seconds)})
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": settings.max_receive_count}
    url, arn = create(
        queue_name,
        {
            "VisibilityTimeout": str(settings.visibility_timeout),
            "MessageRetentionPeriod": str(settings.message_retention_seconds),
            "RedrivePolicy": json.dumps(redrive),
        },
    )
    s3 = stack.client("s3")
    bucket = bucket or stack.bucket
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, **n} for n in settings.notifications]},
    )
    return Queues(url=url, arn=arn, dlq_url=dlq_url, dlq_arn=dlq_arn, region=arn.split(":")[3])
