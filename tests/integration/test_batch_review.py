"""Review of the batched load: failures of one object's staging must not cost another object its rows.

A batch gathers the frames of several objects into one staging write (``SnowflakeBatch._flush``). These tests
deliver one SQS batch to the handler on the local stack (moto + fakesnow) with a fault injected at the
connector boundary, then check that every object reported ``loaded`` has its rows in the target and a ledger row
that agrees (tests/ledger_invariant.py). They do not rely on fakesnow's locking: no two sessions run at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from snowflake.connector import errors as sf

from tests.ledger_invariant import ledger_vs_tables
from tests.sqs_batches import sqs_batch

SMALL = 5  # rows of the small file: below CHUNK_ROWS, so its frame waits to be written with the next one's
CHUNK_ROWS = "20"


def copy_fails(monkeypatch: pytest.MonkeyPatch, error: Exception) -> list[str]:
    """The first staging COPY (write_pandas' ``COPY INTO``) fails with ``error``; the statements it refused."""
    from snowflake.connector.cursor import SnowflakeCursor

    refused: list[str] = []
    original = SnowflakeCursor.execute

    def execute(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        if re.match(r"^\s*COPY INTO", command, re.IGNORECASE) and not refused:
            refused.append(command)
            raise error
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(SnowflakeCursor, "execute", execute)
    return refused


def loaded_objects_keep_their_rows(harness: Any, summary: dict[str, Any]) -> list[str]:
    """Each object reported loaded whose rows are not all in the target, and each ledger/table disagreement."""
    problems = []
    for obj in summary["objects"]:
        if obj["status"] == "loaded":
            landed = harness.count("target", f"LOAD_ID = '{obj['load_id']}'")
            if landed != obj["rows_loaded"]:
                problems.append(f"{obj['key']}: reported {obj['rows_loaded']} rows loaded, the target holds {landed}")
    return problems + ledger_vs_tables(harness.query, harness.tables)


def test_a_refused_staging_write_never_publishes_another_objects_rows_as_loaded_without_them(
    harness: Any, make_csv: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a small file (its frame waits to be gathered) then a bigger one whose first chunk fills the write,
    and Snowflake refusing that write for good (as test_faults.py's permanent staging refusal)
    When both arrive in one SQS batch
    Then the small file is not reported loaded (nor recorded LOADED) without its rows: either its rows are in the
    target, or its message comes back."""
    small = harness.put("incoming/review/small.csv", make_csv(SMALL))
    big = harness.put("incoming/review/big.csv", make_csv(60))
    refused = copy_fails(
        monkeypatch, sf.ProgrammingError(msg="injected: Insufficient privileges to operate on table", errno=3001)
    )
    summary = harness.invoke(sqs_batch([small, big]), CHUNK_ROWS=CHUNK_ROWS)
    assert refused, "the fault never fired: the gathered write did not happen"
    assert loaded_objects_keep_their_rows(harness, summary) == []


def test_a_staging_write_that_fails_while_its_object_fails_never_drops_another_objects_rows(
    harness: Any, make_csv: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a small file, then a file whose second chunk cannot be used (a value under a column with no name),
    and the staging write of the first chunk (gathered with the small file's frame) failing for a transient
    reason while that second chunk is parsed (BackgroundStager waits for it and drops its error)
    When both arrive in one SQS batch
    Then the second file is FAILED (its own fault), and the small one is either loaded with its rows or comes back."""

    def unnamed_value_on_line_30(lines: list[str]) -> list[str]:
        out = [lines[0] + ","] + [line + "," for line in lines[1:]]
        out[29] = lines[29] + ",surprise"
        return out

    small = harness.put("incoming/review/small.csv", make_csv(SMALL))
    bad = harness.put("incoming/review/unnamed.csv", make_csv(60, unnamed_value_on_line_30))
    refused = copy_fails(monkeypatch, sf.DatabaseError(msg="injected: warehouse busy, statement retried", errno=608))
    summary = harness.invoke(sqs_batch([small, bad]), CHUNK_ROWS=CHUNK_ROWS)
    assert refused, "the fault never fired: the gathered write did not happen"
    by_key = {o["key"]: o for o in summary["objects"]}
    assert by_key["incoming/review/unnamed.csv"]["status"] == "failed"
    assert by_key["incoming/review/unnamed.csv"]["reason_code"] == "unnamed_column"
    assert loaded_objects_keep_their_rows(harness, summary) == []


def test_a_mixed_batch_publishes_each_object_with_its_own_rows_and_counts(
    harness: Any, make_csv: Callable[..., bytes]
) -> None:
    """Given one SQS batch of: a small file; a file with an extra column (a second layout) that flushes mid-object
    (CHUNK_ROWS 20); a file whose rows are all rejected; a small file of the second layout; an event without
    version or ETag (the GET learns it); a file with a 3 MB record after 45 good rows (read again with large
    blocks after some of its rows were written); and the small file's notification again
    When the batch is delivered
    Then each object loads once with exactly its rows, its rejects and ledger counts that agree, and no message
    comes back."""
    from tools.emulated.s3_events import s3_put_event

    def ward(lines: list[str]) -> list[str]:
        return [lines[0] + ",ward"] + [f"{line},W{i}" for i, line in enumerate(lines[1:])]

    def all_bad(lines: list[str]) -> list[str]:
        return [lines[0]] + [",".join([c[0], "n/a", *c[2:]]) for c in (line.split(",") for line in lines[1:])]

    def long_record(lines: list[str]) -> list[str]:
        cells = lines[46].split(",")
        cells[0] = "x" * (3 << 20)
        return [*lines[:46], ",".join(cells), *lines[47:]]

    keys = {
        "small": make_csv(SMALL),
        "wide_big": make_csv(50, ward),
        "rejects_only": make_csv(7, all_bad),
        "wide_small": make_csv(3, ward),
        "versionless": make_csv(11),
        "long_record": make_csv(80, long_record),
    }
    events = [harness.put(f"incoming/mixed/{name}.csv", body) for name, body in keys.items()]
    bare = harness.put("incoming/mixed/versionless.csv", keys["versionless"])
    record = bare["Records"][0]["s3"]["object"]
    events[4] = s3_put_event(harness.bucket, "incoming/mixed/versionless.csv", "", record["size"], sequencer=None)
    events.append(events[0])
    summary = harness.invoke(sqs_batch(events), CHUNK_ROWS=CHUNK_ROWS)
    got = {
        (o["key"].split("/")[-1][:-4], o["status"]): (o["rows_loaded"], o["rows_rejected"]) for o in summary["objects"]
    }
    assert got == {
        ("small", "loaded"): (SMALL, 0),
        ("small", "duplicate"): (0, 0),
        ("wide_big", "loaded"): (50, 0),
        ("rejects_only", "loaded"): (0, 7),
        ("wide_small", "loaded"): (3, 0),
        ("versionless", "loaded"): (11, 0),
        ("long_record", "loaded"): (80, 0),
    }, summary["objects"]
    assert summary["batchItemFailures"] == []
    assert loaded_objects_keep_their_rows(harness, summary) == []
    assert harness.count("target", "WARD IS NOT NULL") == 53
    assert harness.count("target", "LENGTH(SAMPLE_ID) > 1000000") == 1  # read again with 16 MiB blocks
    assert harness.count() == SMALL + 50 + 3 + 11 + 80


def with_ward(value: str) -> Callable[[list[str]], list[str]]:
    """An extra ``ward`` column holding ``value`` on every line."""

    def edit(lines: list[str]) -> list[str]:
        return [lines[0] + ",ward"] + [f"{line},{value}" for line in lines[1:]]

    return edit


def ward_is_a_number(harness: Any, make_csv: Callable[..., bytes]) -> None:
    """The target exists (a first load made it), and an operator has added WARD to it as a number."""
    harness.invoke(sqs_batch([harness.put("incoming/refused/first.csv", make_csv(SMALL))]))
    harness.query("ALTER TABLE {target} ADD COLUMN WARD NUMBER(10,0)")


@pytest.mark.parametrize("batch_publish", ["true", "false"])
def test_a_file_snowflake_refuses_at_publish_fails_alone_and_the_others_load(
    harness: Any, make_csv: Callable[..., bytes], batch_publish: str
) -> None:
    """Given a target whose WARD column an operator created as a number, a good file, and a file whose ward cells
    hold text (staged as text, so the refusal comes from the rows INSERT at publish: fakesnow (DuckDB) refuses the
    cast at INSERT as Snowflake does, with its own message and error number)
    When both arrive in one SQS batch (published together, or each alone with BATCH_PUBLISH=false)
    Then the good file loads, the refused one is recorded FAILED (snowflake_rejected), no message comes back, and
    a redelivery of both is a duplicate that changes nothing."""
    ward_is_a_number(harness, make_csv)
    good = harness.put("incoming/refused/good.csv", make_csv(SMALL + 1))
    bad = harness.put("incoming/refused/bad.csv", make_csv(SMALL + 2, with_ward("Ward-3-East")))
    summary = harness.invoke(sqs_batch([good, bad]), BATCH_PUBLISH=batch_publish)
    by_key = {o["key"]: o for o in summary["objects"]}
    assert by_key["incoming/refused/good.csv"]["status"] == "loaded", summary["objects"]
    assert (
        by_key["incoming/refused/good.csv"]["rows_loaded"],
        harness.count("target", "SOURCE_KEY LIKE '%good.csv'"),
    ) == (SMALL + 1, SMALL + 1)
    refused = by_key["incoming/refused/bad.csv"]
    assert (refused["status"], refused["reason_code"]) == ("failed", "snowflake_rejected"), refused
    assert summary["batchItemFailures"] == []
    assert harness.query(
        "SELECT STATUS, REASON_CODE FROM {ledger} WHERE SOURCE_KEY = 'incoming/refused/bad.csv' AND STATUS <> 'STARTED'"
    ) == [("FAILED", "snowflake_rejected")]
    assert loaded_objects_keep_their_rows(harness, summary) == []
    again = harness.invoke(sqs_batch([good, bad]), BATCH_PUBLISH=batch_publish)
    assert [o["status"] for o in again["objects"]] == ["duplicate", "duplicate"]
    assert again["batchItemFailures"] == []
    assert harness.count("target", "SOURCE_KEY LIKE 'incoming/refused/%'") == SMALL + SMALL + 1


def refuses_statements_naming(monkeypatch: pytest.MonkeyPatch, pattern: str, marker: str) -> list[str]:
    """Snowflake refuses for good (a privilege error, errno 3001) every statement that matches ``pattern`` and whose
    text or bound parameters contain ``marker``; the statements it refused."""
    from snowflake.connector.cursor import SnowflakeCursor

    refused: list[str] = []
    original = SnowflakeCursor.execute

    def execute(self: Any, command: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        if re.match(pattern, command, re.IGNORECASE | re.DOTALL) and marker in f"{command} {params}":
            refused.append(command)
            raise sf.ProgrammingError(msg="injected: Insufficient privileges to operate on table", errno=3001)
        return original(self, command, params, *args, **kwargs)

    monkeypatch.setattr(SnowflakeCursor, "execute", execute)
    return refused


REFUSED_STATEMENTS = [
    # The bad file's staging write: its layout's table holds its rows only, written at publish (a small file)
    pytest.param(r"^\s*COPY INTO", "WARD", "failed", "snowflake_rejected", id="its-staging-write-at-publish"),
    # The rows INSERT of the publish that carries its layout
    pytest.param(r"^\s*INSERT INTO", "WARD", "failed", "snowflake_rejected", id="the-publish-rows-insert"),
    # The claim: the ledger refuses its row, so it cannot be recorded either; its message comes back alone
    pytest.param(r"^\s*INSERT INTO", "incoming/refused/bad.csv", "error", "snowflake_rejected", id="the-ledger-claim"),
    # ensure_target: adding its new column is refused; DDL never fails a file for good (retriable), so it comes
    # back alone, and the others load
    pytest.param(r"^\s*ALTER TABLE", "WARD", "error", "schema_evolution_failed", id="its-new-column-ddl"),
]


@pytest.mark.parametrize(("statement", "marker", "bad_status", "bad_reason"), REFUSED_STATEMENTS)
def test_a_permanent_refusal_anywhere_in_the_batch_never_fails_the_other_objects(
    harness: Any,
    make_csv: Callable[..., bytes],
    monkeypatch: pytest.MonkeyPatch,
    statement: str,
    marker: str,
    bad_status: str,
    bad_reason: str,
) -> None:
    """Given two good files and a file with an extra ward column, in one SQS batch, and Snowflake refusing for good
    a statement that only the ward file's load runs (injected at the connector: no fakesnow semantics relied on)
    When the batch is delivered
    Then the good files load with their rows, and the ward file alone is FAILED (snowflake_rejected, a redelivery is
    a duplicate) or, when the ledger itself refuses its row or the refusal is of DDL (retriable), comes back alone."""
    goods = [harness.put(f"incoming/refused/good-{i}.csv", make_csv(SMALL + i)) for i in range(2)]
    bad = harness.put("incoming/refused/bad.csv", make_csv(SMALL, with_ward("W1")))
    refused = refuses_statements_naming(monkeypatch, statement, marker)
    summary = harness.invoke(sqs_batch([goods[0], bad, goods[1]]))
    assert refused, "the fault never fired"
    got = {o["key"].split("/")[-1]: (o["status"], o.get("reason_code")) for o in summary["objects"]}
    assert got == {
        "good-0.csv": ("loaded", None),
        "good-1.csv": ("loaded", None),
        "bad.csv": (bad_status, bad_reason),
    }, summary["objects"]
    assert summary["batchItemFailures"] == ([] if bad_status == "failed" else [{"itemIdentifier": "m1"}])
    assert harness.count() == SMALL + SMALL + 1
    assert loaded_objects_keep_their_rows(harness, summary) == []
    if bad_status == "failed":
        assert [o["status"] for o in harness.invoke(sqs_batch([bad]))["objects"]] == ["duplicate"]
