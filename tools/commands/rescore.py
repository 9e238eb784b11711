"""Rescore: load again, for the model the function serves, the files an earlier model version loaded.

    make rescore S3=s3://bucket/prefix [STACK=name] [REAL=1] [DRY_RUN=1]     # through the deployed stack's queue
    make rescore LOCAL=1 S3=s3://hospital-drop-local/incoming/ [DRY_RUN=1]   # in process, on `make local-stack`
    PYTHONPATH=src:. .venv/bin/python -m tools.commands.rescore s3://bucket/incoming/ --stack NAME --dry-run

**What goes.** One message per object version, as `make backfill` sends (tools/commands/backfill_queue.py: the
same listing, batching and retries), marked as a rescore: each S3 notification record carries ``"rescore": true``
(pipeline/events.py, RESCORE_FIELD; also ``configurationId`` "rescore" and the message attribute ``origin`` =
"tools.rescore", which the function ignores). The function keys a rescore on (the version's own load, the model
version it serves), so (docs/exactly-once.md, "Which loads are the same"):

* a version loaded (or FAILED) under another model version loads once more, marked in the ledger (RESCORE_OF =
  the earlier load's id), its rows carrying the served MODEL_VERSION: append mode keeps both model versions' rows,
  upsert mode replaces them;
* a second rescore for the same model version, and a rescore of a version the served model already loaded, are
  ``duplicate``; the version's own notification, delivered again, is still a ``duplicate`` of its first load;
* a version no load has recorded is loaded as an ordinary load (its notification, delivered later, is then a
  ``duplicate``).

**Which versions.** With the ledger readable (``--local``: the local stack's emulated Snowflake; ``--real-account``,
REAL=1: the account ``make query REAL=1`` reads), exactly the versions under the prefix that a ledger row records
LOADED under another model version and none under the served one, and that S3 still has (upsert: only current
versions: an older one's rows would be kept out as superseded). Without it, the current version of every
``.csv`` / ``.csv.gz`` object under the prefix is sent, and the function skips (``duplicate``) those the served
model already scored. The served model is ``$MODEL_DIR``, else model/ (what `make build` ships;
``--model-version`` names another); run a rescore after a canary deployment has shifted all traffic
(docs/deploy.md), so that the function that receives it serves that model.

``--dry-run`` lists what would be rescored and changes nothing: no message, no Snowflake write (the ledger is only
read). Exit status: 0 done (or listed), 1 some messages or objects failed, 2 nothing ran (a bad S3 URL, no stack,
no local stack, no ledger to read), 3 the ledger could not be read now (retriable).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.events import RESCORE_FIELD
from pipeline.ports import ObjectRef
from tools.commands.backfill import command_line
from tools.commands.backfill_in_process import backfill, local_stack_environment
from tools.commands.backfill_listing import SUFFIXES, BackfillError, describe, list_latest, parse_s3_url
from tools.commands.backfill_queue import _session, backfill_to_queue, find_target, notification
from tools.commands.connection import CannotConnectError, real_connection
from tools.commands.score import EXIT_RETRIABLE, EXIT_USAGE, served_model_version

CONFIGURATION_ID = "rescore"
ORIGIN = {"origin": {"DataType": "String", "StringValue": "tools.rescore"}}
FINAL = ("LOADED", "FAILED")
WITHOUT_LEDGER = (
    "the ledger was not read (REAL=1 / --real-account reads it): every current version under the prefix is sent, "
    "and the function skips (duplicate) those the served model already scored"
)


def rescore_notification(ref: ObjectRef, *, region: str, event_time: str) -> dict[str, Any]:
    """The S3 ObjectCreated notification for one object version, marked as a rescore (RESCORE_FIELD)."""
    body = notification(ref, region=region, event_time=event_time)
    for record in body["Records"]:
        record["s3"]["configurationId"] = CONFIGURATION_ID
        record[RESCORE_FIELD] = True
    return body


@dataclass
class Plan:
    """What a rescore sends: the versions, and what the ledger says of each (None: the ledger was not read)."""

    model_version: str
    refs: list[ObjectRef] = field(default_factory=list)
    earlier: dict[tuple[str, str | None], list[str]] = field(default_factory=dict)  # (key, version): models
    left_out: dict[str, int] = field(default_factory=dict)  # why ledger versions are not sent: how many
    from_ledger: bool = True

    def describe(self, ref: ObjectRef) -> str:
        models = self.earlier.get((ref.key, ref.version))
        return describe(ref) + (f"  loaded under {', '.join(models)}" if models else "")

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "model_version": self.model_version,
            "listed_from": "ledger" if self.from_ledger else "bucket",
        }
        if self.from_ledger:
            found["left_out"] = self.left_out
        else:
            found["note"] = WITHOUT_LEDGER
        return found


def ledger_versions(conn: Any, ledger: str, bucket: str, prefix: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every version under the prefix the ledger has a final row for: {(key, version): {"models": the model
    versions that LOADED it, "final": the model versions of any final row, "upsert": a row says upsert}}."""
    cur = conn.cursor()
    cur.execute(
        f"SELECT SOURCE_KEY, SOURCE_VERSION, STATUS, MODEL_VERSION, LOAD_MODE FROM {ledger} "
        f"WHERE SOURCE_BUCKET = %s AND LEFT(SOURCE_KEY, %s) = %s AND STATUS IN {FINAL} ORDER BY STARTED_AT",
        (bucket, len(prefix), prefix),
    )
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for key, version, status, model, mode in cur.fetchall():
        seen = found.setdefault((str(key), str(version)), {"models": [], "final": set(), "upsert": False})
        seen["final"].add(model)
        seen["upsert"] |= mode == "upsert"
        if status == "LOADED" and model not in seen["models"]:
            seen["models"].append(model)
    return found


def bucket_versions(s3: Any, bucket: str, prefix: str) -> Iterator[tuple[ObjectRef, bool]]:
    """Every .csv / .csv.gz version under the prefix S3 still has, and whether it is the key's current one (an
    unversioned bucket: the current objects, named by ETag as the ledger names them)."""
    if s3.get_bucket_versioning(Bucket=bucket).get("Status") not in ("Enabled", "Suspended"):
        for ref in list_latest(s3, bucket, prefix):
            yield ref, True
        return
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for v in page.get("Versions", []):
            if v["Key"].lower().endswith(SUFFIXES):
                version_id = None if v["VersionId"] == "null" else v["VersionId"]
                yield ObjectRef(bucket, v["Key"], version_id, v["ETag"].strip('"'), int(v["Size"])), bool(v["IsLatest"])


def _count(counts: dict[str, int], why: str) -> None:
    counts[why] = counts.get(why, 0) + 1


def plan_from_ledger(conn: Any, ledger: str, s3: Any, bucket: str, prefix: str, model_version: str) -> Plan:
    """The versions under the prefix loaded under another model version and not under this one, that S3 has."""
    plan = Plan(model_version)
    loaded = ledger_versions(conn, ledger, bucket, prefix)
    wanted: dict[tuple[str, str], dict[str, Any]] = {}
    for where, seen in loaded.items():
        if model_version in seen["final"]:
            _count(plan.left_out, "already scored by the served model")
        elif seen["models"]:
            wanted[where] = seen
    in_s3: set[tuple[str, str]] = set()
    for ref, current in bucket_versions(s3, bucket, prefix):
        where = (ref.key, ref.version or "")
        seen = wanted.get(where)
        if seen is None:
            continue
        in_s3.add(where)
        if seen["upsert"] and not current:
            _count(plan.left_out, "upsert: a newer version replaced it")
            continue
        plan.refs.append(ref)
        plan.earlier[(ref.key, ref.version)] = seen["models"]
    if gone := len(set(wanted) - in_s3):
        plan.left_out["no longer in S3"] = gone
    return plan


def plan_from_bucket(s3: Any, bucket: str, prefix: str, model_version: str) -> Plan:
    return Plan(model_version, list(list_latest(s3, bucket, prefix)), from_ledger=False)


def _as_rescores(plan: Plan) -> list[ObjectRef]:
    from dataclasses import replace

    return [replace(ref, rescore=True) for ref in plan.refs]


def _local_ledger(env: dict[str, str]) -> Any:
    """A connection to the running local stack's emulated Snowflake (what the in-process pipeline writes to)."""
    import snowflake.connector

    return snowflake.connector.connect(
        user="fake",
        password="snow",
        account="fakesnow",
        host=env["SNOWFLAKE_HOST"],
        port=int(env["SNOWFLAKE_PORT"]),
        protocol="http",
        database=env["SNOWFLAKE_DATABASE"],
        schema=env["SNOWFLAKE_SCHEMA"],
        session_parameters={"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        login_timeout=10,
    )


def _print_plan(plan: Plan) -> None:
    for ref in plan.refs:
        print(plan.describe(ref))


def rescore_local(
    url: str, env_file: Path, *, model_version: str | None, dry_run: bool, workers: int, progress: bool
) -> dict[str, Any]:
    """On the running `make local-stack`: the ledger read, then each version through Pipeline.process here."""
    import boto3

    from pipeline.settings import get_settings

    bucket, prefix = parse_s3_url(url)
    env = local_stack_environment(env_file)
    os.environ.update(env)
    get_settings.cache_clear()
    settings = get_settings()
    version = model_version or served_model_version(settings.model_dir)
    if not version:
        raise BackfillError("no served model: MODEL_DIR (else model/) has no readable metadata.json")
    s3 = boto3.client("s3")
    conn = _local_ledger({**env, "SNOWFLAKE_DATABASE": settings.database, "SNOWFLAKE_SCHEMA": settings.schema_name})
    try:
        plan = plan_from_ledger(
            conn, f"{settings.database}.{settings.schema_name}.{settings.ledger_table}", s3, bucket, prefix, version
        )
    finally:
        conn.close()
    if dry_run:
        _print_plan(plan)
        return {"dry_run": True, "objects": len(plan.refs), "would_rescore": len(plan.refs), **plan.as_dict()}
    summary = backfill(bucket, prefix, workers=workers, progress=progress, s3=s3, refs=_as_rescores(plan))
    return {**summary, **plan.as_dict()}


def main(argv: list[str] | None = None) -> int:
    parser = command_line(__doc__)
    parser.add_argument("--dry-run", action="store_true", help="list what would be rescored; send and write nothing")
    parser.add_argument("--local", action="store_true", help="in process, on the running `make local-stack`")
    parser.add_argument("--real-account", action="store_true", help="read the ledger of the account SNOWFLAKE_* name")
    parser.add_argument(
        "--model-version", help="the model version the function serves (default: MODEL_DIR's, else model/'s)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    progress = not args.no_progress
    import snowflake.connector
    from botocore.exceptions import BotoCoreError, ClientError

    from pipeline.errors import PipelineError

    try:
        if not args.url:
            raise BackfillError("give s3://bucket/prefix (S3=...)")
        bucket, prefix = parse_s3_url(args.url)
        if args.local:
            summary = rescore_local(
                args.url, args.stack_env, model_version=args.model_version, dry_run=args.dry_run,
                workers=args.workers, progress=progress,
            )  # fmt: skip
            failed = summary.get("errors", 0)
        else:
            if not args.stack:
                raise BackfillError("no stack: give --stack (STACK=), or set stack_name in samconfig.toml")
            version = args.model_version or served_model_version()
            if not version:
                raise BackfillError("no served model: give --model-version, or MODEL_DIR with a metadata.json")
            client = _session(args.region)
            target = find_target(client("cloudformation"), args.stack)
            prefix = target.prefix_for(bucket, prefix)
            s3 = client("s3")
            if args.real_account:
                ledger = os.environ.get("LEDGER_TABLE") or "TUMOUR_SCORE_LOADS"
                with real_connection(os.environ) as conn:
                    plan = plan_from_ledger(conn.conn, conn.table(ledger), s3, bucket, prefix, version)
            else:
                plan = plan_from_bucket(s3, bucket, prefix, version)
            if args.dry_run:
                _print_plan(plan)
                summary = {
                    "dry_run": True,
                    "objects": len(plan.refs),
                    "would_rescore": len(plan.refs),
                    **plan.as_dict(),
                }
                failed = 0
            else:
                sent = backfill_to_queue(
                    s3, client("sqs"), target, bucket, prefix, progress=progress, refs=_as_rescores(plan),
                    message=rescore_notification, attributes=ORIGIN,
                )  # fmt: skip
                summary = {**sent, **plan.as_dict()}
                failed = sent["failed"] or sent["stopped"]
    except CannotConnectError as exc:
        print(f"rescore: {exc}", file=sys.stderr)
        return exc.status
    except snowflake.connector.errors.Error as exc:  # the ledger could not be read: nothing was sent
        retriable = isinstance(
            exc, snowflake.connector.errors.OperationalError | snowflake.connector.errors.InterfaceError
        )
        print(f"rescore: cannot read the ledger: {exc.msg or type(exc).__name__}", file=sys.stderr)
        return EXIT_RETRIABLE if retriable else EXIT_USAGE
    except (BackfillError, ValueError, PipelineError, BotoCoreError, ClientError) as exc:  # nothing was sent
        print(f"rescore: {exc}", file=sys.stderr)
        return EXIT_RETRIABLE if isinstance(exc, PipelineError) and exc.retriable else EXIT_USAGE
    print(json.dumps(summary, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
