"""A publish is never started near the end of the invocation (pipeline/process.py, ``PUBLISH_MARGIN_SECONDS``).

A Lambda timeout inside a publish would leave a detached transaction holding the ledger lock, and every other
publish waiting on it, until Snowflake aborts it. Each test hands the handler a context with little time left,
on the local stack (moto + fakesnow), and checks that nothing was published, that the messages come back, and
that the next delivery loads each file once. fakesnow takes no lock, so what is checked here is the decision and
the rollback, not Snowflake's locking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.process import PUBLISH_MARGIN_SECONDS
from tests.ledger_invariant import assert_ledger_matches_tables
from tests.sqs_batches import failed_messages, sqs_batch
from tools.emulated.local_stack import LambdaContext

ROWS = 20
PUBLISH_NEEDS = 120 + PUBLISH_MARGIN_SECONDS  # the default SNOWFLAKE_LOCK_TIMEOUT, plus the margin


@dataclass
class ScriptedContext(LambdaContext):
    """A context whose remaining time follows a script, one value per call (the last one repeats)."""

    seconds_left: list[float] = field(default_factory=list)
    calls: int = 0

    def get_remaining_time_in_millis(self) -> int:
        value = self.seconds_left[min(self.calls, len(self.seconds_left) - 1)]
        self.calls += 1
        return int(value * 1000)


def warm_invoke(event: dict[str, Any]) -> dict[str, Any]:
    """The next invocation of the same warm container: the pipeline (and its Snowflake connection) is reused."""
    from handler import app

    return app.lambda_handler(event, LambdaContext(aws_request_id="warm"))  # type: ignore[arg-type]


def test_a_batch_delivered_with_too_little_time_left_is_not_started_and_every_message_comes_back(
    harness: Any, make_csv: Callable[..., bytes]
) -> None:
    # Given two files in one SQS batch, and an invocation 1 s short of what a publish may need
    keys = ["incoming/late/a.csv", "incoming/late/b.csv"]
    events = [harness.put(key, make_csv(ROWS)) for key in keys]

    # When the batch is delivered
    summary = harness.invoke(sqs_batch(events), LambdaContext(timeout_seconds=PUBLISH_NEEDS - 1))

    # Then both messages come back, each object reported as out of time with a reason that says why
    assert failed_messages(summary) == ["m0", "m1"]
    assert [(o["key"], o["status"], o["reason_code"]) for o in summary["objects"]] == [
        (key, "error", "out_of_time") for key in keys
    ]
    assert all("SNOWFLAKE_LOCK_TIMEOUT" in o["reason"] for o in summary["objects"])

    # And when the batch comes back to the warm container with its full time, each file loads, and only now
    again = warm_invoke(sqs_batch(events))
    assert failed_messages(again) == []
    assert [(o["key"], o["status"], o["rows_loaded"]) for o in again["objects"]] == [
        (key, "loaded", ROWS) for key in keys
    ]
    assert harness.count("target") == 2 * ROWS
    assert harness.query("SELECT STATUS, COUNT(*) FROM {ledger} GROUP BY STATUS") == [("LOADED", 2)]


def test_a_shorter_lock_timeout_lets_a_publish_start_with_less_time_left(
    harness: Any, make_csv: Callable[..., bytes]
) -> None:
    # Given a file, SNOWFLAKE_LOCK_TIMEOUT of 30 s, and the time that was too little with the default 120 s
    event = harness.put("incoming/late/short-lock.csv", make_csv(ROWS))

    # When it is delivered
    summary = harness.invoke(
        sqs_batch([event]), LambdaContext(timeout_seconds=PUBLISH_NEEDS - 1), SNOWFLAKE_LOCK_TIMEOUT="30"
    )

    # Then it loads: 30 s + the margin fit
    assert failed_messages(summary) == []
    assert [o["status"] for o in summary["objects"]] == ["loaded"]
    assert harness.count("target") == ROWS


def test_time_that_runs_short_while_staging_rolls_the_batch_back_and_the_warm_retry_loads_it_once(
    harness: Any, make_csv: Callable[..., bytes]
) -> None:
    # Given two files in one batch, and an invocation with time enough to start but, once they are staged, not
    # enough to publish (the check before the claim sees 900 s, the one before the publish 100 s)
    keys = ["incoming/late/c.csv", "incoming/late/d.csv"]
    events = [harness.put(key, make_csv(ROWS)) for key in keys]

    # When the batch is delivered
    summary = harness.invoke(sqs_batch(events), ScriptedContext(seconds_left=[900, 100]))

    # Then nothing was published: both messages come back, out of time, and the ledger holds only the claim's
    # STARTED rows (staging ran, the publish did not)
    assert failed_messages(summary) == ["m0", "m1"]
    assert {o["reason_code"] for o in summary["objects"]} == {"out_of_time"}
    assert harness.query("SELECT STATUS, COUNT(*) FROM {ledger} GROUP BY STATUS") == [("STARTED", 2)]
    assert harness.count("target") == 0

    # And the warm container's next delivery (same connection: the rollback left no transaction open) loads
    # each file once
    again = warm_invoke(sqs_batch(events))
    assert [(o["status"], o["rows_loaded"]) for o in again["objects"]] == [("loaded", ROWS), ("loaded", ROWS)]
    assert harness.count("target") == 2 * ROWS
    assert harness.count("ledger", "STATUS = 'LOADED'") == 2
    assert_ledger_matches_tables(harness.query, harness.tables)


def test_the_groups_published_before_time_ran_short_stay_published(
    harness: Any, make_csv: Callable[..., bytes]
) -> None:
    # Given two files, each its own transaction (BATCH_PUBLISH=false), and time that runs short after the first
    # one's publish (reads: before the first, the warehouse's at its batch (its statements' server-side timeout),
    # before its publish, before the second)
    keys = ["incoming/late/e.csv", "incoming/late/f.csv"]
    events = [harness.put(key, make_csv(ROWS)) for key in keys]

    # When they are delivered in one batch
    summary = harness.invoke(
        sqs_batch(events), ScriptedContext(seconds_left=[900, 900, 900, 100]), BATCH_PUBLISH="false"
    )

    # Then the first is loaded and its message deleted; only the second's comes back
    assert [(o["key"], o["status"]) for o in summary["objects"]] == [(keys[0], "loaded"), (keys[1], "error")]
    assert failed_messages(summary) == ["m1"]
    assert harness.count("target") == ROWS
    # And the second loads on its own next delivery
    again = warm_invoke(sqs_batch(events[1:]))
    assert [(o["key"], o["status"]) for o in again["objects"]] == [(keys[1], "loaded")]
    assert harness.count("target") == 2 * ROWS
