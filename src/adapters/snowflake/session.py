"""SnowflakeWarehouse: the container's one connection (login, session parameters, replaced when dead, ended before
write_pandas' stages pile up) and a SnowflakeBatch per batch, rolled back and cleaned up on the way out."""

from __future__ import annotations

import contextlib
import io
import mimetypes
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd

# Imported when the module is (at Lambda init, through build_pipeline), not on the first event: the connector
# and its pandas tools take about a second to import, which would otherwise land on the first invocation.
import snowflake.connector

from adapters.snowflake.errors import _cause, classify
from adapters.snowflake.publish import SnowflakeBatch
from adapters.snowflake.staging import WRITE_PANDAS_OPTIONS
from adapters.snowflake.statements import _Schema, statement_timeout
from pipeline.errors import PipelineError, WarehouseConnectionError, WarehouseRejectedError
from pipeline.settings import Settings

# write_pandas' temporary stages a session may gather before the adapter ends it between two batches.
MAX_SESSION_STAGES = 200


def _counting_down(seconds_left: float) -> Callable[[], float]:
    """A clock read once: the seconds left now, counting down with the monotonic clock."""
    deadline = time.monotonic() + seconds_left
    return lambda: deadline - time.monotonic()


class SnowflakeWarehouse:
    """Owns one connection per container (reused across invocations) and builds a SnowflakeBatch per batch.

    Implements the pipeline's Warehouse port (pipeline/ports.py). The connection runs with AUTOCOMMIT off: the
    first DML statement after a transaction ends opens one, so the publish needs no BEGIN (docs/exactly-once.md).
    """

    def __init__(
        self,
        settings: Settings,
        credentials: Callable[[], Any],
        *,
        connect: Callable[..., Any] | None = None,
        write_pandas: Callable[..., Any] | None = None,
    ) -> None:
        self._settings = settings
        self._credentials = credentials
        self._connect = connect
        self._write_pandas = write_pandas
        self._conn: Any = None
        self._schema = _Schema()
        self._time_left: Callable[[], float] | None = None  # the current invocation's clock, from batch()

    def _connection(self) -> Any:
        if self._conn is not None:
            if self._usable(self._conn):
                return self._conn
            self.close()  # closed, or its session has expired: log in again rather than fail on it
        connect = self._connect or snowflake.connector.connect
        s = self._settings
        creds = self._credentials()
        account = s.account or creds.account
        if not account:
            raise WarehouseRejectedError("no Snowflake account: set SNOWFLAKE_ACCOUNT or 'account' in the secret")
        kwargs: dict[str, Any] = {
            "account": account,
            "database": s.database,
            "schema": s.schema_name,
            "login_timeout": s.login_timeout,
            # No network_timeout: the connector arms it as a client-side timer that cancels every statement running
            # longer (error 000604), lock waits included. Snowflake's own limits govern instead: LOCK_TIMEOUT for a
            # lock wait (a lock error, 000625) and STATEMENT_TIMEOUT_IN_SECONDS from the invocation's clock.
            "client_session_keep_alive": False,
            "application": "tumour-scoring-lambda",
            # Sent with the login, so it costs no round trip: DML opens a transaction implicitly and the publish
            # needs no BEGIN; DDL (write_pandas' temporary stage) still commits on its own.
            "autocommit": False,
            # LOCK_TIMEOUT bounds the wait behind a concurrent publisher (then a retriable error);
            # ABORT_DETACHED_QUERY aborts a running statement 5 minutes after the function lost its connection (a
            # timeout) instead of letting it run on; TIMEZONE makes LOADED_AT UTC.
            "session_parameters": {
                "LOCK_TIMEOUT": s.lock_timeout,
                "ABORT_DETACHED_QUERY": True,
                "TIMEZONE": "UTC",
                "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False,
                "QUERY_TAG": "tumour-scoring",
            },
            **creds.connect_kwargs(),
        }
        if (limit := statement_timeout(self._time_left)) is not None:
            # For the statements the adapter does not send itself (write_pandas', COMMIT): the login's invocation
            # bounds them; the adapter's own statements carry the current invocation's limit (SnowflakeBatch).
            kwargs["session_parameters"]["STATEMENT_TIMEOUT_IN_SECONDS"] = limit
        if s.warehouse:
            kwargs["warehouse"] = s.warehouse
        if s.role:
            kwargs["role"] = s.role
        if s.host:
            kwargs["host"] = s.host
            kwargs["protocol"] = s.protocol
            if s.port:
                kwargs["port"] = s.port
        try:
            self._conn = connect(**kwargs)
        except Exception as exc:
            raise classify(exc, "connect") from exc  # no statement ran: no value to quote
        self._schema.forget()  # a new session: temporary tables are gone, and nothing is known of the others
        self._schema.stages = 0
        return self._conn

    @staticmethod
    def _usable(conn: Any) -> bool:
        """False once the connection is closed or the connector has marked its session expired."""
        try:
            return not conn.is_closed() and not getattr(conn, "expired", False)
        except Exception:
            return False

    def warm_up(self, frame: pd.DataFrame) -> None:
        """The staging writes' first-call costs, paid at init: the Parquet writer and the MIME tables.

        The first DataFrame -> Parquet write costs up to a second once per process, and the first write_pandas PUT
        reads the system's MIME tables. Nothing is sent anywhere: the file is written to memory.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        mimetypes.init()
        pq.write_table(pa.Table.from_pandas(frame), io.BytesIO(), **WRITE_PANDAS_OPTIONS)  # the staging writes' options

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a dead session cannot be logged out of; dropping it is enough
                conn.close()

    @contextmanager
    def batch(self, time_left: Callable[[], float] | None = None) -> Iterator[SnowflakeBatch]:
        """``time_left`` (the invocation's clock): Snowflake itself cancels a statement that would outlive the
        invocation (STATEMENT_TIMEOUT_IN_SECONDS, ``statement_timeout``); no client-side timer does. The clock is
        read once per batch; each statement's limit counts down from that reading."""
        if time_left is not None:
            self._time_left = _counting_down(time_left())
        conn = self._connection()
        batch = SnowflakeBatch(conn, self._settings, self._write_pandas, self._schema, self._time_left)
        try:
            if not self._schema.fixed_tables:
                batch.ensure_fixed_tables()
                self._schema.fixed_tables = True
            yield batch
        except PipelineError as exc:
            self._schema.forget()
            if isinstance(exc, WarehouseConnectionError) or not self._usable(conn):
                # The session is gone (its temporary tables with it): drop the connection, so the retry in this
                # warm container logs in again instead of failing on the same dead session every time.
                self.close()
            else:
                batch.abandon()
            raise
        except Exception as exc:
            # The connection may be in an unknown state: drop it, so the next attempt starts clean.
            self._schema.forget()
            self.close()
            raise classify(exc, "load") from _cause(exc)
        else:
            batch.finish()
            if self._schema.stages >= MAX_SESSION_STAGES:
                # write_pandas creates a TEMPORARY stage per call and never drops it (its COPY's PURGE empties it);
                # temporary objects go with their session, so a long-lived warm session is ended here, between
                # batches, and the next batch logs in again (one login every MAX_SESSION_STAGES staging writes).
                self.close()
