"""Re-sending the same export: DUPLICATE_RULE (docs/exactly-once.md, "Which loads are the same").

On a versioned bucket (the deployed one) uploading identical bytes to the same key again makes a new version id;
under the version rule that loaded the rows a second time. Under the content rule (the default) the same key with
the same content (S3's content fingerprint: a single-part ETag that is the MD5 of the bytes, or a full-object
CRC64NVME/SHA checksum) is a duplicate; rows keep their real SOURCE_VERSION. moto computes no CRC64NVME without
the CRT, so these tests go by the ETag; tests/unit/test_content_fingerprint.py covers the checksums.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.ledger_invariant import check_every_delivery
from tests.sqs_batches import sqs_batch
from tools.emulated.s3_events import s3_put_event

KEY = "incoming/site-3/export.csv"
ROWS = 7


@pytest.fixture(autouse=True)
def _ledger_tells_the_truth(harness: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    check_every_delivery(harness, monkeypatch)


def _bucket(harness: Any, *, versioned: bool = True, encryption: str | None = "AES256") -> str:
    """A bucket as template.yaml's (versioned, SSE-S3 by default), or without versioning / encryption."""
    s3 = harness.stack.client("s3")
    name = f"resend-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if encryption:
        rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": encryption}}
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": [rule]})
    return name


def _put(harness: Any, bucket: str, body: bytes, key: str = KEY, sequencer: str = "00A0") -> dict[str, Any]:
    put = harness.stack.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    return s3_put_event(bucket, key, put["ETag"].strip('"'), len(body), put.get("VersionId"), sequencer=sequencer)


def _version(event: dict[str, Any]) -> str:
    obj = event["Records"][0]["s3"]["object"]
    return str(obj.get("versionId") or obj["eTag"])


def _radius(value: str) -> Callable[[list[str]], list[str]]:
    def edit(lines: list[str]) -> list[str]:
        return [lines[0]] + [",".join([c[0], value, *c[2:]]) for c in (line.split(",") for line in lines[1:])]

    return edit


@pytest.mark.parametrize("encryption", ["AES256", None], ids=["sse-s3", "unencrypted"])
def test_identical_bytes_uploaded_again_are_a_duplicate_under_the_content_rule(
    harness: Any, make_csv: Any, encryption: str | None
) -> None:
    # Given a versioned bucket, and one export uploaded twice to the same key (two version ids, the same bytes)
    bucket = _bucket(harness, encryption=encryption)
    body = make_csv(ROWS)
    first, again = _put(harness, bucket, body), _put(harness, bucket, body)
    assert _version(first) != _version(again)
    # When both events are delivered (the default DUPLICATE_RULE, content)
    loaded = harness.invoke(first)["objects"][0]
    duplicate = harness.invoke(again)["objects"][0]
    # Then the second is a duplicate of the first, by content, reporting the first load; the rows are there once
    assert (loaded["status"], loaded["duplicate_rule"]) == ("loaded", "content")
    assert (duplicate["status"], duplicate["duplicate_rule"]) == ("duplicate", "content")
    assert duplicate["load_id"] == loaded["load_id"] and duplicate["version"] == _version(again)
    assert harness.count() == ROWS
    # and rows and ledger keep the real version id of the load
    assert harness.query("SELECT DISTINCT SOURCE_VERSION FROM {target}") == [(_version(first),)]
    assert harness.query("SELECT SOURCE_VERSION, STATUS FROM {ledger} WHERE STATUS <> 'STARTED'") == [
        (_version(first), "LOADED")
    ]


@pytest.mark.parametrize("rule", ["content", "version"])
def test_identical_bytes_uploaded_again_to_an_unversioned_bucket_are_a_duplicate(
    harness: Any, make_csv: Any, rule: str
) -> None:
    # Given an unversioned bucket (as `make score` uses), and one export uploaded twice to the same key
    bucket = _bucket(harness, versioned=False, encryption=None)
    body = make_csv(ROWS)
    events = [_put(harness, bucket, body), _put(harness, bucket, body)]
    # When both events are delivered, under either rule
    results = [harness.invoke(event, DUPLICATE_RULE=rule)["objects"][0] for event in events]
    # Then the second is a duplicate (there the version is the ETag, and the content rule agrees)
    assert [(r["status"], r["duplicate_rule"]) for r in results] == [("loaded", rule), ("duplicate", rule)]
    assert harness.count() == ROWS


def test_identical_bytes_load_again_under_the_version_rule(harness: Any, make_csv: Any) -> None:
    # Given a versioned bucket, and one export uploaded twice to the same key
    bucket = _bucket(harness)
    body = make_csv(ROWS)
    events = [_put(harness, bucket, body), _put(harness, bucket, body)]
    # When both are delivered with DUPLICATE_RULE=version
    results = [harness.invoke(event, DUPLICATE_RULE="version")["objects"][0] for event in events]
    # Then each version is a load of its own, its rows tagged with its version id
    assert [(r["status"], r["duplicate_rule"]) for r in results] == [("loaded", "version")] * 2
    assert harness.count() == 2 * ROWS
    rows = harness.query("SELECT SOURCE_VERSION, COUNT(*) FROM {target} GROUP BY SOURCE_VERSION ORDER BY 1")
    assert rows == sorted((_version(e), ROWS) for e in events)


@pytest.mark.parametrize("batched", [False, True], ids=["alone", "in-an-sqs-batch-with-a-new-file"])
def test_a_version_loaded_before_the_content_rule_is_not_loaded_again(
    harness: Any, make_csv: Any, batched: bool
) -> None:
    # Given a version loaded under the per-version ledger key (as every load was before the content rule, here
    # with DUPLICATE_RULE=version)
    bucket = _bucket(harness)
    event = _put(harness, bucket, make_csv(ROWS))
    first = harness.invoke(event, DUPLICATE_RULE="version")["objects"][0]
    assert first["status"] == "loaded"
    # When the same event is delivered again under the content rule (a redelivery in flight during the upgrade,
    # or a backfill), alone or beside a new file
    other = _put(harness, bucket, make_csv(3, _radius("11.5")), key="incoming/site-3/other.csv")
    delivered = sqs_batch([event, other]) if batched else event
    results = harness.invoke(delivered, DUPLICATE_RULE="content")["objects"]
    assert results[0]["duplicate_rule"] == "content"
    # Then that version is a duplicate of its first load, the new file loads, and the rows are there once
    assert (results[0]["status"], results[0]["load_id"]) == ("duplicate", first["load_id"])
    assert [r["status"] for r in results[1:]] == (["loaded"] if batched else [])
    assert harness.count() == ROWS + (3 if batched else 0)


def test_different_bytes_under_the_same_key_are_a_new_load(harness: Any, make_csv: Any) -> None:
    # Given a versioned bucket, an export, a corrected export under the same key, then the first one again
    bucket = _bucket(harness)
    original, corrected = make_csv(ROWS), make_csv(ROWS, _radius("12.5"))
    events = [_put(harness, bucket, original), _put(harness, bucket, corrected), _put(harness, bucket, original)]
    # When the three are delivered (append mode, the content rule)
    statuses = [harness.invoke(event)["objects"][0]["status"] for event in events]
    # Then the corrected one loads as a new load, and the original, sent again, is a duplicate of its first load
    assert statuses == ["loaded", "loaded", "duplicate"]
    assert harness.count() == 2 * ROWS
    assert harness.count(where="MEAN_RADIUS = 12.5") == ROWS


def test_the_same_key_in_another_bucket_or_another_key_is_a_load_of_its_own(harness: Any, make_csv: Any) -> None:
    # Given one export uploaded under two keys of one bucket, and under the first key of another bucket
    body = make_csv(ROWS)
    one, other = _bucket(harness), _bucket(harness)
    events = [_put(harness, one, body), _put(harness, one, body, "incoming/copy.csv"), _put(harness, other, body)]
    # When the three are delivered
    statuses = [harness.invoke(event)["objects"][0]["status"] for event in events]
    # Then each loads: the content rule is per bucket and key
    assert statuses == ["loaded"] * 3
    assert harness.count() == 3 * ROWS


def test_two_identical_versions_in_one_batch_load_once(harness: Any, make_csv: Any) -> None:
    # Given two uploads of one export to one key, whose notifications arrive in one SQS batch
    bucket = _bucket(harness)
    body = make_csv(ROWS)
    events = [_put(harness, bucket, body), _put(harness, bucket, body)]
    # When the batch is delivered
    summary = harness.invoke(sqs_batch(events))
    # Then the first loads and the second is its duplicate
    assert [o["status"] for o in summary["objects"]] == ["loaded", "duplicate"]
    assert summary["objects"][1]["load_id"] == summary["objects"][0]["load_id"]
    assert harness.count() == ROWS


def test_without_a_content_fingerprint_the_version_rule_applies_and_says_why(harness: Any, make_csv: Any) -> None:
    # Given one export uploaded twice as a (one-part) multipart upload: its ETag ("...-1") is no MD5 of the bytes,
    # and the only checksum moto keeps is none or a 32-bit CRC
    bucket = _bucket(harness)
    body = make_csv(ROWS)
    s3 = harness.stack.client("s3")
    events = []
    for _ in range(2):
        upload = s3.create_multipart_upload(Bucket=bucket, Key=KEY)
        part = s3.upload_part(Bucket=bucket, Key=KEY, UploadId=upload["UploadId"], PartNumber=1, Body=body)
        done = s3.complete_multipart_upload(
            Bucket=bucket,
            Key=KEY,
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
        )
        assert done["ETag"].strip('"').endswith("-1")
        events.append(s3_put_event(bucket, KEY, done["ETag"].strip('"'), len(body), done["VersionId"]))
    # When both are delivered under the content rule
    results = [harness.invoke(event)["objects"][0] for event in events]
    # Then each version loads (the per-version rule), and the result says which rule applied and why
    assert [r["status"] for r in results] == ["loaded", "loaded"]
    assert all(r["duplicate_rule"].startswith("version: a multipart upload's ETag depends on") for r in results)
    assert harness.count() == 2 * ROWS


def test_upsert_keeps_the_version_rule_so_an_older_export_sent_again_wins(harness: Any, make_csv: Any) -> None:
    # Given upsert on SAMPLE_ID, and an export, a corrected export, then the first export again under one key
    upsert = {"LOAD_MODE": "upsert", "MERGE_KEYS": "SAMPLE_ID"}
    bucket = _bucket(harness)
    original, corrected = make_csv(ROWS), make_csv(ROWS, _radius("12.5"))
    bodies = [original, corrected, original]
    events = [_put(harness, bucket, body, sequencer=f"00A{i}") for i, body in enumerate(bodies, start=1)]
    # When the three are delivered in order (their events' sequencers say so)
    results = [harness.invoke(event, **upsert)["objects"][0] for event in events]
    # Then each is a load: the revert to the original export is applied, not skipped as a duplicate
    assert [r["status"] for r in results] == ["loaded"] * 3
    assert all(r["duplicate_rule"].startswith("version: LOAD_MODE=upsert") for r in results)
    assert harness.count() == ROWS
    assert harness.count(where="MEAN_RADIUS = 12.5") == 0
