"""`make demo`: the whole job on the embedded defaults, with no AWS or Snowflake account.

Starts moto (S3 + Secrets Manager, real HTTP) and fakesnow (HTTP, file-backed under .local/snowflake),
uploads the sample CSV (or `make demo CSV=your.csv`), delivers the S3 ObjectCreated event to the Lambda
handler, and prints what landed. The run itself is `make score`'s (tools/score.py).
"""

from __future__ import annotations

from typing import Any

from tools.local_stack import BUCKET, LocalStack
from tools.score import DB_PATH, ROOT, default_key

SAMPLE = ROOT / "data" / "breast_cancer.csv"
SAMPLE_KEY = "incoming/2026/11/wdbc sample+1.csv"  # a space and a `+`: the event carries it URL-encoded
__all__ = ["DB_PATH", "SAMPLE", "s3_put_event", "upload"]


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


def main(argv: list[str] | None = None) -> int:
    """The sample file (or ``--csv``, the same as ``make score FILE=...``) through the handler; see tools/score.py."""
    from tools.score import parse_args, run

    args = parse_args(argv, default_file=SAMPLE)
    key = args.key or (SAMPLE_KEY if args.file.resolve() == SAMPLE else default_key(args.file))
    return run(args.file, key, args.db_path)


if __name__ == "__main__":
    raise SystemExit(main())
