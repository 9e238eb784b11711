"""The product end to end: S3 event -> handler -> moto S3 -> scorer -> fakesnow (real connector, real write_pandas)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np
import pytest

from pipeline.errors import WarehouseUnavailableError
from scoring import Scorer
from tests.csv_edits import set_sample_ids
from tests.ledger_invariant import check_every_delivery

KEY = "incoming/2026/11/wdbc.csv"


@pytest.fixture(autouse=True)
def _ledger_tells_the_truth(harness: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """After every delivery in this module: the ledger tells the truth (tests/ledger_invariant.py)."""
    check_every_delivery(harness, monkeypatch)


def _scores_by_sample(csv_bytes: bytes) -> dict[str, int]:
    rows = list(csv.reader(io.StringIO(csv_bytes.decode())))
    x = np.array([[float(v) for v in r[1:]] for r in rows[1:]], dtype=np.float32)
    scores = Scorer.load().score(x)
    return {r[0]: int(c) for r, c in zip(rows[1:], scores.classification, strict=True)}


def test_happy_path_loads_569_rows_with_the_scorers_labels(harness: Any, sample_bytes: bytes) -> None:
    # Given the sample export uploaded to the bucket
    event = harness.put(KEY, sample_bytes)
    # When the S3 event is delivered
    summary = harness.invoke(event)
    # Then all 569 rows are loaded, labelled as the scorer labels them, with their lineage
    assert summary["rows_loaded"] == 569 and summary["rows_rejected"] == 0
    assert summary["objects"][0]["status"] == "loaded"
    rows = harness.query(
        "SELECT SAMPLE_ID, CLASSIFICATION, CONDITION, SOURCE_KEY, SOURCE_LINE, MODEL_VERSION, "
        "LOAD_ID, LOADED_AT, MALIGNANT_PROBABILITY FROM {target}"
    )
    assert len(rows) == 569
    expected = _scores_by_sample(sample_bytes)
    assert {r[0]: int(r[1]) for r in rows} == expected
    assert all(r[2] == ("malignant" if int(r[1]) == 1 else "benign") for r in rows)
    assert {r[3] for r in rows} == {KEY}
    assert sorted(int(r[4]) for r in rows) == list(range(2, 571))
    assert {r[5] for r in rows} == {Scorer.load().model_version}
    assert {r[6] for r in rows} == {summary["objects"][0]["load_id"]}
    assert all(r[7] is not None and 0.0 <= r[8] <= 1.0 for r in rows)
    # and the measurements are stored exactly as written in the file
    first = harness.query("SELECT MEAN_RADIUS, WORST_FRACTAL_DIMENSION FROM {target} WHERE SOURCE_LINE = 2")[0]
    assert first == (17.99, 0.1189)
    assert harness.query("SELECT STATUS, ROWS_LOADED, ROWS_REJECTED FROM {ledger}") == [("LOADED", 569, 0)]


@pytest.mark.parametrize(
    ("key", "encoded"),
    [
        ("incoming/my file+1 é.csv", "incoming/my+file%2B1+%C3%A9.csv"),
        ("incoming/50% done (v2).csv", "incoming/50%25+done+%28v2%29.csv"),
    ],
)
def test_url_encoded_keys_are_decoded(harness: Any, make_csv: Any, key: str, encoded: str) -> None:
    # Given an object whose key has spaces, '+', '%' or unicode, and the event S3 sends for it
    event = harness.put(key, make_csv(10))
    assert event["Records"][0]["s3"]["object"]["key"] == encoded
    # When it is delivered
    summary = harness.invoke(event)
    # Then the decoded key was read and recorded
    assert summary["objects"][0]["key"] == key and summary["rows_loaded"] == 10
    assert harness.query("SELECT DISTINCT SOURCE_KEY FROM {target}") == [(key,)]


def test_every_record_of_a_multi_record_event_is_loaded(harness: Any, make_csv: Any) -> None:
    # Given one event naming three objects
    events = [harness.put(f"incoming/part-{i}.csv", make_csv(5 + i)) for i in range(3)]
    event = {"Records": [e["Records"][0] for e in events]}
    # When it is delivered
    summary = harness.invoke(event)
    # Then each object is loaded, not only the first
    assert [o["rows_loaded"] for o in summary["objects"]] == [5, 6, 7]
    assert harness.count() == 18


def test_sqs_wrapped_notification_is_loaded_with_a_partial_batch_response(harness: Any, make_csv: Any) -> None:
    # Given an S3 notification inside an SQS message
    s3_event = harness.put("incoming/via-sqs.csv", make_csv(12))
    event = {
        "Records": [
            {
                "messageId": "m-1",
                "receiptHandle": "r",
                "body": json.dumps(s3_event),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:q",
                "awsRegion": "us-east-1",
            }
        ]
    }
    # When it is delivered
    summary = harness.invoke(event)
    # Then the object is loaded and no message is reported failed
    assert summary["rows_loaded"] == 12 and summary["batchItemFailures"] == []


def test_eventbridge_object_created_is_loaded(harness: Any, make_csv: Any) -> None:
    # Given an EventBridge "Object Created" event for an uploaded object
    put = harness.put("incoming/eb file.csv", make_csv(7))["Records"][0]["s3"]["object"]
    event = {
        "version": "0",
        "id": "e-1",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "000000000000",
        "time": "2026-11-24T12:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "version": "0",
            "bucket": {"name": harness.bucket},
            "object": {"key": "incoming/eb+file.csv", "size": put["size"], "etag": put["eTag"], "sequencer": "1"},
            "request-id": "r",
            "requester": "x",
            "reason": "PutObject",
        },
    }
    # When it is delivered
    summary = harness.invoke(event)
    # Then the object is loaded under its decoded key
    assert summary["objects"][0]["key"] == "incoming/eb file.csv" and summary["rows_loaded"] == 7


@pytest.mark.parametrize(
    "event",
    [
        {
            "Service": "Amazon S3",
            "Event": "s3:TestEvent",
            "Time": "2026-11-24T12:00:00Z",
            "Bucket": "b",
            "RequestId": "r",
            "HostId": "h",
        },
        {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectRemoved:Delete",
                    "eventTime": "t",
                    "s3": {"bucket": {"name": "b"}, "object": {"key": "incoming/x.csv", "sequencer": "1"}},
                }
            ]
        },
    ],
    ids=["s3-test-event", "delete"],
)
def test_test_events_and_non_created_records_are_skipped(harness: Any, event: dict[str, Any]) -> None:
    # Given an event that names nothing to load
    # When it is delivered
    summary = harness.invoke(event)
    # Then it is skipped with a reason, not an error, and nothing is written
    assert summary["objects"] == [] and len(summary["skipped"]) == 1


def test_a_replayed_event_loads_once(harness: Any, make_csv: Any) -> None:
    # Given an event delivered three times
    event = harness.put(KEY, make_csv(50))
    statuses = [harness.invoke(event)["objects"][0]["status"] for _ in range(3)]
    # Then the rows are loaded once, and the replays are reported as duplicates
    assert statuses == ["loaded", "duplicate", "duplicate"]
    assert harness.count() == 50
    assert harness.query("SELECT COUNT(*), MAX(STATUS) FROM {ledger}") == [(1, "LOADED")]


def test_a_new_version_of_the_same_key_is_a_new_load(harness: Any, make_csv: Any) -> None:
    # Given a key loaded once, then overwritten with different content (a new ETag)
    first = harness.invoke(harness.put(KEY, make_csv(10)))
    second = harness.invoke(harness.put(KEY, make_csv(20)))
    # Then both versions are loaded, each once
    assert first["objects"][0]["version"] != second["objects"][0]["version"]
    assert [first["rows_loaded"], second["rows_loaded"]] == [10, 20]
    assert harness.count() == 30
    assert harness.count("ledger", "STATUS = 'LOADED'") == 2


def test_bad_rows_are_rejected_with_line_and_reason_and_the_rest_loads(harness: Any, make_csv: Any) -> None:
    # Given a file where line 3 has a non-numeric radius, line 5 an empty cell, line 7 'inf', line 9 too few fields
    def spoil(lines: list[str]) -> list[str]:
        for line_no, bad in ((3, "abc"), (5, ""), (7, "inf")):
            cells = lines[line_no - 1].split(",")
            cells[1] = bad
            lines[line_no - 1] = ",".join(cells)
        lines[8] = ",".join(lines[8].split(",")[:10])
        return lines

    summary = harness.invoke(harness.put(KEY, make_csv(20, spoil)))
    # Then 16 rows load and the 4 bad ones are kept with their line, column, reason and raw text
    assert (summary["rows_loaded"], summary["rows_rejected"]) == (16, 4)
    rejects = harness.query("SELECT SOURCE_LINE, COLUMN_NAME, REASON, RAW_TEXT FROM {rejects} ORDER BY SOURCE_LINE")
    assert [(r[0], r[1]) for r in rejects] == [(3, "mean radius"), (5, "mean radius"), (7, "mean radius"), (9, None)]
    assert "non-numeric" in rejects[0][2] and "missing" in rejects[1][2] and "non-finite" in rejects[2][2]
    assert "expected 31 fields, got 10" in rejects[3][2]
    assert rejects[0][3].startswith("WDBC-0002,abc,")
    assert sorted(r[0] for r in harness.query("SELECT SOURCE_LINE FROM {target}")) == [
        n for n in range(2, 22) if n not in (3, 5, 7, 9)
    ]


@pytest.mark.parametrize(
    ("body", "reason_code"),
    [
        (b"", "empty_file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "not_csv"),
        (b"sample_id,mean radius\nWDBC-1,1.0\n", "missing_columns"),
        (b"17.99,10.38,122.8\n20.57,17.77,132.9\n", "no_header"),
    ],
    ids=["empty", "binary", "missing-columns", "no-header"],
)
def test_an_unusable_file_is_recorded_as_failed_and_not_retried(harness: Any, body: bytes, reason_code: str) -> None:
    # Given a file that cannot be used
    event = harness.put("incoming/bad.csv", body)
    # When it is delivered (twice)
    summary = harness.invoke(event)
    again = harness.invoke(event)
    # Then nothing loads, the ledger says FAILED with a specific reason, and the invocation does not raise
    assert summary["objects"][0]["status"] == "failed"
    assert summary["objects"][0]["reason_code"] == reason_code
    assert again["objects"][0]["status"] == "duplicate"
    assert harness.query("SELECT STATUS, REASON_CODE FROM {ledger}") == [("FAILED", reason_code)]


def test_a_snowflake_failure_mid_publish_leaves_no_rows_and_the_retry_completes(
    harness: Any, make_csv: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapters import snowflake as adapter

    # Given Snowflake failing right after the rows were inserted, before the ledger and the commit
    original = adapter.SnowflakeBatch._insert_rows

    def insert_then_fail(self: Any, *args: Any) -> None:
        original(self, *args)
        raise WarehouseUnavailableError("injected: connection lost mid-publish")

    monkeypatch.setattr(adapter.SnowflakeBatch, "_insert_rows", insert_then_fail)
    event = harness.put(KEY, make_csv(30))
    # When the event is delivered, the invocation raises (so Lambda retries) and nothing is visible
    with pytest.raises(WarehouseUnavailableError):
        harness.invoke(event)
    assert harness.count() == 0
    assert harness.query("SELECT STATUS FROM {ledger}") == [("STARTED",)]  # the claim's; the publish rolled back
    # When Snowflake is back and Lambda retries
    monkeypatch.setattr(adapter.SnowflakeBatch, "_insert_rows", original)
    summary = harness.invoke(event)
    # Then the load completes, once
    assert summary["objects"][0]["status"] == "loaded" and harness.count() == 30


def test_upsert_mode_merges_on_the_key_columns(harness: Any, make_csv: Any) -> None:
    # Given upsert mode keyed on SAMPLE_ID, and a first file of 10 samples
    upsert = {"LOAD_MODE": "upsert", "MERGE_KEYS": "SAMPLE_ID"}
    harness.invoke(harness.put("incoming/a.csv", make_csv(10)), **upsert)

    # When a second file re-sends samples 6..10 with a changed radius, and adds samples 11..15
    def change(lines: list[str]) -> list[str]:
        out = [lines[0]]
        for line in lines[6:16]:
            cells = line.split(",")
            cells[1] = "99.5"
            out.append(",".join(cells))
        return out

    harness.invoke(harness.put("incoming/b.csv", make_csv(15, change)), **upsert)
    # Then there is one row per sample: 1..5 from the first file, 6..15 from the second
    rows = dict(harness.query("SELECT SAMPLE_ID, MEAN_RADIUS FROM {target}"))
    assert len(rows) == 15
    assert [rows[f"WDBC-{i:04d}"] for i in range(6, 16)] == [99.5] * 10
    assert rows["WDBC-0001"] == 17.99


UPSERT = {"LOAD_MODE": "upsert", "MERGE_KEYS": "SAMPLE_ID"}


def test_upsert_rejects_rows_without_a_merge_key_and_counts_what_landed(harness: Any, make_csv: Any) -> None:
    # Given upsert mode on SAMPLE_ID, and a file of 10 rows where four have no SAMPLE_ID (empty, or only spaces)
    keyless = {3: "", 5: "", 6: "   ", 9: ""}
    summary = harness.invoke(harness.put("incoming/keyless.csv", make_csv(10, set_sample_ids(keyless))), **UPSERT)
    # Then the 6 keyed rows load and the 4 keyless ones are rejected, naming the column; none collapses into another
    assert (summary["rows_loaded"], summary["rows_rejected"]) == (6, 4)
    assert harness.count() == 6
    rejects = harness.query("SELECT SOURCE_LINE, COLUMN_NAME, REASON FROM {rejects} ORDER BY SOURCE_LINE")
    assert [(r[0], r[1]) for r in rejects] == [(line, "sample_id") for line in sorted(keyless)]
    assert all("missing merge key" in r[2] and "'sample_id'" in r[2] for r in rejects)
    # When a later file has a keyless row of its own
    later = harness.invoke(harness.put("incoming/keyless-2.csv", make_csv(1, set_sample_ids({2: ""}))), **UPSERT)
    # Then it is rejected too, and deletes nothing that is already there
    assert (later["rows_loaded"], later["rows_rejected"]) == (0, 1)
    assert harness.count() == 6
    # (the ledger's counts equal the rows of each load: checked after every delivery by _ledger_tells_the_truth)


def test_upsert_keeps_the_last_line_of_a_repeated_key_and_rejects_the_earlier_ones(harness: Any, make_csv: Any) -> None:
    # Given upsert mode, and a file whose lines 2, 4 and 7 share one SAMPLE_ID (line 7 is the last)
    summary = harness.invoke(
        harness.put("incoming/repeats.csv", make_csv(8, set_sample_ids({2: "S-1", 4: "S-1", 7: "S-1"}))), **UPSERT
    )
    # Then line 7 is the row for S-1; lines 2 and 4 are rejected with the reason, so loaded + rejected = 8 records
    assert (summary["rows_loaded"], summary["rows_rejected"]) == (6, 2)
    assert harness.query("SELECT SOURCE_LINE FROM {target} WHERE SAMPLE_ID = 'S-1'") == [(7,)]
    rejects = harness.query("SELECT SOURCE_LINE, COLUMN_NAME, REASON FROM {rejects} ORDER BY SOURCE_LINE")
    assert [(r[0], r[1]) for r in rejects] == [(2, "sample_id"), (4, "sample_id")]
    assert all("repeated by a later line" in r[2] for r in rejects)


@pytest.mark.parametrize(
    "name",
    ["group", "select", "order", "current_date", "Qualify"],
    ids=["group", "select", "order-fakesnow-accepts", "current_date-fakesnow-accepts", "mixed-case"],
)
def test_an_extra_column_named_like_a_reserved_word_fails_as_bad_column_name(
    harness: Any, make_csv: Any, name: str
) -> None:
    """fakesnow (DuckDB) accepts ORDER and CURRENT_DATE as column names, Snowflake does not: the function must
    refuse them itself, before any SQL, rather than rely on the warehouse."""

    # Given a file with an extra column whose name is a Snowflake reserved word
    def add_column(lines: list[str]) -> list[str]:
        return [lines[0] + f",{name}"] + [line + ",x" for line in lines[1:]]

    event = harness.put("incoming/reserved.csv", make_csv(5, add_column))
    # When it is delivered
    result = harness.invoke(event)["objects"][0]
    # Then it fails as bad_column_name, naming the column and the fix, and nothing is created
    assert (result["status"], result["reason_code"]) == ("failed", "bad_column_name")
    assert repr(name) in result["reason"] and "COLUMN_RENAMES" in result["reason"]
    assert harness.query("SELECT STATUS, REASON_CODE FROM {ledger}") == [("FAILED", "bad_column_name")]
    # and with the rename the reason suggests, a new upload of the file loads
    renamed = harness.invoke(
        harness.put("incoming/reserved-renamed.csv", make_csv(5, add_column)),
        COLUMN_RENAMES=json.dumps({name: f"{name.upper()}_"}),
    )
    assert renamed["rows_loaded"] == 5
    assert harness.query(f"SELECT COUNT({name.upper()}_) FROM {{target}}") == [(5,)]


def test_the_events_sequencer_and_the_objects_last_modified_are_stored_with_every_row(
    harness: Any, make_csv: Any
) -> None:
    # Given an S3 notification whose record carries a sequencer (as S3 sends it: hex, unpadded)
    event = harness.put(KEY, make_csv(3))
    sequencer = event["Records"][0]["s3"]["object"]["sequencer"]
    # When it is delivered
    harness.invoke(event)
    # Then every row stores it upper-cased and left-padded to 64 hex digits, and the GET's Last-Modified
    stored = harness.query("SELECT DISTINCT SOURCE_SEQUENCER, SOURCE_LAST_MODIFIED IS NOT NULL FROM {target}")
    assert stored == [(sequencer.upper().rjust(64, "0"), True)]
