"""Put a file in the local stack's S3 and get the event S3 would send for it: the one way tools, tests and
benchmarks do it."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from tools.local_stack import BUCKET, LocalStack

MULTIPART_CHUNK_BYTES = 256 << 20  # big benchmark files go up in a few parts


def s3_put_event(bucket: str, key: str, etag: str, size: int, version_id: str | None = None) -> dict[str, Any]:
    """An S3 ObjectCreated:Put notification, as S3 sends it (the key URL-encoded with `+` for spaces)."""
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
    """PUT ``body`` under ``key``; the ObjectCreated event for that version."""
    put = stack.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    return s3_put_event(bucket, key, put["ETag"].strip('"'), len(body), put.get("VersionId"))


def upload_file(s3: Any, bucket: str, path: Path, key: str) -> dict[str, Any]:
    """Upload the file at ``path`` (multipart when big) with the boto3 client ``s3``; the ObjectCreated event."""
    from boto3.s3.transfer import TransferConfig

    s3.upload_file(str(path), bucket, key, Config=TransferConfig(multipart_chunksize=MULTIPART_CHUNK_BYTES))
    head = s3.head_object(Bucket=bucket, Key=key)
    return s3_put_event(bucket, key, head["ETag"].strip('"'), int(head["ContentLength"]), head.get("VersionId"))
