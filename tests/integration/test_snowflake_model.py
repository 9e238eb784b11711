"""The Snowflake lock model served in front of fakesnow, through the real connector over HTTP.

Without the model fakesnow (DuckDB) would let all of these writers through at once; with it, they queue, and
the 21st is refused exactly as Snowflake refuses it. With ``autocommit=False`` (the connector's login session
parameter AUTOCOMMIT) the model and fakesnow open a transaction at the same statement; that a second session
does not see an uncommitted INSERT is fakesnow's (DuckDB's) isolation, not the model's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from snowflake.connector.errors import ProgrammingError

from tools.emulated.snowflake_model import NO_LATENCY, SnowflakeModel, lock_spans, modelled_snowflake


@pytest.fixture
def modelled(stack: Any) -> Iterator[tuple[SnowflakeModel, int]]:
    model = SnowflakeModel(NO_LATENCY)
    with modelled_snowflake(model) as port:
        yield model, port


def connect(stack: Any, port: int, **kwargs: Any) -> Any:
    import snowflake.connector

    from tools.emulated.local_stack import DATABASE, SCHEMA

    return snowflake.connector.connect(
        **kwargs,
        user="fake",
        password="snow",
        account="fakesnow",
        host="127.0.0.1",
        port=port,
        protocol="http",
        database=DATABASE,
        schema=SCHEMA,
        session_parameters={"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
        login_timeout=10,
    )


def test_the_21st_waiter_is_the_connectors_own_000625(stack: Any, modelled: tuple[SnowflakeModel, int]) -> None:
    model, port = modelled
    table = f"LOCKS_{uuid.uuid4().hex[:8].upper()}"
    holder = connect(stack, port)
    holder.cursor().execute(f"CREATE TABLE {table} (K INT, V INT)")
    holder.cursor().execute(f"INSERT INTO {table} VALUES (1, 0)")
    # Given one session holding the table's lock in an open transaction
    holder.cursor().execute("BEGIN")
    holder.cursor().execute(f"UPDATE {table} SET V = V + 1 WHERE K = 1")
    waiters = [connect(stack, port) for _ in range(21)]
    try:
        # And 20 sessions waiting for it
        with ThreadPoolExecutor(20) as pool:
            futures = [
                pool.submit(w.cursor().execute, f"UPDATE {table} SET V = V + 1 WHERE K = 1") for w in waiters[:20]
            ]
            deadline = time.monotonic() + 20
            while model.locks.waiting(f"TUMOURS.SCORING.{table}") < 20 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert model.locks.waiting(f"TUMOURS.SCORING.{table}") == 20
            # When a 21st writes the table
            with pytest.raises(ProgrammingError) as refused:
                waiters[20].cursor().execute(f"DELETE FROM {table} WHERE K = 2")
            # Then the connector raises its own ProgrammingError, errno 625, SQLSTATE 57014
            assert refused.value.errno == 625
            assert refused.value.sqlstate == "57014"
            assert "exceeds the 20 statements limit" in refused.value.msg
            assert not any(f.done() for f in futures)
            # And the 20 all run once the holder commits, one after the other
            holder.commit()
            for future in futures:
                future.result(timeout=30)
        (value,) = holder.cursor().execute(f"SELECT V FROM {table} WHERE K = 1").fetchone()
        assert value == 21
    finally:
        for conn in [holder, *waiters]:
            conn.close()


def test_with_autocommit_off_an_insert_opens_a_transaction_and_an_update_holds_the_lock_until_commit(
    stack: Any, modelled: tuple[SnowflakeModel, int]
) -> None:
    model, port = modelled
    table = f"AUTOCOMMIT_{uuid.uuid4().hex[:8].upper()}"
    fq_table = f"TUMOURS.SCORING.{table}"
    a, b = connect(stack, port, autocommit=False), connect(stack, port, autocommit=False)
    try:
        a.cursor().execute(f"CREATE TABLE {table} (K INT, V INT)")
        # Given session A, with AUTOCOMMIT off, inserting a row with no BEGIN
        a.cursor().execute(f"INSERT INTO {table} VALUES (1, 0)")
        # Then fakesnow opened a transaction too: B does not see the row yet
        assert b.cursor().execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (0,)
        # When A updates the table, and B then updates it too
        a.cursor().execute(f"UPDATE {table} SET V = V + 1 WHERE K = 1")
        with ThreadPoolExecutor(1) as pool:
            b_update = pool.submit(b.cursor().execute, f"UPDATE {table} SET V = V + 10 WHERE K = 1")
            deadline = time.monotonic() + 10
            while model.locks.waiting(fq_table) < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            # Then B waits for A's lock
            time.sleep(0.2)
            assert model.locks.waiting(fq_table) == 1
            assert not b_update.done()
            # And goes on once A commits, holding the lock itself until it commits
            a.commit()
            b_update.result(timeout=10)
            assert model.locks.holder(fq_table) == b.rest.token
        b.commit()
        assert model.locks.holder(fq_table) is None
        assert a.cursor().execute(f"SELECT V FROM {table} WHERE K = 1").fetchone() == (11,)
        # And the traces count the statements and the statements under the table's lock
        a_trace, b_trace = model.trace(a.rest.token), model.trace(b.rest.token)
        assert [(s.verb, s.table, s.in_transaction, s.released) for s in a_trace] == [
            ("CREATE", None, False, ()),
            ("INSERT", None, True, ()),
            ("UPDATE", fq_table, True, ()),
            ("COMMIT", None, False, (fq_table,)),
            ("SELECT", None, False, ()),
        ]
        assert [(s.verb, s.held_before, s.held_after) for s in b_trace] == [
            ("SELECT", False, False),
            ("UPDATE", False, True),
            ("COMMIT", True, False),
        ]
        assert b_trace[1].waited >= 0.2
        assert lock_spans(a_trace, fq_table) == [2]
        assert lock_spans(b_trace, fq_table) == [2]
    finally:
        a.close()
        b.close()


def test_write_pandas_is_three_round_trips_and_its_copy_opens_the_transaction(
    stack: Any, modelled: tuple[SnowflakeModel, int]
) -> None:
    import pandas as pd
    from snowflake.connector.pandas_tools import write_pandas

    model, port = modelled
    table = f"STAGED_{uuid.uuid4().hex[:8].upper()}"
    conn = connect(stack, port, autocommit=False)
    try:
        conn.cursor().execute(f"CREATE TABLE {table} (K INT, V INT)")
        model.reset_trace()
        # Given a session with AUTOCOMMIT off
        # When it stages a small frame with the connector's write_pandas
        ok, _, nrows, _ = write_pandas(conn, pd.DataFrame({"K": [1, 2], "V": [3, 4]}), table, quote_identifiers=False)
        assert ok and nrows == 2
        # Then that is three statements, the PUT one of them (its upload is no statement), and the COPY opened
        # the transaction
        steps = model.trace(conn.rest.token)
        assert [(s.verb, s.kind, s.in_transaction) for s in steps] == [
            ("CREATE", "DDL", False),
            ("PUT", "PUT", False),
            ("COPY", "COPY", True),
        ]
        conn.commit()
        assert conn.cursor().execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (2,)
    finally:
        conn.close()


def test_ddl_inside_an_explicit_transaction_commits_it_in_fakesnow_before_the_lock_passes_on(
    stack: Any, modelled: tuple[SnowflakeModel, int]
) -> None:
    model, port = modelled
    table = f"DDL_COMMITS_{uuid.uuid4().hex[:8].upper()}"
    # Without the model's commit, fakesnow fails A's DDL with an HTTP 500 that the connector retries: bound it
    a, b = connect(stack, port, network_timeout=30), connect(stack, port, network_timeout=30)
    try:
        a.cursor().execute(f"CREATE TABLE {table} (K INT, V INT)")
        a.cursor().execute(f"INSERT INTO {table} VALUES (1, 0)")
        # Given A, in autocommit, inside an explicit transaction that updated the table
        a.cursor().execute("BEGIN")
        a.cursor().execute(f"UPDATE {table} SET V = 1 WHERE K = 1")
        # When A runs DDL (plain fakesnow would run it inside the open transaction: see docs/exactly-once.md)
        a.cursor().execute(f"CREATE TEMPORARY TABLE {table}_TMP (A INT)")
        # Then the update was committed first, as on Snowflake: B sees it and updates the row after it
        assert b.cursor().execute(f"SELECT V FROM {table} WHERE K = 1").fetchone() == (1,)
        b.cursor().execute(f"UPDATE {table} SET V = V + 1 WHERE K = 1")
        assert a.cursor().execute(f"SELECT V FROM {table} WHERE K = 1").fetchone() == (2,)
        assert model.lock_spans(f"TUMOURS.SCORING.{table}") == [2, 1]  # A: UPDATE..DDL; B: its autocommit UPDATE
    finally:
        a.close()
        b.close()
