"""Backfill: load the objects already under an S3 prefix through the same path as new uploads.

**Through the queue** (the default, for a deployed stack): one S3 ObjectCreated notification per ``.csv`` /
``.csv.gz`` object under ``s3://BUCKET/PREFIX`` goes to the stack's ingest queue, the queue S3 itself notifies
(the CloudFormation output ``IngestQueueUrl`` of ``--stack``, by default samconfig.toml's ``stack_name``). The
function then works through them in the cloud at the queue's bounded concurrency (``QueueMaximumConcurrency``),
with its retries and dead-letter queue; versions the ledger already has come back ``duplicate``.

* Listed page by page (ListObjectVersions on a versioned bucket, ListObjectsV2 otherwise) and sent 10 to a
  SendMessageBatch call, so memory stays flat however many objects there are; a message per object, as S3 sends.
* The message names the current version (``versionId``) when the bucket is versioned, as S3's own notifications
  do: the ledger keys a load on the version id (else the ETag), so a backfilled object already loaded by its
  upload's notification is the same load and comes back ``duplicate``. Deleted objects (a delete marker on top)
  are not sent. No ``sequencer`` (only S3 has one): versions are ordered by Last-Modified (docs/exactly-once.md).
* Marked as a backfill: ``configurationId`` "backfill" (S3 puts the name of the notification configuration
  there) and the message attribute ``origin`` = "tools.backfill"; the function ignores both.
* Entries a batch fails are retried (up to 4 sends, with backoff) unless SQS says the request itself is wrong
  (``SenderFault``), then reported in the summary, and the exit status is 1.
* ``--dry-run`` lists what would be sent and sends nothing. Sending twice is harmless: the ledger skips.

``--dry-run`` means the same in every mode (queue, ``--in-process``, ``--local``): it lists the objects that would
be sent or loaded, counts them, and sends, loads and writes nothing (no message, no Snowflake connection, no
table, no row, no ledger row).

**In process** (``--in-process``, and ``--local``): every object goes through ``Pipeline.process`` here, as
before: ``--workers`` at a time, each with its own Pipeline and Snowflake connection, sharing the Scorer (it
holds a lock). Configuration is the function's own environment variables (``SNOWFLAKE_*``, ``TARGET_TABLE``...).

**On the local stack** (``--local s3://hospital-drop-local/PREFIX``): in process, with the function's environment
pointed at the running ``make local-stack`` (read from the env file it writes, .local/sam-env.json): a prefix of
its bucket, where you put your files (``aws --endpoint-url`` it prints, or ``sam local invoke``'s events).
``--local`` alone is a self-contained demo instead: a fresh moto + fakesnow, seeded with generated files.

    make backfill S3=s3://my-bucket/incoming/2025/ [STACK=tumour-scoring] [IN_PROCESS=1] [DRY_RUN=1]
    make backfill LOCAL=1 S3=s3://hospital-drop-local/incoming/ [DRY_RUN=1]   # the running make local-stack
    make backfill LOCAL=1 [DRY_RUN=1]                                          # the self-contained demo
    PYTHONPATH=src:. .venv/bin/python -m tools.commands.backfill s3://bucket/incoming/ --stack tumour-scoring --dry-run
    PYTHONPATH=src:. .venv/bin/python -m tools.commands.backfill s3://bucket/incoming/ --in-process --workers 4
    PYTHONPATH=src:. .venv/bin/python -m tools.commands.backfill --local [--dry-run]  # a fresh moto + fakesnow, seeded

Development / operations tool: runs on a workstation with the dev venv (boto3, tqdm), not in the Lambda.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.ports import ObjectRef

SUFFIXES = (".csv", ".csv.gz")
ROOT = Path(__file__).resolve().parents[2]
SAMCONFIG = ROOT / "samconfig.toml"
LOCAL_STACK_ENV = ROOT / ".local" / "sam-env.json"  # written by `make local-stack` (tools/commands/serve_stack.py)
QUEUE_OUTPUT = "IngestQueueUrl"
BATCH_SIZE = 10  # SendMessageBatch's maximum
SEND_ATTEMPTS = 4  # sends of an entry SQS failed on its side, before it is reported
CONFIGURATION_ID = "backfill"
ORIGIN = {"origin": {"DataType": "String", "StringValue": "tools.backfill"}}


class BackfillError(Exception):
    """A backfill that cannot start: what is wrong, in words for the operator."""


def parse_s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise ValueError(f"expected s3://bucket/prefix, got {url!r}")
    bucket, _, prefix = url[5:].partition("/")
    return bucket, prefix


def list_latest(s3: Any, bucket: str, prefix: str) -> Iterator[ObjectRef]:
    """The current version of every .csv / .csv.gz object under the prefix, page by page, as ObjectRefs.

    On a versioned bucket (versioning Enabled or Suspended) ListObjectVersions gives each current version's id in
    the same page as its ETag and size (ListObjectsV2 has no version ids; a HEAD per object would double the
    requests); a key whose current version is a delete marker is left out. A version written while versioning
    was suspended has the id "null": it is named by its ETag instead, as for an unversioned bucket.
    """
    versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if versioning not in ("Enabled", "Suspended"):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if obj["Key"].lower().endswith(SUFFIXES):
                    yield ObjectRef(bucket, obj["Key"], None, obj["ETag"].strip('"'), int(obj["Size"]))
        return
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for version in page.get("Versions", []):
            if version["IsLatest"] and version["Key"].lower().endswith(SUFFIXES):
                version_id = None if version["VersionId"] == "null" else version["VersionId"]
                yield ObjectRef(bucket, version["Key"], version_id, version["ETag"].strip('"'), int(version["Size"]))


# --- through the queue ------------------------------------------------------------------------------------------
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
) -> list[dict[str, Any]]:
    """Send one message per ref (at most 10) in one SendMessageBatch; what could not be sent, with SQS's reason.

    Entries SQS failed on its side are sent again (``attempts`` sends in all, backing off); an entry it failed
    as the sender's fault is reported at once, since sending it again cannot help.
    """
    event_time = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    pending = {
        str(i): (
            ref,
            {
                "Id": str(i),
                "MessageBody": json.dumps(notification(ref, region=region, event_time=event_time)),
                "MessageAttributes": ORIGIN,
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
) -> dict[str, Any]:
    """Send a notification for every object under the prefix to the target's queue (or, dry, only list them)."""
    from botocore.exceptions import BotoCoreError, ClientError
    from tqdm import tqdm

    prefix = target.prefix_for(bucket, prefix)
    summary = SendSummary(target.stack, target.queue_url, bucket, prefix, dry_run)
    region = str(sqs.meta.region_name)
    verb = "listed" if dry_run else "sent"
    batch: tuple[ObjectRef, ...] = ()
    with tqdm(unit="obj", disable=not progress, desc=f"s3://{bucket}/{prefix} -> {target.stack}") as bar:
        try:
            for batch in itertools.batched(list_latest(s3, bucket, prefix), BATCH_SIZE, strict=False):
                summary.objects += len(batch)
                if dry_run:
                    for ref in batch:
                        tqdm.write(describe(ref))
                else:
                    failures = send_batch(sqs, target.queue_url, batch, region=region, sleep=sleep)
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


# --- in process ---------------------------------------------------------------------------------------------------
@dataclass
class Summary:
    dry_run: bool = False
    statuses: Counter[str] = field(default_factory=Counter)
    rows_loaded: int = 0
    rows_rejected: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "objects": sum(self.statuses.values()),
            "loaded": self.statuses["loaded"],
            "duplicate": self.statuses["duplicate"],
            "failed": self.statuses["failed"],
            "errors": self.statuses["error"],
            "rows_loaded": self.rows_loaded,
            "rows_rejected": self.rows_rejected,
            "error_details": self.errors,
        }


def _pipeline_factory() -> Callable[[], Any]:
    """One Pipeline per worker thread (own S3 client and Snowflake connection), one shared Scorer."""
    import boto3

    from adapters.s3 import S3Source
    from adapters.secrets import SecretsProvider
    from adapters.snowflake import SnowflakeWarehouse
    from pipeline.process import Pipeline
    from pipeline.settings import get_settings
    from scoring import Scorer

    settings = get_settings()
    scorer = Scorer.load(settings.model_dir, threshold=settings.decision_threshold)
    secrets = SecretsProvider(settings.secret_name)
    local = threading.local()
    made: list[Any] = []
    lock = threading.Lock()

    def get() -> Any:
        if not hasattr(local, "pipeline"):
            local.pipeline = Pipeline(
                settings=settings,
                scorer=scorer,
                source=S3Source(boto3.session.Session().client("s3")),
                warehouse=SnowflakeWarehouse(settings, secrets.credentials),
            )
            with lock:
                made.append(local.pipeline)
        return local.pipeline

    get.all = made  # type: ignore[attr-defined]
    return get


def describe(ref: ObjectRef) -> str:
    """An object as a dry run lists it: its URL, and its version when the bucket has one."""
    return f"s3://{ref.bucket}/{ref.key}" + (f" ({ref.version_id})" if ref.version_id else "")


def backfill(
    bucket: str,
    prefix: str,
    *,
    workers: int = 4,
    progress: bool = True,
    s3: Any = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Run every object under the prefix through Pipeline.process; return the summary.

    ``dry_run``: list the objects that would be loaded (on stdout) and count them, and nothing more: no
    Pipeline, no Snowflake connection, no table, no ledger row, no message."""
    import boto3
    from tqdm import tqdm

    from pipeline.errors import PipelineError

    s3 = s3 or boto3.client("s3")
    get_pipeline = None if dry_run else _pipeline_factory()  # the settings checked before anything is listed
    refs = list(list_latest(s3, bucket, prefix))
    if get_pipeline is None:
        for ref in refs:
            print(describe(ref))
        summary = Summary(dry_run=True)
        summary.statuses["would_load"] = len(refs)
        return {**summary.as_dict(), "would_load": len(refs)}
    summary = Summary()

    def run(ref: Any) -> dict[str, Any]:
        try:
            return dict(get_pipeline().process(ref).as_dict())
        except PipelineError as exc:
            return {"key": ref.key, "status": "error", "reason_code": exc.reason, "reason": str(exc)}

    try:
        with (
            ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="backfill") as pool,
            tqdm(total=len(refs), unit="obj", disable=not progress, desc=f"s3://{bucket}/{prefix}") as bar,
        ):
            futures = [pool.submit(run, ref) for ref in refs]
            for future in as_completed(futures):
                result = future.result()
                summary.statuses[result["status"]] += 1
                summary.rows_loaded += int(result.get("rows_loaded") or 0)
                summary.rows_rejected += int(result.get("rows_rejected") or 0)
                if result["status"] in {"error", "failed"}:
                    summary.errors.append({k: str(result.get(k)) for k in ("key", "status", "reason_code", "reason")})
                bar.set_postfix(summary.statuses, refresh=False)
                bar.update(1)
    finally:
        for pipeline in get_pipeline.all:  # type: ignore[attr-defined]
            pipeline.warehouse.close()
    return summary.as_dict()


def _local_demo(workers: int, progress: bool, *, dry_run: bool = False, db_path: Path | None = None) -> dict[str, Any]:
    """A fresh local stack seeded with a few generated files, one of them loaded beforehand.

    ``dry_run``: the emulated bucket is seeded (the demo's stand-in for a bucket that already holds files), then
    the objects are listed and nothing is loaded: not even the one the demo loads beforehand.
    ``db_path``: where the emulated Snowflake keeps its files (None: in memory, gone after the run)."""
    import gzip

    from tools.emulated.local_stack import local_stack
    from tools.emulated.s3_events import upload
    from tools.make_files import make_file

    with local_stack(db_path) as stack:
        os.environ.update(stack.function_env())
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            for i in range(5):
                path = make_file(2_000 + 500 * i, Path(tmp) / f"f{i}.csv", seed=i)
                body = path.read_bytes()
                name = f"backfill/2026/part-{i}.csv" + (".gz" if i % 2 else "")
                upload(stack, name, gzip.compress(body) if i % 2 else body)
        upload(stack, "backfill/2026/readme.txt", b"not a csv: not listed")
        s3 = stack.client("s3")
        if dry_run:
            print("dry run: the demo would pre-load")
            backfill(stack.bucket, "backfill/2026/part-0", progress=False, s3=s3, dry_run=True)
            print("then backfill")
            return backfill(stack.bucket, "backfill/", progress=False, s3=s3, dry_run=True)
        first = backfill(stack.bucket, "backfill/2026/part-0", workers=1, progress=False, s3=s3)
        print(f"pre-loaded: {json.dumps({k: v for k, v in first.items() if k != 'error_details'})}")
        return backfill(stack.bucket, "backfill/", workers=workers, progress=progress, s3=s3)


def local_stack_environment(env_file: Path = LOCAL_STACK_ENV) -> dict[str, str]:
    """The function's environment pointed at the running ``make local-stack``, from the env file it wrote.

    Raises BackfillError, saying what to start, when there is no such file or nothing answers at its endpoint."""
    import socket
    from urllib.parse import urlsplit

    from tools.emulated.local_stack import LocalStack

    start = "start `make local-stack` in another shell (it writes that file and runs until Ctrl-C)"
    try:
        [declared] = json.loads(env_file.read_text(encoding="utf-8")).values()
        endpoint = urlsplit(declared["AWS_ENDPOINT_URL"])
        stack = LocalStack(
            aws_endpoint=declared["AWS_ENDPOINT_URL"],
            snowflake_host=declared["SNOWFLAKE_HOST"],
            snowflake_port=int(declared["SNOWFLAKE_PORT"]),
            snowflake_db_path=None,
            secret_name=declared["SNOWFLAKE_SECRET_NAME"],
        )
    except FileNotFoundError:
        raise BackfillError(f"no local stack: {env_file} is missing; {start}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackfillError(f"{env_file} is not the env file `make local-stack` writes ({exc}); {start}") from None
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 80), timeout=2).close()
    except OSError:
        raise BackfillError(f"no local stack answers at {stack.aws_endpoint} ({env_file}); {start}") from None
    return {**stack.function_env(), **declared}


def _session(region: str | None) -> Any:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(region_name=region)
    config = Config(retries={"mode": "standard", "max_attempts": 5})
    return lambda service: session.client(service, config=config)


def main(argv: list[str] | None = None) -> int:
    defaults = samconfig_defaults()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?", help="s3://bucket/prefix")
    parser.add_argument(
        "--stack", default=defaults.get("stack_name"), help="the deployed stack (default: samconfig.toml's)"
    )
    parser.add_argument(
        "--region", default=defaults.get("region"), help="its region (default: samconfig.toml's, else boto3's)"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would be sent or loaded; send, load and write nothing (in every mode)",
    )
    parser.add_argument(
        "--in-process", action="store_true", help="load here with the function's environment, not via the queue"
    )
    parser.add_argument("--workers", type=int, default=4, help="in process: objects in parallel (default 4)")
    parser.add_argument(
        "--local",
        action="store_true",
        help="with s3://bucket/prefix: in process, on the running `make local-stack`; alone: a seeded demo stack",
    )
    parser.add_argument(
        "--stack-env", type=Path, default=LOCAL_STACK_ENV, help="with --local: the env file make local-stack wrote"
    )
    parser.add_argument(
        "--db-path", type=Path, help="--local demo: keep the emulated Snowflake's files here (default: in memory)"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    progress = not args.no_progress
    if args.db_path is not None and not (args.local and not args.url):
        parser.error("--db-path is for the --local demo (without s3://...)")
    from botocore.exceptions import BotoCoreError, ClientError

    from pipeline.errors import PipelineError
    from tools.emulated.local_stack import DatabaseInUseError

    try:
        if args.local and args.url:
            bucket, prefix = parse_s3_url(args.url)
            os.environ.update(local_stack_environment(args.stack_env))
            summary = backfill(bucket, prefix, workers=args.workers, progress=progress, dry_run=args.dry_run)
            failed = summary["errors"]
        elif args.local:
            summary = _local_demo(args.workers, progress, dry_run=args.dry_run, db_path=args.db_path)
            failed = summary["errors"]
        elif not args.url:
            parser.error("give s3://bucket/prefix, or --local")
        elif args.in_process:
            bucket, prefix = parse_s3_url(args.url)
            summary = backfill(bucket, prefix, workers=args.workers, progress=progress, dry_run=args.dry_run)
            failed = summary["errors"]
    except (BackfillError, DatabaseInUseError, PipelineError, BotoCoreError, ClientError) as exc:  # nothing ran
        hint = ""
        if isinstance(exc, PipelineError | BotoCoreError | ClientError) and args.in_process:
            hint = (
                ' (in process, the function\'s own environment variables configure the load: README "Configuration";'
                " for the bucket of a running `make local-stack`: make backfill LOCAL=1 S3=s3://BUCKET/PREFIX)"
            )
        print(f"backfill: {exc}{hint}", file=sys.stderr)
        return 2
    if not args.local and args.url and not args.in_process:
        if not args.stack:
            parser.error("no stack: give --stack (STACK=), or set stack_name in samconfig.toml")
        bucket, prefix = parse_s3_url(args.url)
        client = _session(args.region)
        try:
            target = find_target(client("cloudformation"), args.stack)
            summary = backfill_to_queue(
                client("s3"), client("sqs"), target, bucket, prefix, dry_run=args.dry_run, progress=progress
            )
        except (BackfillError, BotoCoreError, ClientError) as exc:  # before anything was sent
            print(f"backfill: {exc}", file=sys.stderr)
            return 2
        failed = summary["failed"] or summary["stopped"]
    print(json.dumps(summary, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
