"""Backfill through the queue: one S3 ObjectCreated notification per listed object to the deployed stack's ingest
queue (its output IngestQueueUrl), 10 to a SendMessageBatch call, with retries; `make backfill S3=...` (the default
mode of tools/commands/backfill.py, which describes it).
"""

from __future__ import annotations

import itertools
import json
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.ports import ObjectRef
from tools.commands.backfill_listing import BackfillError, describe, list_latest

ROOT = Path(__file__).resolve().parents[2]
SAMCONFIG = ROOT / "samconfig.toml"
QUEUE_OUTPUT = "IngestQueueUrl"
BATCH_SIZE = 10  # SendMessageBatch's maximum
SEND_ATTEMPTS = 4  # sends of an entry SQS failed on its side, before it is reported
CONFIGURATION_ID = "backfill"
ORIGIN = {"origin": {"DataType": "String", "StringValue": "tools.backfill"}}


def samconfig_defaults(path: Path = SAMCONFIG) -> dict[str, str]:
    """``stack_name`` and ``region`` from samconfig.toml's default environment (deploy over global), if set."""
    if not path.is_file():
        return {}
    default = tomllib.loads(path.read_text(encoding="utf-8")).get("default", {})
    found: dict[str, str] = {}
    for command in ("global", "deploy"):
        parameters = default.get(command, {}).get("parameters", {})
        found.update({k: str(parameters[k]) for k in ("stack_name", "region") if parameters.get(k)})
    return found


@dataclass(frozen=True)
class Target:
    """Where a backfill goes: the deployed stack's ingest queue, and what its function may read."""

    stack: str
    queue_url: str
    bucket: str | None = None  # output InputBucketName
    input_prefix: str | None = None  # parameter InputPrefix

    def prefix_for(self, bucket: str, prefix: str) -> str:
        """The prefix to list: ``prefix``, narrowed to InputPrefix when wider; an error outside what the
        function may read (it could only fail those objects, and fill the dead-letter queue)."""
        if self.bucket is not None and bucket != self.bucket:
            raise BackfillError(f"stack {self.stack} reads bucket {self.bucket}, not {bucket}")
        if self.input_prefix is None or prefix.startswith(self.input_prefix):
            return prefix
        if self.input_prefix.startswith(prefix):
            return self.input_prefix
        raise BackfillError(
            f"stack {self.stack} reads only s3://{bucket}/{self.input_prefix} (InputPrefix), not s3://{bucket}/{prefix}"
        )


def find_target(cloudformation: Any, stack: str) -> Target:
    """The stack's ingest queue (output IngestQueueUrl), bucket and input prefix, from DescribeStacks."""
    from botocore.exceptions import ClientError

    try:
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationError":  # CloudFormation's "does not exist"
            raise BackfillError(
                f"no CloudFormation stack {stack!r} here (give --stack / STACK=, or --region; for the bucket of a "
                "running `make local-stack`: make backfill LOCAL=1 S3=s3://BUCKET/PREFIX)"
            ) from exc
        raise
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue") for p in described.get("Parameters", [])}
    if QUEUE_OUTPUT not in outputs:
        raise BackfillError(
            f"stack {stack} has no {QUEUE_OUTPUT} output (deployed before the ingest queue?): deploy the current "
            "template, or run the backfill here with --in-process"
        )
    return Target(stack, outputs[QUEUE_OUTPUT], outputs.get("InputBucketName"), parameters.get("InputPrefix"))


def notification(ref: ObjectRef, *, region: str, event_time: str) -> dict[str, Any]:
    """The S3 ObjectCreated notification for one listed object version, marked as a backfill."""
    from tools.emulated.s3_events import s3_put_event

    return s3_put_event(
        ref.bucket,
        ref.key,
        ref.etag or "",
        ref.size or 0,
        ref.version_id,
        sequencer=None,
        configuration_id=CONFIGURATION_ID,
        event_time=event_time,
        region=region,
    )


@dataclass
class SendSummary:
    stack: str
    queue_url: str
    bucket: str
    prefix: str
    dry_run: bool
    objects: int = 0
    sent: int = 0
    failed: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    stopped: str | None = None  # why the run stopped before the end of the listing

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def send_batch(
    sqs: Any,
    queue_url: str,
    refs: Iterable[ObjectRef],
    *,
    region: str,
    attempts: int = SEND_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
    message: Callable[..., dict[str, Any]] = notification,
    attributes: dict[str, Any] = ORIGIN,
) -> list[dict[str, Any]]:
    """Send one message per ref (at most 10) in one SendMessageBatch; what could not be sent, with SQS's reason.

    Entries SQS failed on its side are sent again (``attempts`` sends in all, backing off); an entry it failed
    as the sender's fault is reported at once, since sending it again cannot help. ``message`` makes each body
    (``notification``, or the rescore's), with the message ``attributes``.
    """
    event_time = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    pending = {
        str(i): (
            ref,
            {
                "Id": str(i),
                "MessageBody": json.dumps(message(ref, region=region, event_time=event_time)),
                "MessageAttributes": attributes,
            },
        )
        for i, ref in enumerate(refs)
    }
    failures: list[dict[str, Any]] = []
    for attempt in range(attempts):
        if attempt:
            sleep(0.2 * 2**attempt)
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=[entry for _, entry in pending.values()])
        again = {}
        for failed in response.get("Failed", []):
            ref, entry = pending[failed["Id"]]
            failure = {
                "key": ref.key,
                "version_id": ref.version_id,
                "code": failed.get("Code"),
                "message": failed.get("Message"),
                "sender_fault": bool(failed.get("SenderFault")),
                "attempts": attempt + 1,
            }
            if failed.get("SenderFault") or attempt == attempts - 1:
                failures.append(failure)
            else:
                again[failed["Id"]] = (ref, entry)
        pending = again
        if not pending:
            break
    return failures


def backfill_to_queue(
    s3: Any,
    sqs: Any,
    target: Target,
    bucket: str,
    prefix: str,
    *,
    dry_run: bool = False,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    refs: Iterable[ObjectRef] | None = None,
    message: Callable[..., dict[str, Any]] = notification,
    attributes: dict[str, Any] = ORIGIN,
) -> dict[str, Any]:
    """Send a notification for every object under the prefix to the target's queue (or, dry, only list them).

    ``refs``: the objects to send instead of the prefix's listing (a rescore's, from the ledger); ``message`` and
    ``attributes``: each message's body and attributes (send_batch)."""
    from botocore.exceptions import BotoCoreError, ClientError
    from tqdm import tqdm

    prefix = target.prefix_for(bucket, prefix)
    summary = SendSummary(target.stack, target.queue_url, bucket, prefix, dry_run)
    region = str(sqs.meta.region_name)
    verb = "listed" if dry_run else "sent"
    batch: tuple[ObjectRef, ...] = ()
    with tqdm(unit="obj", disable=not progress, desc=f"s3://{bucket}/{prefix} -> {target.stack}") as bar:
        try:
            listed = list_latest(s3, bucket, prefix) if refs is None else refs
            for batch in itertools.batched(listed, BATCH_SIZE, strict=False):
                summary.objects += len(batch)
                if dry_run:
                    for ref in batch:
                        tqdm.write(describe(ref))
                else:
                    failures = send_batch(
                        sqs, target.queue_url, batch, region=region, sleep=sleep, message=message, attributes=attributes
                    )
                    summary.sent += len(batch) - len(failures)
                    summary.failed += len(failures)
                    summary.failures.extend(failures)
                bar.set_postfix(
                    {verb: summary.objects if dry_run else summary.sent, "failed": summary.failed}, refresh=False
                )
                bar.update(len(batch))
                batch = ()
        except (BotoCoreError, ClientError) as exc:  # after botocore's own retries: nothing more can be sent
            code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
            summary.stopped = f"{type(exc).__name__}: {code or exc}"
            for ref in batch:  # the batch in flight may or may not have gone: reported, never dropped silently
                summary.failed += 1
                summary.failures.append({"key": ref.key, "version_id": ref.version_id, "code": code, "attempts": 1})
    return summary.as_dict()


def _session(region: str | None) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(region_name=region)
    config = Config(retries={"mode": "standard", "max_attempts": 5})
    return lambda service: session.client(service, config=config)
