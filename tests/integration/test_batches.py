"""Several objects in one SQS batch: one publish transaction, and a failure in one object never loses or
duplicates another's rows.

Each test delivers one SQS batch (one S3 notification per message, as the queue sends them) to the handler on the
local stack (moto + fakesnow), then checks the tables and, with tests/ledger_invariant.py, that every ledger row's
counts equal the rows its load put in the tables. Faults are injected at the botocore / connector boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.ledger_invariant import assert_ledger_matches_tables, assert_summary_matches_ledger
from tests.sqs_batches import failed_messages, sqs_batch

ROWS = 30


def statuses(summary: dict[str, Any]) -> dict[str, str]:
    return {o["key"]: o["status"] for o in summary["objects"]}


def rows_of(harness: Any, key: str) -> int:
    return harness.count("target", f"SOURCE_KEY = '{key}'")


def test_a_batch_publishes_every_object_once_in_one_transaction(harness: Any, make_csv: Callable[..., bytes]) -> None:
    # Given five files, one of them a file that cannot be used (no data rows), in one SQS batch
    keys = [f"incoming/batch/f{i}.csv" for i in range(5)]
    events = [harness.put(k, make_csv(ROWS + i)) for k, i in zip(keys[:4], range(4), strict=True)]
    events.append(harness.put(keys[4], make_csv(0)))
    # When the batch is delivered
    summary = harness.invoke(sqs_batch(events))
    # Then the good files load, the unusable one is recorded FAILED, and no message comes back
    assert statuses(summary) == {**{k: "loaded" for k in keys[:4]}, keys[4]: "failed"}
    assert failed_messages(summary) == []
    assert [rows_of(harness, k) for k in keys] == [ROWS, ROWS + 1, ROWS + 2, ROWS + 3, 0]
    # and all the ledger rows were written by one publish (one transaction: one lock token for the batch)
    assert harness.query("SELECT COUNT(*), COUNT(DISTINCT LOCK_TOKEN) FROM {ledger}") == [(5, 1)]
    assert_summary_matches_ledger(harness.query, harness.tables, summary)
    # and delivering the batch again changes nothing
    again = harness.invoke(sqs_batch(events))
    assert set(statuses(again).values()) == {"duplicate"}
    assert harness.count() == sum(ROWS + i for i in range(4))


def test_one_object_whose_s3_read_fails_comes_back_alone(
    harness: Any, make_csv: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.client import BaseClient
    from botocore.exceptions import EndpointConnectionError

    keys = [f"incoming/batch/s3-{i}.csv" for i in range(3)]
    events = [harness.put(k, make_csv(ROWS)) for k in keys]
    # Given S3 failing every GET of the second object
    original = BaseClient._make_api_call

    def call(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if operation == "GetObject" and params.get("Key") == keys[1]:
            raise EndpointConnectionError(endpoint_url="https://s3.amazonaws.com")
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", call)
    # When the three are delivered in one batch
    summary = harness.invoke(sqs_batch(events))
    # Then the other two load, and only the failed object's message comes back
    assert statuses(summary) == {keys[0]: "loaded", keys[1]: "error", keys[2]: "loaded"}
    assert failed_messages(summary) == ["m1"]
    assert [rows_of(harness, k) for k in keys] == [ROWS, 0, ROWS]
    # When S3 is back and the queue redelivers that message
    monkeypatch.setattr(BaseClient, "_make_api_call", original)
    retry = harness.invoke(sqs_batch([events[1]]))
    # Then it loads, once, and nothing else changed
    assert statuses(retry) == {keys[1]: "loaded"}
    assert [rows_of(harness, k) for k in keys] == [ROWS, ROWS, ROWS]
    assert_ledger_matches_tables(harness.query, harness.tables)


def test_a_publish_that_fails_brings_every_message_back_and_the_redelivery_loads_each_once(
    harness: Any, make_csv: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    from snowflake.connector import errors as sf
    from snowflake.connector.connection import SnowflakeConnection

    keys = [f"incoming/batch/commit-{i}.csv" for i in range(3)]
    events = [harness.put(k, make_csv(ROWS)) for k in keys]
    # Given Snowflake dropping the connection at the batch's COMMIT, once
    original = SnowflakeConnection.commit
    fired: list[bool] = []

    def commit(self: Any) -> Any:
        if not fired:
            fired.append(True)
            raise sf.OperationalError(msg="injected: connection reset before COMMIT reached Snowflake", errno=250003)
        return original(self)

    monkeypatch.setattr(SnowflakeConnection, "commit", commit)
    # When the batch is delivered
    summary = harness.invoke(sqs_batch(events))
    # Then nothing of it is visible, and every message comes back
    assert fired and set(statuses(summary).values()) == {"error"}
    assert failed_messages(summary) == ["m0", "m1", "m2"]
    assert harness.count() == 0
    # When the queue redelivers them (in another batch shape: one, then two)
    first = harness.invoke(sqs_batch(events[:1]))
    rest = harness.invoke(sqs_batch(events[1:]))
    # Then each loads exactly once
    assert set(statuses(first).values()) | set(statuses(rest).values()) == {"loaded"}
    assert [rows_of(harness, k) for k in keys] == [ROWS] * 3
    assert harness.query("SELECT COUNT(*) FROM {ledger} WHERE STATUS = 'LOADED'") == [(3,)]
    assert_ledger_matches_tables(harness.query, harness.tables)


def test_the_same_version_twice_in_one_batch_loads_once(harness: Any, make_csv: Callable[..., bytes]) -> None:
    # Given a batch in which S3's notification for one object version arrived twice (at-least-once delivery)
    event = harness.put("incoming/batch/twice.csv", make_csv(ROWS))
    other = harness.put("incoming/batch/other.csv", make_csv(ROWS))
    # When the batch is delivered
    summary = harness.invoke(sqs_batch([event, other, event]))
    # Then the version loads once, and the second copy is a duplicate of that load
    outcomes = [(o["key"], o["status"]) for o in summary["objects"]]
    twice, other = "incoming/batch/twice.csv", "incoming/batch/other.csv"
    assert sorted(outcomes) == sorted([(twice, "loaded"), (other, "loaded"), (twice, "duplicate")])
    loaded_id = next(o["load_id"] for o in summary["objects"] if o["status"] == "loaded" and "twice" in o["key"])
    assert next(o["load_id"] for o in summary["objects"] if o["status"] == "duplicate") == loaded_id
    assert rows_of(harness, "incoming/batch/twice.csv") == ROWS
    assert failed_messages(summary) == []
    assert_ledger_matches_tables(harness.query, harness.tables)


@pytest.mark.parametrize("order", ["old-then-new", "new-then-old"])
def test_upsert_two_versions_of_one_object_in_one_batch_the_newer_wins(
    harness: Any, make_csv: Callable[..., bytes], order: str
) -> None:
    import uuid

    from tools.emulated.s3_events import s3_put_event

    upsert = {"LOAD_MODE": "upsert", "MERGE_KEYS": "SAMPLE_ID"}
    key = "incoming/batch/versions.csv"

    def radius(value: str) -> Callable[[list[str]], list[str]]:
        def edit(lines: list[str]) -> list[str]:
            return [lines[0]] + [",".join([c[0], value, *c[2:]]) for c in (line.split(",") for line in lines[1:])]

        return edit

    # Given two versions of one object in a versioned bucket, their notifications carrying S3's sequencers (v2 after v1)
    s3 = harness.stack.client("s3")
    bucket = f"versioned-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    events = []
    for sequencer, value in (("00AA", "11.5"), ("00BB", "22.5")):
        body = make_csv(ROWS, radius(value))
        put = s3.put_object(Bucket=bucket, Key=key, Body=body)
        events.append(
            s3_put_event(bucket, key, put["ETag"].strip('"'), len(body), put["VersionId"], sequencer=sequencer)
        )
    # When both arrive in one batch, in either order
    summary = harness.invoke(sqs_batch(events if order == "old-then-new" else events[::-1]), **upsert)
    # Then both versions load (the older one's rows that the newer one wrote are rejected when it comes second),
    # and every key holds the newer version's values
    assert [o["status"] for o in summary["objects"]] == ["loaded", "loaded"]
    assert harness.query("SELECT COUNT(*), COUNT(DISTINCT SAMPLE_ID), MIN(MEAN_RADIUS) FROM {target}") == [
        (ROWS, ROWS, 22.5)
    ]
    # and each version's ledger counts are what it left in the tables when the batch committed: the older
    # version's rows are rejects either way (superseded by the newer version, or replaced by it later in the batch)
    newer = events[1]["Records"][0]["s3"]["object"]["versionId"]
    by_version = {o["version"]: o for o in summary["objects"]}
    older = next(o for v, o in by_version.items() if v != newer)
    assert (older["rows_loaded"], older["rows_rejected"]) == (0, ROWS)
    assert (by_version[newer]["rows_loaded"], by_version[newer]["rows_rejected"]) == (ROWS, 0)
    assert_summary_matches_ledger(harness.query, harness.tables, summary)


def lines_between(first: int, last: int, radius: str) -> Callable[[list[str]], list[str]]:
    """The header and the sample's data lines ``first``..``last`` (1-based), their mean radius set to ``radius``."""

    def edit(lines: list[str]) -> list[str]:
        rows = [line.split(",") for line in lines[first : last + 1]]
        return [lines[0]] + [",".join([c[0], radius, *c[2:]]) for c in rows]

    return edit


@pytest.mark.parametrize("delivery", ["one-batch", "two-batches"])
def test_upsert_files_sharing_merge_keys_count_what_each_left_in_the_tables(
    harness: Any, make_csv: Callable[..., bytes], delivery: str
) -> None:
    """Given two files of different objects that share two merge keys: a (samples 1-5), then b (samples 4-8)
    When they arrive in one SQS batch (one publish transaction), or in two batches one after the other
    Then the target holds the same rows either way (b's for the shared keys), b counts what it loaded either way,
    and every ledger row's counts are what its load left in the tables when it committed: in one batch, a's two
    rows that b replaced in the same transaction never became visible, so they are a's rejects (naming the later
    file); in two batches they were a's loaded rows when a committed."""
    # fakesnow (DuckDB) runs the batch's merges (DELETE + INSERT) and the count of replaced rows in one
    # transaction, as Snowflake does; nothing here relies on its locking (one session at a time).
    upsert = {"LOAD_MODE": "upsert", "MERGE_KEYS": "SAMPLE_ID"}
    a = harness.put("incoming/batch/keys-a.csv", make_csv(8, lines_between(1, 5, "11.5")))
    b = harness.put("incoming/batch/keys-b.csv", make_csv(8, lines_between(4, 8, "22.5")))
    deliveries = [[a, b]] if delivery == "one-batch" else [[a], [b]]
    summaries = []
    for events in deliveries:
        summaries.append(summary := harness.invoke(sqs_batch(events), **upsert))
        assert failed_messages(summary) == []
        assert_summary_matches_ledger(harness.query, harness.tables, summary)  # right after each delivery
    got = {o["key"].split("/")[-1]: (o["rows_loaded"], o["rows_rejected"]) for s in summaries for o in s["objects"]}
    assert got == {"keys-a.csv": (3, 2) if delivery == "one-batch" else (5, 0), "keys-b.csv": (5, 0)}
    assert harness.query(
        "SELECT COUNT(*), COUNT(DISTINCT SAMPLE_ID), SUM(IFF(MEAN_RADIUS = 22.5, 1, 0)) FROM {target}"
    ) == [(8, 8, 5)]
    if delivery == "one-batch":
        replaced = harness.query(
            "SELECT SOURCE_LINE, REASON FROM {rejects} WHERE SOURCE_KEY = 'incoming/batch/keys-a.csv'"
        )
        assert sorted(line for line, _ in replaced) == [5, 6]  # samples 4 and 5 (line 1 is the header)
        assert all("later file of the same batch" in reason for _, reason in replaced), replaced
