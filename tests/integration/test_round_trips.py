"""Round trips to Snowflake per file, counted by the Snowflake model's trace (tools/emulated/snowflake_model.py).

The function talks to the model's port, which counts every request (a PUT's query request counts once) and
records which statements ran while the session held the ledger's lock. The model applies Snowflake's rules for
AUTOCOMMIT and table locks; fakesnow behind it runs the SQL. Latency is off: only the counts matter here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.sql_trace import four_part_names
from tests.sqs_batches import sqs_batch
from tools.emulated.local_stack import LambdaContext
from tools.emulated.snowflake_model import NO_LATENCY, SnowflakeModel, modelled_snowflake

# 9 before per-file monitoring; its row per load is one INSERT per batch, in the publish, before the lock.
MAX_ROUND_TRIPS = 10
MAX_UNDER_LOCK = 3
SMALL_ROWS = 20


@pytest.fixture
def modelled(stack: Any) -> Iterator[tuple[SnowflakeModel, int]]:
    model = SnowflakeModel(NO_LATENCY, insert_waits=True)  # strict: an INSERT may wait behind an UPDATE
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
    # Then it loads with at most 10 round trips to Snowflake, 3 of them while holding the ledger's lock, taken once
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
        # and the batch costs what one file costs: one lock, 3 statements under it, 10 round trips in all
        assert len(spans) == 1 and spans[0] <= MAX_UNDER_LOCK, (spans, describe(steps))
        assert len(steps) <= MAX_ROUND_TRIPS, describe(steps)
    else:
        # one transaction per object: ten locks, ten times the round trips
        assert len(spans) == 10 and max(spans) <= MAX_UNDER_LOCK, spans
        assert len(steps) <= 10 * MAX_ROUND_TRIPS, describe(steps)
        assert len(steps) > 5 * MAX_ROUND_TRIPS, describe(steps)


@pytest.mark.parametrize("files", [1, 10], ids=["one-file", "sqs-batch-of-ten"])
def test_no_transaction_is_open_while_the_batch_is_read_and_scored(
    harness: Any,
    container: Any,
    make_csv: Callable[..., bytes],
    monkeypatch: pytest.MonkeyPatch,
    files: int,
) -> None:
    """Snowflake says an INSERT only "sometimes" runs beside another session's UPDATE of its table: a claim whose
    transaction stays open through S3 reads and scoring can hold up, or queue behind, the ledger's publishers."""
    from handler import app

    model = SnowflakeModel(NO_LATENCY, insert_waits=True)  # the strict model: an INSERT may wait
    with modelled_snowflake(model) as port:
        deliver = container(SNOWFLAKE_PORT=str(port))
        deliver(harness.put("incoming/rt/warm.csv", make_csv(SMALL_ROWS)))
        pipeline = app.build_pipeline()
        open_while: list[bool] = []

        def in_transaction() -> bool:
            return any(session.in_transaction for session in model.sessions.values())

        original_open, original_score = pipeline.source.open, pipeline.scorer.score

        def observed_open(*args: Any, **kwargs: Any) -> Any:
            open_while.append(in_transaction())
            return original_open(*args, **kwargs)

        def observed_score(*args: Any, **kwargs: Any) -> Any:
            open_while.append(in_transaction())
            return original_score(*args, **kwargs)

        monkeypatch.setattr(pipeline.source, "open", observed_open)
        monkeypatch.setattr(pipeline.scorer, "score", observed_score)
        events = [harness.put(f"incoming/rt/read-{i}.csv", make_csv(SMALL_ROWS)) for i in range(files)]
        model.reset_trace()
        # When the files arrive (warm container, one SQS batch)
        summary = deliver(sqs_batch(events) if files > 1 else events[0])
        # Then every S3 read and every scoring call ran with no transaction open on the function's session
        assert open_while and not any(open_while), open_while
        # And the claim's commit cost no round trip over the budget
        assert [o["status"] for o in summary["objects"]] == ["loaded"] * files
        assert len(the_function_session(model)) <= MAX_ROUND_TRIPS, describe(the_function_session(model))


MAX_UNDER_LOCK_UPSERT = 8


@pytest.mark.parametrize("files", [1, 3, 10])
def test_an_upsert_batch_holds_the_ledger_lock_for_at_most_eight_statements_whatever_its_size(
    harness: Any, modelled: tuple[SnowflakeModel, int], container: Any, make_csv: Callable[..., bytes], files: int
) -> None:
    from tests.ledger_invariant import assert_ledger_matches_tables

    model, _ = modelled
    ledger = harness.tables["ledger"]
    # Given a warm container in upsert mode, and files whose merge keys overlap (each repeats the earlier ones' keys)
    deliver = container(LOAD_MODE="upsert", MERGE_KEYS="SAMPLE_ID")
    deliver(harness.put("incoming/rt/upsert-warm.csv", make_csv(SMALL_ROWS)))
    events = [harness.put(f"incoming/rt/upsert-{i}.csv", make_csv(SMALL_ROWS + i)) for i in range(files)]
    model.reset_trace()
    # When they arrive in one SQS batch
    summary = deliver(sqs_batch(events) if files > 1 else events[0])
    # Then all load, with one ledger lock held for at most 8 statements, the same for 1, 3 or 10 objects
    assert [o["status"] for o in summary["objects"]] == ["loaded"] * files
    spans = model.lock_spans(ledger)
    assert len(spans) == 1 and spans[0] <= MAX_UNDER_LOCK_UPSERT, (spans, describe(the_function_session(model)))
    # And each key is in the target once, and the ledger's counts are what each load left in the tables
    assert harness.count() == SMALL_ROWS + files - 1
    assert_ledger_matches_tables(harness.query, harness.tables, [o["load_id"] for o in summary["objects"]])


def test_a_publish_costs_the_same_with_a_million_prior_ledger_rows_as_with_none(
    harness: Any, container: Any, make_csv: Callable[..., bytes]
) -> None:
    """Snowflake reads every micro-partition no predicate excludes by its min/max: a statement under the ledger lock
    that finds its rows by LOAD_KEY (a hash) alone reads the whole history, and holds the lock longer every day.
    The model charges each prior row such a statement reads (tools/emulated/snowflake_model.py, ``history``)."""
    from tools.emulated.snowflake_model import History, Latency

    ledger = harness.tables["ledger"]
    name = f"{harness.env['SNOWFLAKE_DATABASE']}.{harness.env['SNOWFLAKE_SCHEMA']}.{ledger}".upper()
    costs = {}
    for prior in (0, 1_000_000):
        # Given a ledger with this many prior loads (their cost modelled: micro-partition pruning)
        model = SnowflakeModel(Latency(0.01, 0.02, 1e-6), history={name: History(prior)})
        with modelled_snowflake(model) as port:
            deliver = container(SNOWFLAKE_PORT=str(port))
            deliver(harness.put(f"incoming/rt/history-warm-{prior}.csv", make_csv(SMALL_ROWS)))
            model.reset_trace()
            # When a warm container publishes one more small file
            deliver(harness.put(f"incoming/rt/history-{prior}.csv", make_csv(SMALL_ROWS)))
            steps = the_function_session(model)
        taken = next(i for i, s in enumerate(steps) if s.table and s.table.endswith(ledger.upper()))
        ended = next(i for i, s in enumerate(steps) if i >= taken and s.released)
        held = steps[taken : ended + 1]
        costs[prior] = sum(s.seconds for s in held)
        assert all(s.rows_scanned == 0 for s in held), describe(held)
    # Then what it does under the ledger lock costs within 1.2 times the same with a million prior rows
    assert costs[1_000_000] <= 1.2 * costs[0], costs


@pytest.mark.parametrize("mode", ["append", "upsert"])
def test_no_statement_names_a_column_by_four_parts(
    harness: Any,
    container: Any,
    make_csv: Callable[..., bytes],
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    """Snowflake documents ``db.schema.object`` names, not ``db.schema.table.column``: the publish qualifies columns
    by a table alias. Checked on the wire text (before fakesnow rewrites anything), values removed."""
    from snowflake.connector.cursor import SnowflakeCursor

    sent: list[str] = []
    original = SnowflakeCursor.execute

    def execute(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(command)
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(SnowflakeCursor, "execute", execute)
    env = {"LOAD_MODE": "upsert", "MERGE_KEYS": "SAMPLE_ID"} if mode == "upsert" else {}
    deliver = container(**env)
    deliver(harness.put(f"incoming/rt/parts-{mode}.csv", make_csv(SMALL_ROWS)))
    events = [harness.put(f"incoming/rt/parts-{mode}-{i}.csv", make_csv(SMALL_ROWS + i)) for i in range(3)]
    summary = deliver(sqs_batch(events))
    assert [o["status"] for o in summary["objects"]] == ["loaded"] * 3
    four_part = [name for sql in sent for name in four_part_names(sql)]
    assert four_part == [], four_part
