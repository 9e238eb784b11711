"""Review of the batched load (issue #12): failures of one object's staging must not cost another object its rows.

A batch gathers the frames of several objects into one staging write (``SnowflakeBatch._flush``). These tests
deliver one SQS batch to the handler on the local stack (moto + fakesnow) with a fault injected at the
connector boundary, then check that every object reported ``loaded`` has its rows in the target and a ledger row
that agrees (tests/ledger_invariant.py). They do not rely on fakesnow's locking: no two sessions run at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from snowflake.connector import errors as sf

from tests.ledger_invariant import ledger_vs_tables

SMALL = 5  # rows of the small file: below CHUNK_ROWS, so its frame waits to be written with the next one's
CHUNK_ROWS = "20"


def sqs_batch(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Records": [
            {"eventSource": "aws:sqs", "messageId": f"m{i}", "receiptHandle": f"r{i}", "body": json.dumps(event)}
            for i, event in enumerate(events)
        ]
    }


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
