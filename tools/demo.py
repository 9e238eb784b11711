"""`make demo`: the whole job on the embedded defaults, with no AWS or Snowflake account.

Starts moto (S3 + Secrets Manager, real HTTP) and fakesnow (HTTP, file-backed under .local/snowflake),
uploads the sample CSV, delivers the S3 ObjectCreated event to the Lambda handler, and prints what landed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from tools.local_stack import BUCKET, DATABASE, SCHEMA, LambdaContext, LocalStack, local_stack

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "breast_cancer.csv"
DB_PATH = ROOT / ".local" / "snowflake"


def s3_put_event(bucket: str, key: str, etag: str, size: int, version_id: str | None = None) -> dict[str, Any]:
    """An S3 ObjectCreated:Put notification, as S3 sends it (the key URL-encoded with `+` for spaces)."""
    from urllib.parse import quote_plus

    obj: dict[str, Any] = {
        "key": quote_plus(key, safe="/"),
        "size": size,
        "eTag": etag,
        "sequencer": "0A1B2C3D4E5F678901",
    }
    if version_id:
        obj["versionId"] = version_id
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-11-24T12:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "csv-upload",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": obj,
                },
            }
        ]
    }


def upload(stack: LocalStack, key: str, body: bytes, bucket: str = BUCKET) -> dict[str, Any]:
    s3 = stack.client("s3")
    put = s3.put_object(Bucket=bucket, Key=key, Body=body)
    return s3_put_event(bucket, key, put["ETag"].strip('"'), len(body), put.get("VersionId"))


def invoke_in_process(stack: LocalStack, event: dict[str, Any]) -> dict[str, Any]:
    """Run the handler in this process with the function's environment pointed at the stack."""
    os.environ.update(stack.function_env())
    from handler import app

    app.build_pipeline.cache_clear()
    from pipeline.settings import get_settings

    get_settings.cache_clear()
    return app.lambda_handler(event, LambdaContext(aws_request_id="local-demo"))  # type: ignore[arg-type]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--csv", type=Path, default=SAMPLE)
    parser.add_argument("--key", default="incoming/2026/11/wdbc sample+1.csv")
    parser.add_argument("--db-path", type=Path, default=DB_PATH)
    args = parser.parse_args()
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")

    with local_stack(args.db_path) as stack:
        event = upload(stack, args.key, args.csv.read_bytes())
        summary = invoke_in_process(stack, event)
        print("Load summary:")
        print(
            json.dumps(
                {k: v for k, v in summary.items() if k != "objects"}
                | {
                    "objects": [
                        {
                            k: o.get(k)
                            for k in ("key", "version", "status", "rows_loaded", "rows_rejected", "load_id", "reason")
                        }
                        for o in summary["objects"]
                    ]
                },
                indent=2,
            )
        )
        conn = stack.snowflake_connect()
        cur = conn.cursor()
        print("\nRows in TUMOUR_SCORES by CONDITION:")
        for condition, n in cur.execute(
            "SELECT CONDITION, COUNT(*) FROM TUMOUR_SCORES GROUP BY CONDITION ORDER BY CONDITION"
        ).fetchall():
            print(f"  {condition:<10} {n}")
        print("\nA few rows:")
        rows = cur.execute(
            "SELECT SAMPLE_ID, MEAN_RADIUS, CLASSIFICATION, CONDITION, ROUND(MALIGNANT_PROBABILITY, 4), SOURCE_LINE "
            "FROM TUMOUR_SCORES ORDER BY SOURCE_LINE LIMIT 5"
        ).fetchall()
        print("  SAMPLE_ID   MEAN_RADIUS  CLASSIFICATION  CONDITION  P(malignant)  SOURCE_LINE")
        for r in rows:
            print(f"  {r[0]:<11} {r[1]:>11}  {r[2]:>14}  {r[3]:<9}  {r[4]:>12}  {r[5]:>11}")
        print("\nLoad ledger:")
        for r in cur.execute(
            "SELECT SOURCE_KEY, STATUS, ROWS_LOADED, ROWS_REJECTED, LOAD_ID FROM TUMOUR_SCORE_LOADS"
        ).fetchall():
            print("  ", r)
        conn.close()
    print(f"\nThe emulated Snowflake is kept in {args.db_path}/{DATABASE}.db (schema {SCHEMA}). Query it with:")
    print(f'  {sys.executable} -m tools.query "SELECT CONDITION, COUNT(*) FROM TUMOUR_SCORES GROUP BY 1"')
    statuses = [o["status"] for o in summary["objects"]]
    if statuses == ["duplicate"]:
        print("\n(This object version was already loaded by an earlier `make demo`: the re-delivery was")
        print(" recognised as a duplicate and loaded nothing. `rm -rf .local` starts afresh.)")
    return 0 if statuses and all(s in {"loaded", "duplicate"} for s in statuses) else 1


if __name__ == "__main__":
    raise SystemExit(main())
