"""What a backfill loads: the objects under an S3 prefix (their current versions), listed page by page.

Shared by both ways of loading them (tools/commands/backfill.py): through the queue (backfill_queue.py) and in
process (backfill_in_process.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pipeline.ports import ObjectRef

SUFFIXES = (".csv", ".csv.gz")


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


def describe(ref: ObjectRef) -> str:
    """An object as a dry run lists it: its URL, and its version when the bucket has one."""
    return f"s3://{ref.bucket}/{ref.key}" + (f" ({ref.version_id})" if ref.version_id else "")
