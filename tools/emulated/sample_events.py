"""A sample event made true on the local stack: upload an object for every object an event names (S3, SQS-wrapped
S3, EventBridge) and write the uploaded object's real ETag, size and version id into the event, as S3 would have
(the function GETs with If-Match). Used by `make invoke`, `make sam-local-invoke` and `make local-stack`."""

from __future__ import annotations

import copy
import gzip
import json
import sys
from typing import Any
from urllib.parse import unquote_plus

from tools.emulated import s3_events


def _s3_records(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The S3 notification records of an event (direct, or each SQS message body), for in-place patching."""
    records: list[dict[str, Any]] = []
    for record in event.get("Records") or []:
        if record.get("eventSource") == "aws:s3":
            records.append(record)
    return records


def patch_event(event: dict[str, Any], upload: Any) -> dict[str, Any]:
    """Upload an object for every ObjectCreated record and write its real ETag/size/version into the event."""
    event = copy.deepcopy(event)
    if event.get("source") == "aws.s3" and "detail" in event:  # EventBridge
        if event.get("detail-type") == "Object Created":
            detail = event["detail"]
            head = upload(detail["bucket"]["name"], unquote_plus(detail["object"]["key"]))
            _write_head(detail["object"], head, etag_key="etag", version_key="version-id")
        return event
    for record in event.get("Records") or []:
        if record.get("eventSource") == "aws:sqs":
            try:
                body = json.loads(record["body"])
            except (KeyError, json.JSONDecodeError):
                continue
            if isinstance(body, dict):
                _patch_s3_records(body, upload)
                record["body"] = json.dumps(body)
    _patch_s3_records(event, upload)
    return event


def _patch_s3_records(event: dict[str, Any], upload: Any) -> None:
    for record in _s3_records(event):
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = record["s3"]
        head = upload(s3["bucket"]["name"], unquote_plus(s3["object"]["key"]))
        _write_head(s3["object"], head, etag_key="eTag", version_key="versionId")


def _write_head(obj: dict[str, Any], head: dict[str, Any], *, etag_key: str, version_key: str) -> None:
    """The uploaded object's real ETag, size and version into an event's object (keys as that event spells them)."""
    obj.update({etag_key: head["etag"], "size": head["size"]})
    obj.pop(version_key, None)
    if head["version"]:
        obj[version_key] = head["version"]


def make_uploader(stack: Any, data: bytes, *, versioned: bool = False) -> Any:
    """``upload(bucket, key)``: put the sample there and return S3's ETag, size and version id for it.

    ``versioned``: turn on bucket versioning first (as the deployed bucket has it), so that uploading the same
    bytes to the same key again is a new object version, hence a new load, not a duplicate.
    """
    s3 = stack.client("s3")
    seen: set[str] = set()

    def upload(bucket: str, key: str) -> dict[str, Any]:
        if bucket not in seen:
            stack.seed(bucket=bucket)
            if versioned:
                s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            seen.add(bucket)
        body = gzip.compress(data, mtime=0) if key.endswith(".gz") else data
        obj = s3_events.upload(stack, key, body, bucket)["Records"][0]["s3"]["object"]
        print(f"[invoke] uploaded s3://{bucket}/{key} ({len(body)} bytes)", file=sys.stderr)
        return {"etag": obj["eTag"], "size": obj["size"], "version": obj.get("versionId")}

    return upload
