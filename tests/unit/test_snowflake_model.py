"""tools/emulated/snowflake_model.py against Snowflake's lock rules: no network, no fakesnow, asyncio only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tools.emulated.snowflake_model import (
    NO_LATENCY,
    History,
    Latency,
    LockError,
    SnowflakeModel,
    Statement,
    StatementTimeoutError,
    Step,
    classify_statement,
    lock_spans,
    unpruned_scans,
)

DB, SCHEMA = "TUMOURS", "SCORING"
LEDGER = f"{DB}.{SCHEMA}.LEDGER"
TICK = 0.02  # long enough for every ready task to run


def run(coro: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro())


class Client:
    """One session of the model; ``done`` lists the statements that have executed, in order, and the engine
    commits the model asked for before an implicitly committing statement ("A: <engine commit>")."""

    def __init__(self, model: SnowflakeModel, name: str, done: list[str], **params: Any) -> None:
        self.model, self.name, self.done = model, name, done
        model.login(name, params)

    async def sql(self, text: str) -> None:
        async def execute() -> None:
            self.done.append(f"{self.name}: {text}")

        async def commit() -> None:
            self.done.append(f"{self.name}: <engine commit>")

        await self.model.run(self.name, text, DB, SCHEMA, execute, commit=commit)

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


@pytest.mark.parametrize("end", ["COMMIT", "ROLLBACK"])
def test_with_insert_waits_an_insert_waits_behind_another_sessions_write_and_takes_no_lock(end: str) -> None:
    async def scenario() -> None:
        # Given the strict model (Snowflake: an INSERT only "sometimes" runs beside an UPDATE of its table), and A
        # holding the ledger's lock in an open transaction
        model, done = SnowflakeModel(NO_LATENCY, insert_waits=True), []
        a, b, c = Client(model, "A", done), Client(model, "B", done), Client(model, "C", done)
        await a.sql("BEGIN")
        await a.sql("UPDATE LEDGER SET LOCK_TOKEN = 't'")
        # When B inserts into the ledger (and into another table)
        waiting = b.start("INSERT INTO LEDGER (LOAD_KEY) VALUES ('k2')")
        await asyncio.wait_for(b.sql("INSERT INTO TARGET (X) VALUES (1)"), TICK * 5)
        await asyncio.sleep(TICK)
        # Then the ledger INSERT waits, queued like a writer, until A's transaction ends
        assert not waiting.done() and model.locks.waiting(LEDGER) == 1
        await a.sql(end)
        await asyncio.wait_for(waiting, 1)
        # And it took no lock: C's write does not wait for B
        assert model.locks.holder(LEDGER) is None
        await asyncio.wait_for(c.sql("UPDATE LEDGER SET LOCK_TOKEN = 'u'"), TICK * 5)

    run(scenario)


@pytest.mark.parametrize(
    ("login", "request_timeout", "error", "errno"),
    [
        ({"LOCK_TIMEOUT": 1, "STATEMENT_TIMEOUT_IN_SECONDS": 30}, None, LockError, 625),
        ({"LOCK_TIMEOUT": 30, "STATEMENT_TIMEOUT_IN_SECONDS": 1}, None, StatementTimeoutError, 630),
        ({"LOCK_TIMEOUT": 30}, 1.0, StatementTimeoutError, 630),  # the query request's own parameter
        ({"LOCK_TIMEOUT": 1}, 30.0, LockError, 625),
    ],
    ids=["lock-timeout-first", "session-statement-timeout-first", "request-statement-timeout", "lock-before-request"],
)
def test_a_lock_wait_ends_with_whichever_server_limit_comes_first(
    login: dict[str, Any], request_timeout: float | None, error: type[LockError], errno: int
) -> None:
    async def scenario() -> LockError:
        # Given A holding the lock, and B's session with these limits
        model, done = SnowflakeModel(NO_LATENCY), []
        a = Client(model, "A", done)
        model.login("B", login)
        await a.sql("BEGIN")
        await a.sql("UPDATE LEDGER SET S = 1")

        async def nothing() -> None:
            return None

        # When B's write waits for the lock
        with pytest.raises(LockError) as raised:
            await model.run("B", "UPDATE LEDGER SET S = 2", DB, SCHEMA, nothing, statement_timeout=request_timeout)
        return raised.value

    # Then the shorter limit ends it, as its own error (000625 lock, 000630 statement timeout)
    refused = run(scenario)
    assert type(refused) is error and refused.errno == errno


def test_a_statement_slower_than_its_statement_timeout_is_cancelled_and_opens_nothing() -> None:
    async def scenario() -> None:
        # Given a session with AUTOCOMMIT off, a 0.1 s statement timeout and 0.4 s COPYs
        model, done = SnowflakeModel(Latency(0.0, 0.4)), []
        model.login("A", {"AUTOCOMMIT": False, "STATEMENT_TIMEOUT_IN_SECONDS": 0.1})

        async def execute() -> None:
            done.append("ran")

        # When a COPY runs
        with pytest.raises(StatementTimeoutError):
            await model.run("A", "COPY INTO T FROM @s", DB, SCHEMA, execute)
        # Then the server cancelled it: it never ran, and no transaction is open
        assert done == [] and not model.sessions["A"].in_transaction

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
        ("INSERT INTO T SELECT 1", Statement("INSERT", "TUMOURS.SCORING.T")),
        ("INSERT INTO x.T (A, B) SELECT 1, 2", Statement("INSERT", "TUMOURS.X.T")),
        ("COPY INTO T FROM @stage", Statement("COPY")),
        ("SELECT * FROM LOADS", Statement("OTHER")),
        ("ALTER SESSION SET AUTOCOMMIT = FALSE", Statement("AUTOCOMMIT", autocommit=False)),
        ("ALTER SESSION SET autocommit=True", Statement("AUTOCOMMIT", autocommit=True)),  # the connector's spelling
    ],
)
def test_statements_are_classified_with_names_resolved_in_the_session_schema(sql: str, expected: Statement) -> None:
    assert classify_statement(sql, DB, SCHEMA) == expected


# --- AUTOCOMMIT (https://docs.snowflake.com/en/sql-reference/transactions#autocommit) ---------------------------
@pytest.mark.parametrize(
    "first_dml",
    [
        "INSERT INTO LOADS (LOAD_KEY) VALUES ('k')",
        "COPY INTO STG FROM @stage",
        "UPDATE LEDGER SET S = 1",
        "DELETE FROM LEDGER WHERE LOAD_KEY = 'k'",
        "MERGE INTO LEDGER AS l USING (SELECT 'k' AS K) AS s ON l.LOAD_KEY = s.K WHEN MATCHED THEN DELETE",
    ],
    ids=["insert", "copy", "update", "delete", "merge"],
)
def test_with_autocommit_off_the_first_dml_opens_a_transaction_that_holds_later_locks(first_dml: str) -> None:
    async def scenario() -> None:
        # Given A logged in with AUTOCOMMIT off (a login session parameter, as the connector sends it)
        model, done = SnowflakeModel(NO_LATENCY), []
        a, b = Client(model, "A", done, AUTOCOMMIT=False), Client(model, "B", done)
        # When A runs a DML statement, then an UPDATE of the ledger, with no BEGIN
        await a.sql(first_dml)
        assert model.trace("A")[-1].in_transaction
        await a.sql("UPDATE LEDGER SET LOCK_TOKEN = 't'")
        # Then the ledger's lock outlives the UPDATE: B's write waits until A commits
        waiting = b.start("UPDATE LEDGER SET S = 2")
        await asyncio.sleep(TICK)
        assert not waiting.done()
        assert model.locks.holder(LEDGER) == "A"
        await a.sql("COMMIT")
        await asyncio.wait_for(waiting, 1)
        # And the COMMIT ended A's transaction: its next UPDATE opens a new one
        await a.sql("UPDATE LEDGER SET S = 3")
        assert model.locks.holder(LEDGER) == "A"
        assert model.trace("A")[-1].in_transaction

    run(scenario)


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT STATUS FROM LEDGER",
        "PUT file:///tmp/x.parquet @stage",
        "SHOW TABLES",
        "ALTER SESSION SET LOCK_TIMEOUT = 5",
    ],
    ids=["select", "put", "show", "alter-session"],
)
def test_with_autocommit_off_queries_and_puts_open_no_transaction(statement: str) -> None:
    async def scenario() -> None:
        # Given A with AUTOCOMMIT off and no transaction open
        model = SnowflakeModel(NO_LATENCY)
        a = Client(model, "A", [], AUTOCOMMIT=False)
        # When A runs a statement that is not DML
        await a.sql(statement)
        # Then no transaction is open
        assert not model.trace("A")[-1].in_transaction
        assert not model.sessions["A"].in_transaction

    run(scenario)


@pytest.mark.parametrize("autocommit", [False, True], ids=["autocommit-off", "explicit-begin"])
def test_ddl_commits_first_then_runs_on_its_own(autocommit: bool) -> None:
    async def scenario() -> None:
        # Given A holding the ledger's lock in a transaction (implicit with AUTOCOMMIT off, else explicit), B waiting
        model, done = SnowflakeModel(NO_LATENCY), []
        a, b = Client(model, "A", done, AUTOCOMMIT=autocommit), Client(model, "B", done)
        if autocommit:
            await a.sql("BEGIN")
        await a.sql("UPDATE LEDGER SET S = 1")
        waiting = b.start("UPDATE LEDGER SET S = 2")
        await asyncio.sleep(TICK)
        # When A runs a DDL statement
        await a.sql("CREATE TEMPORARY TABLE STG_X (A INT)")
        await asyncio.wait_for(waiting, 1)
        # Then the engine committed A's transaction before the DDL ran and before B's UPDATE could run
        assert done[-3:] == [
            "A: <engine commit>",
            "A: CREATE TEMPORARY TABLE STG_X (A INT)",
            "B: UPDATE LEDGER SET S = 2",
        ]
        # And the DDL released the lock and left no transaction open
        ddl = model.trace("A")[-1]
        assert (ddl.kind, ddl.released, ddl.in_transaction, ddl.held_after) == ("DDL", (LEDGER,), False, False)

    run(scenario)


def test_ddl_outside_a_transaction_asks_the_engine_for_no_commit() -> None:
    async def scenario() -> list[str]:
        # Given A with AUTOCOMMIT off and no transaction open
        model, done = SnowflakeModel(NO_LATENCY), []
        a = Client(model, "A", done, AUTOCOMMIT=False)
        # When A runs DDL
        await a.sql("CREATE TEMPORARY STAGE S")
        return done

    # Then only the DDL ran
    assert run(scenario) == ["A: CREATE TEMPORARY STAGE S"]


@pytest.mark.parametrize("value", ["TRUE", "FALSE"])
def test_alter_session_set_autocommit_commits_the_open_transaction_and_sets_the_mode(value: str) -> None:
    async def scenario() -> None:
        # Given A with AUTOCOMMIT off holding the ledger's lock, and B waiting
        model, done = SnowflakeModel(NO_LATENCY), []
        a, b = Client(model, "A", done, AUTOCOMMIT=False), Client(model, "B", done)
        await a.sql("UPDATE LEDGER SET S = 1")
        waiting = b.start("UPDATE LEDGER SET S = 2")
        await asyncio.sleep(TICK)
        # When A sets AUTOCOMMIT, to either value (Snowflake commits even when the value does not change)
        await a.sql(f"ALTER SESSION SET AUTOCOMMIT = {value}")
        # Then the engine committed first and B gets the lock
        await asyncio.wait_for(waiting, 1)
        assert done[-3:] == [
            "A: <engine commit>",
            f"A: ALTER SESSION SET AUTOCOMMIT = {value}",
            "B: UPDATE LEDGER SET S = 2",
        ]
        # And A's next UPDATE holds the lock after it only with AUTOCOMMIT off
        await a.sql("UPDATE LEDGER SET S = 3")
        assert (model.locks.holder(LEDGER) == "A") is (value == "FALSE")

    run(scenario)


def test_autocommit_is_on_by_default_and_can_be_turned_off_with_alter_session() -> None:
    async def scenario() -> None:
        # Given A logged in without AUTOCOMMIT: its UPDATE holds the lock only for the statement
        model = SnowflakeModel(NO_LATENCY)
        a = Client(model, "A", [])
        await a.sql("UPDATE LEDGER SET S = 1")
        assert model.locks.holder(LEDGER) is None
        # When A turns AUTOCOMMIT off as the connector's autocommit(False) does
        await a.sql("ALTER SESSION SET autocommit=False")
        await a.sql("UPDATE LEDGER SET S = 2")
        # Then the UPDATE's lock is held until ROLLBACK
        assert model.locks.holder(LEDGER) == "A"
        await a.sql("ROLLBACK")
        assert model.locks.holder(LEDGER) is None

    run(scenario)


def test_commit_passes_the_lock_on_only_once_the_engine_has_committed() -> None:
    async def scenario() -> None:
        # Given A with AUTOCOMMIT off holding the ledger's lock, B waiting, and an engine whose COMMIT takes a while
        model, done = SnowflakeModel(NO_LATENCY), []
        a, b = Client(model, "A", done, AUTOCOMMIT=False), Client(model, "B", done)
        await a.sql("UPDATE LEDGER SET S = 1")
        waiting = b.start("UPDATE LEDGER SET S = 2")
        engine_committed = asyncio.Event()

        async def slow_commit() -> None:
            await engine_committed.wait()

        # When A's COMMIT is still running in the engine
        committing = asyncio.get_running_loop().create_task(model.run("A", "COMMIT", DB, SCHEMA, slow_commit))
        await asyncio.sleep(TICK)
        # Then B still waits
        assert not waiting.done()
        assert model.locks.holder(LEDGER) == "A"
        # And runs once the engine has committed
        engine_committed.set()
        await asyncio.wait_for(asyncio.gather(committing, waiting), 1)

    run(scenario)


def test_a_refused_first_dml_opens_no_transaction() -> None:
    async def scenario() -> None:
        # Given A holding the ledger's lock and B with AUTOCOMMIT off and LOCK_TIMEOUT 0
        model = SnowflakeModel(NO_LATENCY)
        a, b = Client(model, "A", []), Client(model, "B", [], AUTOCOMMIT=False, LOCK_TIMEOUT=0)
        await a.sql("BEGIN")
        await a.sql("UPDATE LEDGER SET S = 1")
        # When B's first DML is refused (the engine never sees it, so it opens nothing there either)
        with pytest.raises(LockError):
            await b.sql("UPDATE LEDGER SET S = 2")
        # Then B has no transaction open, and its trace says it was refused
        assert not model.sessions["B"].in_transaction
        step = model.trace("B")[-1]
        assert (step.table, step.refused, step.in_transaction, step.held_after) == (LEDGER, True, False, False)

    run(scenario)


# --- the trace ----------------------------------------------------------------------------------------------
PUBLISH = [  # one warm small file's statements, as an AUTOCOMMIT-off function might send them
    "SELECT STATUS FROM LEDGER WHERE LOAD_KEY = 'secret-key'",
    "CREATE TEMPORARY STAGE STG_S",
    "PUT file:///tmp/secret-file.parquet @STG_S",
    "COPY INTO STG_ROWS FROM (SELECT $1 FROM '@STG_S')",
    "UPDATE LEDGER SET LOCK_TOKEN = 'secret-token' WHERE LOAD_KEY = 'secret-key'",
    "SELECT STATUS FROM LEDGER WHERE LOAD_KEY = 'secret-key'",
    "INSERT INTO ROWS SELECT * FROM STG_ROWS",
    "UPDATE LEDGER SET STATUS = 'LOADED' WHERE LOAD_KEY = 'secret-key'",
    "COMMIT",
]


def test_the_trace_records_each_statement_kind_table_and_lock_holding() -> None:
    async def scenario() -> list[Step]:
        # Given a session with AUTOCOMMIT off
        model = SnowflakeModel(NO_LATENCY)
        a = Client(model, "A", [], AUTOCOMMIT=False)
        # When it runs a publish's statements
        for sql in PUBLISH:
            await a.sql(sql)
        return model.trace("A")

    steps = run(scenario)
    # Then the trace has one step per statement (the PUT is one), with its kind and the lock it touched
    assert [(s.verb, s.table, s.held_before, s.held_after, s.in_transaction) for s in steps] == [
        ("SELECT", None, False, False, False),
        ("CREATE", None, False, False, False),
        ("PUT", None, False, False, False),
        ("COPY", None, False, False, True),  # opens the transaction: COPY is DML
        ("UPDATE", LEDGER, False, True, True),
        ("SELECT", None, True, True, True),
        ("INSERT", None, True, True, True),
        ("UPDATE", LEDGER, True, True, True),
        ("COMMIT", None, True, False, False),
    ]
    assert [s.released for s in steps] == [()] * 8 + [(LEDGER,)]
    # And five statements ran under the ledger's lock: from the UPDATE that took it to the COMMIT, both counted
    assert lock_spans(steps, LEDGER) == [5]
    assert lock_spans(steps, "LEDGER") == [5]  # a bare name matches the last part
    assert lock_spans(steps, "ROWS") == []
    # And no SQL text or value is kept
    assert "secret" not in repr(steps)


def test_lock_spans_count_each_holding_across_sessions_and_reset_trace_forgets() -> None:
    async def scenario() -> None:
        # Given A updating the ledger twice in autocommit, and B holding it for three statements, waiting first
        model = SnowflakeModel(NO_LATENCY)
        a, b = Client(model, "A", []), Client(model, "B", [], AUTOCOMMIT=False)
        await a.sql("UPDATE LEDGER SET S = 1")
        await a.sql("BEGIN")
        await a.sql("UPDATE LEDGER SET S = 2")
        waiting = b.start("UPDATE LEDGER SET S = 3")
        await asyncio.sleep(TICK)
        await a.sql("COMMIT")
        await asyncio.wait_for(waiting, 1)
        await b.sql("SELECT 1")
        await b.sql("ROLLBACK")
        await b.sql("UPDATE LEDGER SET S = 4")  # still open at the end: not counted
        # When the spans are counted
        # Then each holding is one span: 1 for the autocommit UPDATE, 2 for BEGIN'd A (UPDATE + COMMIT), 3 for B
        assert lock_spans(model.trace("A"), LEDGER) == [1, 2]
        assert lock_spans(model.trace("B"), LEDGER) == [3]
        assert sorted(model.lock_spans(LEDGER)) == [1, 2, 3]
        # And B's first step records its wait
        assert model.trace("B")[0].waited >= TICK / 2
        assert model.trace("A")[0].waited == 0.0
        # And reset_trace() starts afresh
        model.reset_trace()
        assert model.trace("A") == [] and model.traces() == {}

    run(scenario)


@pytest.mark.parametrize(
    ("sql", "unpruned"),
    [
        ("UPDATE LEDGER SET LOCK_TOKEN = 't' WHERE LOAD_KEY IN ('a', 'b')", 1),
        ("UPDATE LEDGER SET LOCK_TOKEN = 't' WHERE LOAD_KEY IN ('a') AND STARTED_AT >= CURRENT_TIMESTAMP()", 0),
        (
            "UPDATE LEDGER AS l SET STATUS = 'LOADED' WHERE l.STARTED_AT > CURRENT_TIMESTAMP() AND l.LOAD_KEY NOT IN "
            "(SELECT f.LOAD_KEY FROM LEDGER AS f WHERE f.STATUS = 'LOADED')",
            1,  # the subquery reads the whole history
        ),
        (
            "UPDATE LEDGER AS l SET STATUS = 'LOADED' WHERE l.STARTED_AT > CURRENT_TIMESTAMP() AND l.LOAD_KEY NOT IN "
            "(SELECT f.LOAD_KEY FROM LEDGER AS f WHERE f.STARTED_AT >= CURRENT_TIMESTAMP())",
            0,
        ),
        ("UPDATE LEDGER AS l SET STATUS = 'X' FROM T AS x WHERE x.STARTED_AT >= CURRENT_TIMESTAMP()", 1),  # not l's
        ("SELECT COUNT(*) FROM OTHER WHERE A = 1", 0),
    ],
    ids=["by-hash", "by-insertion-time", "subquery-unpruned", "both-pruned", "another-tables-column", "other-table"],
)
def test_a_reference_to_a_table_reads_its_history_unless_its_own_where_prunes_by_insertion_time(
    sql: str, unpruned: int
) -> None:
    assert unpruned_scans(sql, LEDGER, "STARTED_AT", DB, SCHEMA) == unpruned


def test_the_history_a_statement_reads_unpruned_is_charged_and_traced() -> None:
    async def scenario() -> list[Step]:
        # Given a ledger with a million prior rows at 1 microsecond each
        model = SnowflakeModel(Latency(0.0, 0.0, 1e-6), history={LEDGER: History(1_000_000)})
        a = Client(model, "A", [])
        # When one statement finds rows by the hash alone, another by insertion time too
        await a.sql("SELECT STATUS FROM LEDGER WHERE LOAD_KEY = 'k'")
        await a.sql("SELECT STATUS FROM LEDGER WHERE LOAD_KEY = 'k' AND STARTED_AT >= CURRENT_TIMESTAMP()")
        return model.trace("A")

    # Then the first read the million rows (about a second), the second none
    first, second = run(scenario)
    assert (first.rows_scanned, second.rows_scanned) == (1_000_000, 0)
    assert first.seconds == pytest.approx(1.0) and second.seconds == 0
