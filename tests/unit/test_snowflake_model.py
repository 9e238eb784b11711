"""tools/snowflake_model.py against Snowflake's lock rules: no network, no fakesnow, asyncio only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tools.snowflake_model import (
    NO_LATENCY,
    Latency,
    LockError,
    SnowflakeModel,
    Statement,
    classify_statement,
)

DB, SCHEMA = "TUMOURS", "SCORING"
TICK = 0.02  # long enough for every ready task to run


def run(coro: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro())


class Client:
    """One session of the model; ``done`` lists the statements that have executed, in order."""

    def __init__(self, model: SnowflakeModel, name: str, done: list[str], **params: Any) -> None:
        self.model, self.name, self.done = model, name, done
        model.login(name, params)

    async def sql(self, text: str) -> None:
        async def execute() -> None:
            self.done.append(f"{self.name}: {text}")

        await self.model.run(self.name, text, DB, SCHEMA, execute)

    def start(self, text: str) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(self.sql(text))


@pytest.mark.parametrize(
    "write",
    [
        "UPDATE LEDGER SET LOCK_TOKEN = 'x' WHERE LOAD_KEY = 'nothing matches'",
        "DELETE FROM LEDGER WHERE LOAD_KEY = 'k'",
        "MERGE INTO LEDGER AS l USING (SELECT 'k' AS LOAD_KEY) AS s ON l.LOAD_KEY = s.LOAD_KEY "
        "WHEN NOT MATCHED THEN INSERT (LOAD_KEY) VALUES (s.LOAD_KEY)",
    ],
    ids=["update-matching-no-row", "delete", "merge"],
)
@pytest.mark.parametrize("end", ["COMMIT", "ROLLBACK"])
def test_a_write_locks_its_table_until_the_transaction_ends(write: str, end: str) -> None:
    async def scenario() -> None:
        # Given session A inside a transaction that has written the ledger
        model, done = SnowflakeModel(NO_LATENCY), []
        a, b = Client(model, "A", done), Client(model, "B", done)
        await a.sql("BEGIN")
        await a.sql(write)
        # When session B writes the same table, in autocommit
        waiting = b.start("UPDATE TUMOURS.SCORING.LEDGER SET STATUS = 'LOADED'")
        await asyncio.sleep(TICK)
        # Then B waits, even after A runs further statements of its transaction
        await a.sql("SELECT 1")
        await asyncio.sleep(TICK)
        assert not waiting.done()
        # And B runs as soon as A's transaction ends
        await a.sql(end)
        await asyncio.wait_for(waiting, 1)
        assert done[-1] == "B: UPDATE TUMOURS.SCORING.LEDGER SET STATUS = 'LOADED'"
        assert model.locks.holder(f"{DB}.{SCHEMA}.LEDGER") is None  # B was in autocommit

    run(scenario)


@pytest.mark.parametrize(
    "other",
    [
        "INSERT INTO LEDGER (LOAD_KEY) VALUES ('k2')",
        "COPY INTO LEDGER FROM @stage",
        "SELECT STATUS FROM LEDGER",
        "UPDATE TARGET SET X = 1",  # another table
    ],
    ids=["insert", "copy", "select", "other-table-update"],
)
def test_inserts_copies_reads_and_other_tables_do_not_wait(other: str) -> None:
    async def scenario() -> None:
        # Given A holding the ledger's lock in an open transaction
        model, done = SnowflakeModel(NO_LATENCY), []
        a, b = Client(model, "A", done), Client(model, "B", done)
        await a.sql("BEGIN")
        await a.sql("UPDATE LEDGER SET LOCK_TOKEN = 't'")
        # When B runs a statement that takes no ledger lock
        # Then it completes at once
        await asyncio.wait_for(b.sql(other), TICK * 5)

    run(scenario)


def test_an_autocommit_write_holds_the_lock_only_for_its_statement() -> None:
    async def scenario() -> None:
        # Given A's autocommit UPDATE has run
        model, done = SnowflakeModel(NO_LATENCY), []
        a, b = Client(model, "A", done), Client(model, "B", done)
        await a.sql("UPDATE LEDGER SET LOCK_TOKEN = 't'")
        # Then nobody holds the lock and B's write does not wait
        assert model.locks.holder(f"{DB}.{SCHEMA}.LEDGER") is None
        await asyncio.wait_for(b.sql("DELETE FROM LEDGER"), TICK * 5)

    run(scenario)


def test_waiters_are_served_first_in_first_out() -> None:
    async def scenario() -> None:
        # Given A holding the ledger's lock and five sessions queueing for it, one after the other
        model, done = SnowflakeModel(NO_LATENCY), []
        a = Client(model, "A", done)
        await a.sql("BEGIN")
        await a.sql("UPDATE LEDGER SET S = 1")
        waiters = []
        for i in range(5):
            client = Client(model, f"W{i}", done)
            waiters.append(client.start("UPDATE LEDGER SET S = 2"))
            await asyncio.sleep(TICK / 4)
        assert model.locks.waiting(f"{DB}.{SCHEMA}.LEDGER") == 5
        # When A commits
        await a.sql("COMMIT")
        await asyncio.wait_for(asyncio.gather(*waiters), 1)
        # Then they ran in the order they arrived
        assert [line.split(":")[0] for line in done[-5:]] == [f"W{i}" for i in range(5)]

    run(scenario)


def test_the_21st_waiter_fails_at_once_and_the_20_others_still_run() -> None:
    async def scenario() -> None:
        # Given A holding the ledger's lock and 20 statements waiting for it
        model, done = SnowflakeModel(NO_LATENCY), []
        a = Client(model, "A", done)
        await a.sql("BEGIN")
        await a.sql("UPDATE LEDGER SET S = 1")
        waiters = [Client(model, f"W{i}", done).start("UPDATE LEDGER SET S = 2") for i in range(20)]
        await asyncio.sleep(TICK)
        assert model.locks.waiting(f"{DB}.{SCHEMA}.LEDGER") == 20
        # When a 21st arrives
        started = time.monotonic()
        with pytest.raises(LockError, match="exceeds the 20 statements limit") as refused:
            await Client(model, "W20", done).sql("DELETE FROM LEDGER")
        # Then it fails at once, naming the table, and is counted
        assert time.monotonic() - started < TICK
        assert f"'{DB}.{SCHEMA}.LEDGER'" in refused.value.message
        assert model.counts["errors_000625"] == 1
        # And the 20 waiters all run once A commits
        await a.sql("COMMIT")
        await asyncio.wait_for(asyncio.gather(*waiters), 1)
        assert sum(line.startswith("W") for line in done) == 20

    run(scenario)


def test_lock_timeout_ends_a_wait_and_the_queue_moves_on() -> None:
    async def scenario() -> None:
        # Given A holding the lock, B waiting with LOCK_TIMEOUT 1 s (set at login), C waiting after B with none
        model, done = SnowflakeModel(NO_LATENCY), []
        a = Client(model, "A", done)
        b = Client(model, "B", done, LOCK_TIMEOUT=1)
        c = Client(model, "C", done)
        await a.sql("BEGIN")
        await a.sql("UPDATE LEDGER SET S = 1")
        b_task = b.start("UPDATE LEDGER SET S = 2")
        await asyncio.sleep(TICK)
        c_task = c.start("UPDATE LEDGER SET S = 3")
        # When B has waited its LOCK_TIMEOUT
        started = time.monotonic()
        with pytest.raises(LockError, match=r"LOCK_TIMEOUT \(1 seconds\)"):
            await b_task
        # Then it failed after about that long, left the queue, and C gets the lock at A's commit
        assert 0.9 <= time.monotonic() - started < 1.5
        assert model.locks.waiting(f"{DB}.{SCHEMA}.LEDGER") == 1
        await a.sql("COMMIT")
        await asyncio.wait_for(c_task, 1)
        assert done[-1] == "C: UPDATE LEDGER SET S = 3"

    run(scenario)


def test_alter_session_sets_lock_timeout() -> None:
    async def scenario() -> None:
        # Given B whose session sets LOCK_TIMEOUT = 0
        model, done = SnowflakeModel(NO_LATENCY), []
        a, b = Client(model, "A", done), Client(model, "B", done)
        await b.sql("ALTER SESSION SET LOCK_TIMEOUT = 0")
        await a.sql("BEGIN")
        await a.sql("UPDATE LEDGER SET S = 1")
        # When B writes the locked table
        # Then it fails without waiting
        with pytest.raises(LockError, match="LOCK_TIMEOUT"):
            await asyncio.wait_for(b.sql("UPDATE LEDGER SET S = 2"), 0.5)

    run(scenario)


@pytest.mark.parametrize("ender", ["ddl", "logout"])
def test_ddl_and_the_end_of_the_session_end_the_transaction(ender: str) -> None:
    async def scenario() -> None:
        # Given A holding the lock in an open transaction and B waiting
        model, done = SnowflakeModel(NO_LATENCY), []
        a, b = Client(model, "A", done), Client(model, "B", done)
        await a.sql("BEGIN")
        await a.sql("UPDATE LEDGER SET S = 1")
        waiting = b.start("UPDATE LEDGER SET S = 2")
        await asyncio.sleep(TICK)
        # When A runs a DDL statement (an implicit commit) or its session ends
        if ender == "ddl":
            await a.sql("CREATE TEMPORARY TABLE STG_X (A INT)")
        else:
            model.logout("A")
        # Then B gets the lock
        await asyncio.wait_for(waiting, 1)

    run(scenario)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("PUT file:///tmp/x.parquet @stage", 0.4),
        ("COPY INTO T FROM (SELECT $1 FROM '@stage')", 0.4),
        ("SELECT 1", 0.1),
        ("UPDATE LEDGER SET S = 1", 0.1),
    ],
)
def test_latency_per_statement_kind(sql: str, expected: float) -> None:
    async def scenario() -> float:
        # Given the default latency model (100 ms a statement, 400 ms a PUT or COPY)
        model = SnowflakeModel(Latency())
        client = Client(model, "A", [])
        # When one statement runs
        started = time.monotonic()
        await client.sql(sql)
        return time.monotonic() - started

    # Then it took that long
    assert expected <= run(scenario) < expected + 0.08


def test_a_waiter_pays_the_holders_latency() -> None:
    async def scenario() -> float:
        # Given A's transaction of three statements after its write (100 ms each) and B waiting on the lock
        model = SnowflakeModel(Latency(statement=0.05, transfer=0.2))
        a, b = Client(model, "A", []), Client(model, "B", [])
        await a.sql("BEGIN")
        await a.sql("UPDATE LEDGER SET S = 1")
        started = time.monotonic()
        waiting = b.start("UPDATE LEDGER SET S = 2")
        for sql in ("SELECT 1", "INSERT INTO T SELECT 1", "COMMIT"):
            await a.sql(sql)
        await waiting
        return time.monotonic() - started

    # Then B's statement finished after A's three and its own: about 4 statements' latency
    assert 0.2 <= run(scenario) < 0.3


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("UPDATE TUMOURS.SCORING.LOADS SET A = 1", Statement("WRITE", "TUMOURS.SCORING.LOADS")),
        ("update loads set a = 1", Statement("WRITE", "TUMOURS.SCORING.LOADS")),
        ('DELETE FROM other."MixedCase" WHERE 1 = 1', Statement("WRITE", "TUMOURS.OTHER.MixedCase")),
        (
            "MERGE INTO LOADS AS l USING (SELECT 1 AS K) AS s ON l.K = s.K "
            "WHEN NOT MATCHED THEN INSERT (K) VALUES (s.K)",
            Statement("WRITE", "TUMOURS.SCORING.LOADS"),
        ),
        ("BEGIN", Statement("BEGIN")),
        ("commit", Statement("COMMIT")),
        ("CREATE TEMPORARY STAGE s", Statement("DDL")),
        ("ALTER SESSION SET LOCK_TIMEOUT = 5", Statement("OTHER")),
        ("ALTER TABLE T ADD COLUMN C INT", Statement("DDL")),
        ("INSERT INTO T SELECT 1", Statement("OTHER")),
    ],
)
def test_statements_are_classified_with_names_resolved_in_the_session_schema(sql: str, expected: Statement) -> None:
    assert classify_statement(sql, DB, SCHEMA) == expected
