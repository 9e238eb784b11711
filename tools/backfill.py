"""Backfill: score the objects already under an S3 prefix through the same idempotent path as the Lambda.

Every ``.csv`` / ``.csv.gz`` object under ``s3://BUCKET/PREFIX`` (listed page by page) goes through
``Pipeline.process``: objects already in the load ledger come back ``duplicate`` and are skipped, failed
files are recorded as failed, transient errors are reported and can be retried by running the command again.
Objects run in parallel, ``--workers`` at a time; each worker has its own Pipeline and Snowflake connection,
the Scorer (thread-safe: it holds a lock) is shared.

Configuration is the function's own: the same environment variables (``SNOWFLAKE_*``, ``TARGET_TABLE``, ...).

    PYTHONPATH=src:. .venv/bin/python -m tools.backfill s3://my-bucket/incoming/ --workers 4
    PYTHONPATH=src:. .venv/bin/python -m tools.backfill --local          # a fresh moto + fakesnow, seeded

Development / operations tool: runs on a workstation with the dev venv (tqdm), not in the Lambda.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

SUFFIXES = (".csv", ".csv.gz")


@dataclass
class Summary:
    statuses: Counter[str] = field(default_factory=Counter)
    rows_loaded: int = 0
    rows_rejected: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "objects": sum(self.statuses.values()),
            "loaded": self.statuses["loaded"],
            "duplicate": self.statuses["duplicate"],
            "failed": self.statuses["failed"],
            "errors": self.statuses["error"],
            "rows_loaded": self.rows_loaded,
            "rows_rejected": self.rows_rejected,
            "error_details": self.errors,
        }


def parse_s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://"):
        raise ValueError(f"expected s3://bucket/prefix, got {url!r}")
    bucket, _, prefix = url[5:].partition("/")
    return bucket, prefix


def list_objects(s3: Any, bucket: str, prefix: str) -> Iterator[Any]:
    """Every .csv / .csv.gz object under the prefix, as ObjectRefs (with ETag and size), page by page."""
    from pipeline.ports import ObjectRef

    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].lower().endswith(SUFFIXES):
                yield ObjectRef(bucket=bucket, key=obj["Key"], etag=obj["ETag"].strip('"'), size=int(obj["Size"]))


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


def backfill(bucket: str, prefix: str, *, workers: int = 4, progress: bool = True, s3: Any = None) -> dict[str, Any]:
    """Run every object under the prefix through Pipeline.process; return the summary."""
    import boto3
    from tqdm import tqdm

    from pipeline.errors import PipelineError

    s3 = s3 or boto3.client("s3")
    refs = list(list_objects(s3, bucket, prefix))
    get_pipeline = _pipeline_factory()
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


def _local_demo(workers: int, progress: bool) -> dict[str, Any]:
    """A fresh local stack seeded with a few generated files, one of them loaded beforehand."""
    import gzip

    from tools.local_stack import local_stack
    from tools.make_files import make_file
    from tools.s3_events import upload

    with local_stack(None) as stack:
        os.environ.update(stack.function_env())
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            for i in range(5):
                path = make_file(2_000 + 500 * i, Path(tmp) / f"f{i}.csv", seed=i)
                body = path.read_bytes()
                name = f"backfill/2026/part-{i}.csv" + (".gz" if i % 2 else "")
                upload(stack, name, gzip.compress(body) if i % 2 else body)
        upload(stack, "backfill/2026/readme.txt", b"not a csv: not listed")
        s3 = stack.client("s3")
        first = backfill(stack.bucket, "backfill/2026/part-0", workers=1, progress=False, s3=s3)
        print(f"pre-loaded: {json.dumps({k: v for k, v in first.items() if k != 'error_details'})}")
        return backfill(stack.bucket, "backfill/", workers=workers, progress=progress, s3=s3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?", help="s3://bucket/prefix")
    parser.add_argument("--workers", type=int, default=4, help="objects in parallel (default 4)")
    parser.add_argument("--local", action="store_true", help="demonstrate on a fresh, seeded moto + fakesnow")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    if args.local:
        summary = _local_demo(args.workers, not args.no_progress)
    elif args.url:
        bucket, prefix = parse_s3_url(args.url)
        summary = backfill(bucket, prefix, workers=args.workers, progress=not args.no_progress)
    else:
        parser.error("give s3://bucket/prefix, or --local")
    print(json.dumps(summary, indent=2))
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
