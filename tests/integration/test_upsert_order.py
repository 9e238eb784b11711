"""Upsert across versions of one S3 object: an older version's late event never overwrites a newer version's rows.

"Newer" is S3's own order (docs/exactly-once.md): the events' sequencers when both versions have one (hex, compared
after left-padding to equal length), else the objects' Last-Modified from the GET. Each case delivers version 1 and
version 2 of one key in both orders and requires the same final table. The events are built here with the
sequencer set directly on ObjectRef (events.py parses it from real S3 and EventBridge records).

The bucket is versioned, so version 1 stays readable after version 2 replaced it (in an unversioned bucket the
late event finds its ETag gone and is recorded as object_superseded: test_faults.py). Runs on fakesnow; the
statements are also run by tests/integration/test_real_snowflake.py::test_real_upsert_keeps_the_newer_version.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pipeline.ports import ObjectRef
from tests.ledger_invariant import assert_ledger_matches_tables

KEY = "incoming/site-7/export.csv"
UPSERT = {"LOAD_MODE": "upsert", "MERGE_KEYS": "SAMPLE_ID"}
CHANGED_RADIUS = 99.5


@pytest.fixture
def pipeline(harness: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A warm container's pipeline in upsert mode, on this test's tables."""
    from handler import app
    from pipeline.settings import get_settings

    for name, value in (harness.env | UPSERT).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    app.build_pipeline.cache_clear()
    built = app.build_pipeline()
    yield built
    built.warehouse.close()
    app.build_pipeline.cache_clear()


@pytest.fixture
def versioned_bucket(harness: Any) -> str:
    s3 = harness.stack.client("s3")
    name = f"versioned-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def _versions(make_csv: Callable[..., bytes]) -> tuple[bytes, bytes]:
    """Version 1: samples 1..10. Version 2: samples 6..15, all with a changed radius."""

    def changed(lines: list[str]) -> list[str]:
        out = [lines[0]]
        for line in lines[6:16]:
            cells = line.split(",")
            cells[1] = str(CHANGED_RADIUS)
            out.append(",".join(cells))
        return out

    return make_csv(10), make_csv(15, changed)


# (sequencer of version 1, sequencer of version 2). "FF" < "100" only after padding: as plain text "FF" sorts last.
ORDERINGS = {
    "sequencers": ("FF", "100"),
    "last-modified": (None, None),  # backfill or hand-made events: no sequencer on either side
    "mixed": (None, "0055AED6DCD90281E5"),  # version 1 backfilled without one: Last-Modified decides
}


@pytest.mark.parametrize("delivery", ["v1-then-v2", "v2-then-v1"])
@pytest.mark.parametrize("ordering", list(ORDERINGS))
def test_the_newer_version_wins_whatever_order_the_events_arrive_in(
    harness: Any,
    pipeline: Any,
    versioned_bucket: str,
    make_csv: Callable[..., bytes],
    ordering: str,
    delivery: str,
) -> None:
    # Given two versions of one key in a versioned bucket, version 2 written at least a second later
    s3 = harness.stack.client("s3")
    body_v1, body_v2 = _versions(make_csv)
    v1 = s3.put_object(Bucket=versioned_bucket, Key=KEY, Body=body_v1)["VersionId"]
    time.sleep(1.1)  # Last-Modified has one-second resolution
    v2 = s3.put_object(Bucket=versioned_bucket, Key=KEY, Body=body_v2)["VersionId"]
    seq_v1, seq_v2 = ORDERINGS[ordering]
    refs = {
        "v1": ObjectRef(versioned_bucket, KEY, version_id=v1, sequencer=seq_v1),
        "v2": ObjectRef(versioned_bucket, KEY, version_id=v2, sequencer=seq_v2),
    }

    # When their events are delivered in the given order
    results = {}
    for name in delivery.split("-then-"):
        results[name] = pipeline.process(refs[name])
        assert results[name].status == "loaded"
        assert_ledger_matches_tables(harness.query, harness.tables, [str(results[name].load_id)])

    # Then the table is the same either way: samples 1..5 from version 1, samples 6..15 from version 2
    rows = dict(harness.query("SELECT SAMPLE_ID, MEAN_RADIUS FROM {target}"))
    assert len(rows) == 15
    assert [rows[f"WDBC-{i:04d}"] for i in range(6, 16)] == [CHANGED_RADIUS] * 10
    assert rows["WDBC-0001"] == 17.99
    versions = dict(harness.query("SELECT SAMPLE_ID, SOURCE_VERSION FROM {target}"))
    assert {versions[f"WDBC-{i:04d}"] for i in range(1, 6)} == {v1}
    assert {versions[f"WDBC-{i:04d}"] for i in range(6, 16)} == {v2}
    # and when version 1 came last, its 5 overlapping rows are rejects that say why, not silent losses
    if delivery == "v2-then-v1":
        assert (results["v1"].rows_loaded, results["v1"].rows_rejected) == (5, 5)
        reasons = harness.query("SELECT SOURCE_LINE, REASON FROM {rejects} ORDER BY SOURCE_LINE")
        assert [r[0] for r in reasons] == list(range(7, 12))
        assert all("a newer version of this object" in r[1] for r in reasons)
    else:
        assert harness.count("rejects") == 0


def test_rows_of_other_objects_are_replaced_as_before(
    harness: Any, pipeline: Any, versioned_bucket: str, make_csv: Callable[..., bytes]
) -> None:
    # Given samples 6..15 loaded from another object whose event carried a higher sequencer (sequencers of
    # different keys say nothing about each other)
    s3 = harness.stack.client("s3")
    body_v1, body_v2 = _versions(make_csv)
    other = s3.put_object(Bucket=versioned_bucket, Key="incoming/other.csv", Body=body_v2)["VersionId"]
    pipeline.process(ObjectRef(versioned_bucket, "incoming/other.csv", version_id=other, sequencer="FFFF"))
    # When a file with samples 1..10 and a lower sequencer is loaded
    mine = s3.put_object(Bucket=versioned_bucket, Key=KEY, Body=body_v1)["VersionId"]
    result = pipeline.process(ObjectRef(versioned_bucket, KEY, version_id=mine, sequencer="01"))
    # Then it replaces samples 6..10 (the later publish wins across objects, as before)
    assert (result.rows_loaded, result.rows_rejected) == (10, 0)
    rows = dict(harness.query("SELECT SAMPLE_ID, MEAN_RADIUS FROM {target}"))
    assert rows["WDBC-0006"] != CHANGED_RADIUS and rows["WDBC-0011"] == CHANGED_RADIUS
    assert_ledger_matches_tables(harness.query, harness.tables, [str(result.load_id)])
