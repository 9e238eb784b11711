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
import json
import os
import sys
from pathlib import Path

from tools.commands.backfill_in_process import (
    LOCAL_STACK_ENV,
    Summary,
    _local_demo,
    backfill,
    local_stack_environment,
)
from tools.commands.backfill_listing import SUFFIXES, BackfillError, describe, list_latest, parse_s3_url
from tools.commands.backfill_queue import (
    BATCH_SIZE,
    CONFIGURATION_ID,
    ORIGIN,
    QUEUE_OUTPUT,
    SAMCONFIG,
    SEND_ATTEMPTS,
    SendSummary,
    Target,
    _session,
    backfill_to_queue,
    find_target,
    notification,
    samconfig_defaults,
    send_batch,
)

# The command's modules: backfill_listing.py (what is under the prefix), backfill_queue.py (through the deployed
# queue), backfill_in_process.py (here, or on the local stack). Their names are importable from here too.
__all__ = [
    "BATCH_SIZE",
    "CONFIGURATION_ID",
    "LOCAL_STACK_ENV",
    "ORIGIN",
    "QUEUE_OUTPUT",
    "SAMCONFIG",
    "SEND_ATTEMPTS",
    "SUFFIXES",
    "BackfillError",
    "SendSummary",
    "Summary",
    "Target",
    "backfill",
    "backfill_to_queue",
    "command_line",
    "describe",
    "find_target",
    "list_latest",
    "local_stack_environment",
    "main",
    "notification",
    "parse_s3_url",
    "samconfig_defaults",
    "send_batch",
]


def command_line(description: str | None) -> argparse.ArgumentParser:
    """The arguments backfill and rescore share: the objects, the deployed stack whose queue gets them, the local
    stack's environment, how many objects load at once here, and whether to show progress."""
    defaults = samconfig_defaults()
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?", help="s3://bucket/prefix")
    parser.add_argument(
        "--stack", default=defaults.get("stack_name"), help="the deployed stack (default: samconfig.toml's)"
    )
    parser.add_argument(
        "--region", default=defaults.get("region"), help="its region (default: samconfig.toml's, else boto3's)"
    )
    parser.add_argument(
        "--stack-env", type=Path, default=LOCAL_STACK_ENV, help="with --local: the env file make local-stack wrote"
    )
    parser.add_argument("--workers", type=int, default=4, help="loading here: objects in parallel (default 4)")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = command_line(__doc__)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would be sent or loaded; send, load and write nothing (in every mode)",
    )
    parser.add_argument(
        "--in-process", action="store_true", help="load here with the function's environment, not via the queue"
    )
    parser.add_argument(
        "--local",
        action="store_true",
        help="with s3://bucket/prefix: in process, on the running `make local-stack`; alone: a seeded demo stack",
    )
    parser.add_argument(
        "--db-path", type=Path, help="--local demo: keep the emulated Snowflake's files here (default: in memory)"
    )
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
