"""Round trips to Snowflake per file, counted by the Snowflake model's trace (tools/emulated/snowflake_model.py).

The function talks to the model's port, which counts every request (a PUT's query request counts once) and
records which statements ran while the session held the ledger's lock. The model applies Snowflake's rules for
AUTOCOMMIT and table locks; fakesnow behind it runs the SQL. Latency is off: only the counts matter here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.sqs_batches import sqs_batch
from tools.emulated.local_stack import LambdaContext
from tools.emulated.snowflake_model import NO_LATENCY, SnowflakeModel, modelled_snowflake

MAX_ROUND_TRIPS = 9
MAX_UNDER_LOCK = 3
SMALL_ROWS = 20


@pytest.fixture
def modelled(stack: Any) -> Iterator[tuple[SnowflakeModel, int]]:
    model = SnowflakeModel(NO_LATENCY)
    with modelled_snowflake(model) as port:
        yield model, port


@pytest.fixture
def container(harness: Any, modelled: tuple[SnowflakeModel, int]) -> Callable[..., Callable[[dict[str, Any]], Any]]:
    """A warm container pointed at the model: settings and pipeline built once, reused across deliveries."""
    from handler import app
    from pipeline.settings import get_settings

    def start(**env: str) -> Callable[[dict[str, Any]], Any]:
        for name, value in {**harness.env, "SNOWFLAKE_PORT": str(modelled[1]), **env}.items():
            harness.monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        app.build_pipeline.cache_clear()

        def deliver(event: dict[str, Any]) -> Any:
            return app.lambda_handler(event, LambdaContext(aws_request_id="round-trips"))  # type: ignore[arg-type]

        return deliver

    yield start
    app.build_pipeline().warehouse.close()
    get_settings.cache_clear()
    app.build_pipeline.cache_clear()


def the_function_session(model: SnowflakeModel) -> list[Any]:
    """The trace of the one session the function used since the last reset (tests read through another port)."""
    traces = [steps for steps in model.traces().values() if steps]
    assert len(traces) == 1, f"expected one session, found {len(traces)}"
    return traces[0]


def describe(steps: list[Any]) -> str:
    return " | ".join(f"{s.verb}{' [lock]' if s.held_after or s.released else ''}" for s in steps)


def test_a_warm_small_file_costs_at_most_nine_round_trips_three_under_the_ledger_lock(
    harness: Any, modelled: tuple[SnowflakeModel, int], container: Any, make_csv: Callable[..., bytes]
) -> None:
    model, _ = modelled
    ledger = harness.tables["ledger"]
    # Given a warm container (it has loaded a file: its tables exist, its connection is open)
    deliver = container()
    assert deliver(harness.put("incoming/rt/first.csv", make_csv(SMALL_ROWS)))["rows_loaded"] == SMALL_ROWS
    model.reset_trace()
    # When one more small, clean file arrives
    summary = deliver(harness.put("incoming/rt/second.csv", make_csv(SMALL_ROWS)))
    # Then it loads with at most 9 round trips to Snowflake, 3 of them while holding the ledger's lock, taken once
    assert summary["rows_loaded"] == SMALL_ROWS
    steps = the_function_session(model)
    assert len(steps) <= MAX_ROUND_TRIPS, describe(steps)
    spans = model.lock_spans(ledger)
    assert len(spans) == 1 and spans[0] <= MAX_UNDER_LOCK, (spans, describe(steps))
    assert harness.count() == 2 * SMALL_ROWS


@pytest.mark.parametrize("batch_publish", ["true", "false"])
def test_a_batch_of_ten_small_files_takes_the_ledger_lock_once_unless_batching_is_off(
    harness: Any,
    modelled: tuple[SnowflakeModel, int],
    container: Any,
    make_csv: Callable[..., bytes],
    batch_publish: str,
) -> None:
    model, _ = modelled
    ledger = harness.tables["ledger"]
    deliver = container(BATCH_PUBLISH=batch_publish)
    deliver(harness.put("incoming/rt/warm.csv", make_csv(SMALL_ROWS)))
    events = [harness.put(f"incoming/rt/batch-{i}.csv", make_csv(SMALL_ROWS + i)) for i in range(10)]
    model.reset_trace()
    # When ten small files arrive in one SQS batch
    summary = deliver(sqs_batch(events))
    # Then all load, exactly once each
    assert [o["status"] for o in summary["objects"]] == ["loaded"] * 10
    assert summary["batchItemFailures"] == []
    assert harness.count() == SMALL_ROWS + sum(SMALL_ROWS + i for i in range(10))
    assert harness.query("SELECT COUNT(*), COUNT(DISTINCT LOAD_KEY) FROM {ledger} WHERE STATUS = 'LOADED'") == [
        (11, 11)
    ]
    steps = the_function_session(model)
    spans = model.lock_spans(ledger)
    if batch_publish == "true":
        # and the batch costs what one file costs: one lock, 3 statements under it, 9 round trips in all
        assert len(spans) == 1 and spans[0] <= MAX_UNDER_LOCK, (spans, describe(steps))
        assert len(steps) <= MAX_ROUND_TRIPS, describe(steps)
    else:
        # one transaction per object: ten locks, ten times the round trips
        assert len(spans) == 10 and max(spans) <= MAX_UNDER_LOCK, spans
        assert len(steps) <= 10 * MAX_ROUND_TRIPS, describe(steps)
        assert len(steps) > 5 * MAX_ROUND_TRIPS, describe(steps)
