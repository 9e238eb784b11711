"""At-least-once delivery: the same event five times in a row, and twice at the same moment, loads once.

The concurrent case runs two handler invocations in threads, each with its own Pipeline and its own
SnowflakeWarehouse (so its own Snowflake session), as two Lambda containers would. A barrier makes both reach
the same step together: the claim, or the publish after both have staged the whole file. The two sessions talk
to the Snowflake model in front of fakesnow (tools/emulated/snowflake_model.py), which applies Snowflake's table locks:
fakesnow alone (DuckDB) takes no lock for an UPDATE that matches no row, so two publishers of one version would
both commit there, which Snowflake's ledger lock prevents. With the model, the second publisher waits for the
ledger's lock, then its ledger INSERT finds the version LOADED, it rolls back and runs the batch again, and its
claim reports 'duplicate'. A loser that raises a retriable error instead is retried, as Lambda would, and must
then see 'duplicate'. tests/integration/test_real_snowflake.py runs the same race on a real account.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import pytest

from pipeline.errors import RetriableError
from tests.hardening.conftest import Warehouse
from tests.ledger_invariant import assert_ledger_matches_tables

ROWS = 120
DELIVERIES_IN_SEQUENCE = 5


def test_the_same_event_five_times_in_sequence_loads_once(
    harness: Any, warehouse: Warehouse, make_csv: Callable[..., bytes]
) -> None:
    # Given one uploaded file and its event
    event = harness.put("incoming/dupes/five.csv", make_csv(ROWS))
    # When the event is delivered five times, each on a fresh container
    statuses = [harness.invoke(event)["objects"][0]["status"] for _ in range(DELIVERIES_IN_SEQUENCE)]
    # Then it is loaded by the first and recognised as a duplicate by the other four
    assert statuses == ["loaded"] + ["duplicate"] * (DELIVERIES_IN_SEQUENCE - 1)
    assert warehouse.count("target") == ROWS
    assert warehouse.query("SELECT COUNT(DISTINCT SOURCE_LINE), COUNT(DISTINCT LOAD_ID) FROM {target}") == [(ROWS, 1)]
    assert [r[:3] for r in warehouse.ledger()] == [("LOADED", ROWS, 0)]
    assert_ledger_matches_tables(warehouse.query, harness.tables)


def _two_containers(
    harness: Any, monkeypatch: pytest.MonkeyPatch, port: int | None = None, login_timeout: str = "2"
) -> list[Any]:
    """Two independent pipelines (own S3 client, own Snowflake connection), sharing only the read-only model;
    on the Snowflake model's ``port`` when given."""
    import boto3

    from adapters.s3 import S3Source
    from adapters.secrets import SecretsProvider
    from adapters.snowflake import SnowflakeWarehouse
    from pipeline.process import Pipeline
    from pipeline.settings import Settings
    from scoring import Scorer

    # A short login timeout on loopback; a real account (tests/integration/test_real_snowflake.py) passes its own.
    ports = {"SNOWFLAKE_PORT": str(port)} if port is not None else {}
    for name, value in (harness.env | {"SNOWFLAKE_LOGIN_TIMEOUT": login_timeout} | ports).items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    scorer = Scorer.load(settings.model_dir, threshold=settings.decision_threshold)
    pipelines = []
    for _ in range(2):
        secrets = SecretsProvider(settings.secret_name)
        pipelines.append(
            Pipeline(
                settings=settings,
                scorer=scorer,
                source=S3Source(boto3.client("s3", endpoint_url=harness.env["AWS_ENDPOINT_URL"])),
                warehouse=SnowflakeWarehouse(settings, secrets.credentials),
            )
        )
    return pipelines


def _race(pipelines: list[Any], event: dict[str, Any]) -> list[Any]:
    """Deliver ``event`` to every pipeline at once; each outcome is a status or the exception raised."""
    from pipeline.batch import handle

    outcomes: list[Any] = [None] * len(pipelines)
    start = threading.Barrier(len(pipelines))

    def run(i: int) -> None:
        start.wait()
        try:
            outcomes[i] = handle(event, pipelines[i])["objects"][0]["status"]
        except Exception as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(pipelines))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a delivery hung"
    return outcomes


def _meet_at(monkeypatch: pytest.MonkeyPatch, method: str, parties: int) -> None:
    """Make every delivery wait at SnowflakeBatch.<method> until all have reached it (then race)."""
    from adapters import snowflake as adapter

    barrier = threading.Barrier(parties, timeout=60)
    original = getattr(adapter.SnowflakeBatch, method)

    def wait_then_run(self: Any, *args: Any, **kwargs: Any) -> Any:
        with contextlib.suppress(threading.BrokenBarrierError):  # the other one stopped early: go on alone
            barrier.wait()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(adapter.SnowflakeBatch, method, wait_then_run)


@pytest.mark.parametrize("meet_at", [None, "publish"], ids=["free-race", "same-publish"])
def test_the_same_event_twice_at_once_loads_once(
    harness: Any,
    warehouse: Warehouse,
    monkeypatch: pytest.MonkeyPatch,
    make_csv: Callable[..., bytes],
    meet_at: str | None,
    modelled_port: int,
) -> None:
    # Given one file, and two containers that receive its event at the same moment (Snowflake's locks modelled)
    event = harness.put(f"incoming/dupes/race-{meet_at}.csv", make_csv(ROWS))
    pipelines = _two_containers(harness, monkeypatch, modelled_port)
    if meet_at:
        _meet_at(monkeypatch, meet_at, parties=2)

    # When both deliveries run concurrently
    outcomes = _race(pipelines, event)
    monkeypatch.undo()
    # Then each either loaded, found a duplicate, or lost the race with a retriable conflict
    for outcome in outcomes:
        assert outcome in {"loaded", "duplicate"} or isinstance(outcome, RetriableError), repr(outcome)
    # and when Lambda retries the losers, they find the file loaded
    retries = [pipelines[i] for i, outcome in enumerate(outcomes) if isinstance(outcome, RetriableError)]
    from pipeline.batch import handle

    for pipeline in retries:
        outcomes.append(handle(event, pipeline)["objects"][0]["status"])
    # Then exactly one delivery loaded the file, and its rows are there once
    assert outcomes.count("loaded") == 1, outcomes
    assert warehouse.count("target") == ROWS
    assert warehouse.query("SELECT COUNT(DISTINCT SOURCE_LINE), COUNT(DISTINCT LOAD_ID) FROM {target}") == [(ROWS, 1)]
    [(winner,)] = warehouse.query("SELECT DISTINCT LOAD_ID FROM {target}")
    # and the ledger holds exactly one row for the load
    # (a delivery that lost the race leaves its claim's STARTED row: an attempt that published nothing)
    assert warehouse.query(
        "SELECT STATUS, LOAD_ID, ROWS_LOADED, ROWS_REJECTED FROM {ledger} WHERE STATUS <> 'STARTED'"
    ) == [("LOADED", winner, ROWS, 0)]
    # and a late third delivery is a duplicate too
    assert handle(event, pipelines[0])["objects"][0]["status"] == "duplicate"
    assert_ledger_matches_tables(warehouse.query, harness.tables)
    for pipeline in pipelines:
        pipeline.warehouse.close()


def test_a_started_row_an_earlier_version_left_neither_blocks_nor_doubles_the_load(
    harness: Any, warehouse: Warehouse, make_csv: Callable[..., bytes]
) -> None:
    from pipeline.ports import load_key

    # Given a STARTED ledger row for an object version, as the function's earlier versions wrote at the claim (a
    # load that crashed before its COMMIT left it behind; the claim no longer writes the ledger)
    harness.invoke(harness.put("incoming/dupes/creates-the-tables.csv", make_csv(1)))
    event = harness.put("incoming/dupes/claimed-before.csv", make_csv(ROWS))
    obj = event["Records"][0]["s3"]["object"]
    key = load_key(harness.bucket, "incoming/dupes/claimed-before.csv", obj["eTag"])
    warehouse.query(
        "INSERT INTO {ledger} (LOAD_KEY, SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, STATUS, LOAD_ID) "
        f"VALUES ('{key}', '{harness.bucket}', 'incoming/dupes/claimed-before.csv', '{obj['eTag']}', 'STARTED', "
        "'00000000-0000-0000-0000-00000000000a')"
    )
    # When the event is delivered, and then again
    statuses = [harness.invoke(event)["objects"][0]["status"] for _ in range(2)]
    # Then the first delivery loads the file and the second finds it loaded; the old row stays as history
    assert statuses == ["loaded", "duplicate"]
    assert sorted(warehouse.ledger("incoming/dupes/claimed-before.csv")) == [
        ("LOADED", ROWS, 0, None, None),
        ("STARTED", None, None, None, None),
    ]
    assert warehouse.count("target", "SOURCE_KEY = 'incoming/dupes/claimed-before.csv'") == ROWS
    assert_ledger_matches_tables(warehouse.query, harness.tables)
