"""The Snowflake lock model served in front of fakesnow, through the real connector over HTTP.

Without the model fakesnow (DuckDB) would let all of these writers through at once; with it, they queue, and
the 21st is refused exactly as Snowflake refuses it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from snowflake.connector.errors import ProgrammingError

from tools.snowflake_model import NO_LATENCY, SnowflakeModel, modelled_snowflake


@pytest.fixture
def modelled(stack: Any) -> Iterator[tuple[SnowflakeModel, int]]:
    model = SnowflakeModel(NO_LATENCY)
    with modelled_snowflake(model) as port:
        yield model, port


def connect(stack: Any, port: int) -> Any:
    import snowflake.connector

    from tools.local_stack import DATABASE, SCHEMA

    return snowflake.connector.connect(
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
