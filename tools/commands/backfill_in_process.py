"""Backfill in process (`--in-process`, `--local`): every listed object through Pipeline.process here, a few at
a time, with the function's own environment; on the running `make local-stack`, or on a fresh seeded demo stack.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.commands.backfill_listing import BackfillError, describe, list_latest

ROOT = Path(__file__).resolve().parents[2]
LOCAL_STACK_ENV = ROOT / ".local" / "sam-env.json"  # written by `make local-stack` (tools/commands/serve_stack.py)


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


def backfill(
    bucket: str,
    prefix: str,
    *,
    workers: int = 4,
    progress: bool = True,
    s3: Any = None,
    dry_run: bool = False,
    refs: list[Any] | None = None,
) -> dict[str, Any]:
    """Run every object under the prefix through Pipeline.process; return the summary.

    ``dry_run``: list the objects that would be loaded (on stdout) and count them, and nothing more: no
    Pipeline, no Snowflake connection, no table, no ledger row, no message. ``refs``: these objects instead of
    the prefix's listing (a rescore's)."""
    import boto3
    from tqdm import tqdm

    from pipeline.errors import PipelineError

    s3 = s3 or boto3.client("s3")
    get_pipeline = None if dry_run else _pipeline_factory()  # the settings checked before anything is listed
    refs = list(list_latest(s3, bucket, prefix)) if refs is None else refs
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
