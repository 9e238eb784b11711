"""Snowflake writer: explicit DDL, staging through write_pandas, and an atomic, exactly-once publish per batch.

How exactly-once works (the Snowflake semantics relied on: docs/exactly-once.md):

1. ``claim``: one INSERT of a STARTED row for each of the batch's object versions no ledger row says is LOADED or
   FAILED, then COMMIT at once (no transaction stays open while the batch is read and scored); only when it
   inserted fewer rows than versions, one read learns which are duplicates. Nothing of those is read or staged.
2. ``stage``: rows and rejects go to the session's TEMPORARY staging tables (created once per session) through
   write_pandas (a temporary stage, PUT + COPY), each row tagged with its object's number, never reused in the
   session; small files share one write.
3. ``publish``: one transaction for the whole batch. The connection runs with AUTOCOMMIT off, so the first DML
   statement opens it. Append: the rows and rejects are inserted; ``UPDATE ledger`` then write-locks the ledger
   until COMMIT, so concurrent publishers queue behind each other; one UPDATE turns the batch's STARTED rows
   LOADED (with counts) or FAILED (with the reason) except where a committed row already says LOADED or FAILED:
   a new statement, it sees everything committed while this one waited. If it wrote fewer rows than the batch
   has versions, a concurrent delivery won one of them: everything is rolled back and the batch runs again.
   Otherwise COMMIT: three statements under the lock. Upsert: set-based, at most eight (``_publish_upsert``).
   Every ledger reference under the lock is pruned by STARTED_AT (``RECENT_SECONDS``), so the lock is held as
   long with a million prior loads as with none. A crash before COMMIT leaves the claim's STARTED rows (a record
   of the attempt) and temporary tables, which vanish with the session; the retry starts over.

No client-side timer cancels a statement (no ``network_timeout``): Snowflake's LOCK_TIMEOUT and a server-side
STATEMENT_TIMEOUT_IN_SECONDS from the invocation's time left govern (``statement_timeout``).
Creating or altering the fixed tables (CREATE TABLE IF NOT EXISTS, ALTER TABLE ADD COLUMN for drift and the
ledger's migration) needs the tables' OWNERSHIP (docs/deploy.md).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import mimetypes
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import numpy as np
import pandas as pd

# Imported when the module is (at Lambda init, through build_pipeline), not on the first event: the connector
# and its pandas tools take about a second to import, which would otherwise land on the first invocation.
import snowflake.connector
from snowflake.connector.pandas_tools import write_pandas as _connector_write_pandas

from pipeline.errors import (
    ConcurrentLoadError,
    LoadConflictError,
    PermanentError,
    PipelineError,
    SchemaEvolutionError,
    SharedStagingError,
    WarehouseConnectionError,
    WarehouseRejectedError,
    WarehouseUnavailableError,
)
from pipeline.ports import (
    FLAG_COLUMN,
    REJECT_COLUMNS,
    LoadIdentity,
    Outcome,
    PublishResult,
    new_load_id,
)
from pipeline.settings import LoadMode, Settings, validate_identifier

LEDGER_COLUMNS: list[tuple[str, str]] = [
    ("LOAD_KEY", "VARCHAR(64) NOT NULL"),
    ("SOURCE_BUCKET", "VARCHAR(255) NOT NULL"),
    ("SOURCE_KEY", "VARCHAR(2048) NOT NULL"),
    ("SOURCE_VERSION", "VARCHAR(1024) NOT NULL"),
    ("STATUS", "VARCHAR(16) NOT NULL"),
    ("LOAD_ID", "VARCHAR(36)"),
    ("ROWS_LOADED", "NUMBER(19,0)"),
    ("ROWS_REJECTED", "NUMBER(19,0)"),
    ("REASON_CODE", "VARCHAR(64)"),
    ("REASON", "VARCHAR(4096)"),
    ("MODEL_VERSION", "VARCHAR(128)"),
    ("LOAD_MODE", "VARCHAR(16)"),
    ("LOCK_TOKEN", "VARCHAR(36)"),
    ("STARTED_AT", "TIMESTAMP_TZ"),
    ("FINISHED_AT", "TIMESTAMP_TZ"),
    # Added after the first deployments: ensure_fixed_tables adds it to an existing ledger.
    ("ROWS_FLAGGED", "NUMBER(19,0)"),  # rows loaded with OUT_OF_RANGE_FEATURES set (pipeline.plausibility)
]
REJECTED_AT = ("REJECTED_AT", "TIMESTAMP_TZ")
# Upsert only: a column of the staging table (never of the target) that the publish sets, under the ledger lock,
# on staged rows it must not publish: 'repeated' (a later line of the file has the same merge key) or
# 'superseded' (a newer version of the same object already wrote that key). Those rows become rejects.
UPSERT_NOTE = ("UPSERT_SKIP_", "VARCHAR(16)")

# write_pandas options for the staging writes (shared with benchmarks/bench_e2e.py's I/O floor). write_pandas
# passes the ones it does not know to DataFrame.to_parquet, i.e. pyarrow's parquet writer. The files are
# read once, by COPY, and deleted: snappy instead of the connector's default gzip (gzip spent most of a chunk's
# staging time compressing); no dictionary encoding (measurements are nearly all distinct, so pyarrow built a
# dictionary per column and threw it away: ~35 % of the write) and no column statistics (COPY reads every row).
WRITE_PANDAS_OPTIONS: dict[str, Any] = {"compression": "snappy", "use_dictionary": False, "write_statistics": False}

# How a Snowflake error is classified: by the connector's error number (errno) first, then by the SQLSTATE's
# class, then by the exception's type; never by the message text ("lock" is also inside BLOCK_ID or CLOCK).
# The session is gone: drop the cached connection so the retry logs in again.
_CONNECTION_ERRNOS = frozenset(
    {
        250001,  # ER_FAILED_TO_CONNECT_TO_DB
        250002,  # ER_CONNECTION_IS_CLOSED
        250003,  # ER_FAILED_TO_REQUEST (the request never got an answer)
        250005,  # ER_FAILED_TO_SERVER
        251011,  # ER_CONNECTION_TIMEOUT
        252007,  # ER_FAILED_TO_RENEW_SESSION
        390111,  # session no longer exists
        390112,  # session expired (the connector renews it itself; this reaches us only if that failed)
        390113,  # master token not found
        390114,  # master token expired: the connector also sets conn.expired
        390115,  # master token invalid
    }
)
# Another transaction holds the lock: the waiter gave up (LOCK_TIMEOUT) or the queue was full (20 waiters).
_CONFLICT_ERRNOS = frozenset({625})
# A statement cancelled or timed out, a warehouse suspended or resuming: the same statement can succeed later.
_TRANSIENT_ERRNOS = frozenset({603, 604, 608, 630})
_CONNECTION_SQLSTATE_CLASSES = frozenset({"08"})  # connection exception
_CONFLICT_SQLSTATE_CLASSES = frozenset({"40"})  # transaction rollback: serialization failure, deadlock
# Insufficient resources, operator intervention (cancelled, admin shutdown, cannot connect now), system error.
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"53", "57", "58", "XX"})


# What a refusal means, by the SQLSTATE's class: a fixed text in place of Snowflake's own message, which may quote
# a cell's value (Snowflake: "Numeric value 'Ward-3-East' is not recognized"; fakesnow: 'Could not convert string
# "Ward-3-East" to DECIMAL(10,0)').
_REFUSAL_TEXTS = {
    "22": "a staged value does not fit its column's type (data exception)",
    "23": "a row breaks a constraint of the table (integrity constraint)",
    "42": "the statement or an object it names was refused (syntax, a missing object, privileges)",
    "0A": "the statement uses a feature Snowflake does not support",
}
_REFUSAL_TEXT = "the statement was refused"


def classify(exc: BaseException, what: str) -> PipelineError:
    """A snowflake.connector exception as the project's own typed error, decided by errno and SQLSTATE.

    The message names the statement, the exception's type, errno, SQLSTATE and Snowflake's query id (its full
    error is in the account's query history), never the server's message text: that may quote a cell's value, and
    the message becomes a ledger reason, the response and an ERROR log line. Raise the result ``from None``
    (``_cause``), so that the traceback a log prints does not carry the connector's exception either.
    """
    from snowflake.connector import errors as sf

    errno = getattr(exc, "errno", None)
    sqlstate = str(getattr(exc, "sqlstate", None) or "")
    sqlstate = sqlstate if len(sqlstate) == 5 else ""  # the connector says "n/a" when the server gave none
    query_id = str(getattr(exc, "sfqid", None) or "")
    code = " ".join(str(part) for part in (type(exc).__name__, errno, sqlstate) if part not in (None, "", -1))
    message = f"Snowflake {what} failed: {code}" + (
        f" (query id {query_id})" if query_id.isprintable() and query_id else ""
    )
    sqlstate_class = sqlstate[:2] if len(sqlstate) == 5 else ""
    if errno in _CONNECTION_ERRNOS or sqlstate_class in _CONNECTION_SQLSTATE_CLASSES:
        return WarehouseConnectionError(message)
    if errno in _CONFLICT_ERRNOS or sqlstate_class in _CONFLICT_SQLSTATE_CLASSES:
        return LoadConflictError(f"{message} (concurrent transaction)")
    if errno in _TRANSIENT_ERRNOS or sqlstate_class in _TRANSIENT_SQLSTATE_CLASSES:
        return WarehouseUnavailableError(message)
    if isinstance(exc, sf.ProgrammingError | sf.IntegrityError | sf.DataError | sf.NotSupportedError):
        # The statement itself was refused (SQL, privileges, types, missing objects): the same statement fails
        # the same way.
        text = _REFUSAL_TEXTS.get(sqlstate[:2], _REFUSAL_TEXT) if len(sqlstate) == 5 else _REFUSAL_TEXT
        return WarehouseRejectedError(f"{message}: {text}")
    if isinstance(exc, sf.DatabaseError | sf.InterfaceError):
        return WarehouseUnavailableError(message)  # OperationalError, InternalError and the like
    # HTTP-level failures (sf.Error subclasses such as InternalServerError after the connector's own retries),
    # sockets and timeouts: the request never completed, so the session cannot be trusted either.
    return WarehouseConnectionError(message)


class _FailedQueryReplies(logging.Filter):
    """Withholds the server's message from the connector's DEBUG record of a failed query's reply.

    snowflake.connector.cursor logs a failed query's whole reply at DEBUG (``logger.debug(ret)``), and its message
    may quote a cell's value; anyone turning DEBUG on would put it in the logs. The record keeps the error's code,
    SQLSTATE and query id.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        reply = record.msg
        if isinstance(reply, dict) and reply.get("success") is False:
            data = reply.get("data")
            data = data if isinstance(data, dict) else {}
            record.msg = (
                "failed query reply: code %s, SQLSTATE %s, query id %s (message withheld: it may quote a value)"
            )
            record.args = (reply.get("code"), data.get("sqlState"), data.get("queryId"))
        return True


# First in line: the connector's own SecretMaskingFilter turns the reply into text.
logging.getLogger("snowflake.connector.cursor").filters.insert(0, _FailedQueryReplies())


def _cause(exc: BaseException) -> BaseException | None:
    """What a classified error is raised from: nothing for a connector error (its message may quote a cell's value,
    and a logged traceback prints the cause), the exception itself otherwise (a bug: its traceback matters)."""
    from snowflake.connector import errors as sf

    return None if isinstance(exc, sf.Error) else exc


# A staged row's object within its batch (never a target column: pipeline/output.py reserves the name).
OBJECT_NO = ("OBJECT_NO_", "NUMBER(9,0)")
_FINAL = "('LOADED', 'FAILED')"
# The statements under the ledger lock touch only recent ledger rows, by a predicate Snowflake prunes micro-partitions
# by (the ledger is appended to in STARTED_AT order, so each micro-partition covers a narrow STARTED_AT range): LOAD_KEY
# is a hash, which no micro-partition's min/max excludes. Safe because every row they need is recent: the batch's
# STARTED rows were claimed in this invocation, and a row a concurrent delivery made final after this claim (the
# claim saw every row final before it) was claimed in an invocation that overlapped this one. A Lambda invocation
# lasts at most 900 s; the window is 8 times that.
RECENT_SECONDS = 7200
_RECENT = f"DATEADD(SECOND, -{RECENT_SECONDS}, CURRENT_TIMESTAMP())"


def _marks(n: int) -> str:
    """``n`` bound parameters, comma-separated (the connector binds them on the client: pyformat)."""
    return ", ".join(["%s"] * n)


def _values(rows: int, columns: int) -> str:
    """The rows of a VALUES list of bound parameters."""
    return ", ".join([f"({_marks(columns)})"] * rows)


# write_pandas' temporary stages a session may gather before the adapter ends it between two batches.
MAX_SESSION_STAGES = 200

# Seconds of the invocation kept back when a statement's server-side timeout is derived from the time left: enough
# to roll back, answer SQS and log after Snowflake cancels the statement (000630, retriable).
STATEMENT_MARGIN_SECONDS = 15


def _counting_down(seconds_left: float) -> Callable[[], float]:
    """A clock read once: the seconds left now, counting down with the monotonic clock."""
    deadline = time.monotonic() + seconds_left
    return lambda: deadline - time.monotonic()


def statement_timeout(time_left: Callable[[], float] | None) -> int | None:
    """STATEMENT_TIMEOUT_IN_SECONDS for a statement starting now: the invocation's time left less the margin, at
    least 1 s; None without a clock (Snowflake's own default applies). The pipeline starts a publish only with
    SNOWFLAKE_LOCK_TIMEOUT + 60 s left (pipeline/process.py), so a lock wait ends with LOCK_TIMEOUT's lock error
    before this limit."""
    if time_left is None:
        return None
    return max(1, int(time_left() - STATEMENT_MARGIN_SECONDS))


class _Schema:
    """What this container has already made sure exists, so that a warm load runs no DDL and no catalog read."""

    def __init__(self) -> None:
        self.fixed_tables = False
        self.columns: dict[str, set[str]] = {}
        # The session's staging tables (temporary: they live as long as the session) and the columns each was
        # created with, so that a warm batch writes to them with no DDL; the rows each holds, to drop big ones.
        self.staging: dict[str, list[tuple[str, str]]] = {}
        self.staging_rows: dict[str, int] = {}
        # Staged rows' object numbers, never reused in a session: rows an earlier batch left in a staging table
        # (published, or rolled back with it) never match a later batch's numbers.
        self.numbers = itertools.count(1)
        self.stages = 0  # temporary stages write_pandas created in this session

    def has(self, table: str, columns: list[tuple[str, str]]) -> bool:
        known = self.columns.get(table)
        return known is not None and all(name in known for name, _ in columns)

    def forget(self) -> None:
        """After a failure: a table may have been dropped or altered behind this container's back."""
        self.fixed_tables = False
        self.columns.clear()
        self.staging.clear()  # recreated (OR REPLACE) by the next batch that stages to them
        self.staging_rows.clear()


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


class _StagedTable:
    """A temporary table of the batch with the frames not yet written to it (small files share one write)."""

    def __init__(self, name: str, columns: list[tuple[str, str]]) -> None:
        self.name = name
        self.columns = columns
        self.created = False
        self.pending: list[tuple[int, pd.DataFrame]] = []  # (object number, frame)
        self.pending_rows = 0
        self.written_rows = 0

    def forget(self, number: int) -> None:
        self.pending = [(n, f) for n, f in self.pending if n != number]
        self.pending_rows = sum(len(f) for _, f in self.pending)


class _ObjectStaging:
    """One object version's share of a batch's staging (the pipeline's ObjectStaging port)."""

    def __init__(self, batch: SnowflakeBatch, identity: LoadIdentity) -> None:
        self._batch = batch
        self.identity = identity
        self.number = batch.next_number()
        self.rows_table: _StagedTable | None = None
        self.rows_staged = 0
        self.rejects_staged = 0
        self.flagged_staged = 0  # staged rows with OUT_OF_RANGE_FEATURES set

    def stage_rows(self, frame: pd.DataFrame, columns: list[tuple[str, str]]) -> None:
        if frame.empty:
            return
        self.rows_table = self._batch.stage(self.number, frame, columns)
        self.rows_staged += len(frame)
        if FLAG_COLUMN in frame.columns:
            self.flagged_staged += int(frame[FLAG_COLUMN].count())

    def stage_rejects(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        self._batch.stage(self.number, frame, REJECT_COLUMNS, rejects=True)
        self.rejects_staged += len(frame)

    def discard_staged(self) -> None:
        """Rows already written under the old number are never published: the object takes a new one."""
        self._batch.forget(self.number)
        self.number = self._batch.next_number()
        self.rows_table = None
        self.rows_staged = self.rejects_staged = self.flagged_staged = 0


class SnowflakeBatch:
    """The statements of one batch of object versions, on one connection (the pipeline's LoadBatch port).

    Rows and rejects are staged through write_pandas into session-scoped temporary tables shared by the batch's
    objects, each row tagged with its object's number; the frames of small files are gathered and written
    together. The publish is one transaction for the whole batch (see the module docstring).
    """

    def __init__(
        self,
        conn: Any,
        settings: Settings,
        write_pandas: Any,
        schema: _Schema,
        time_left: Callable[[], float] | None = None,
    ) -> None:
        self._conn = conn
        self._time_left = time_left
        self._s = settings
        self._write_pandas = write_pandas or _connector_write_pandas
        self._schema = schema
        self.batch_id = new_load_id()
        self._tables: dict[tuple[tuple[str, str], ...], _StagedTable] = {}
        self._rejects: _StagedTable | None = None
        self._in_transaction = False  # a DML statement ran since the last COMMIT, ROLLBACK or DDL
        self._broken: SharedStagingError | None = None  # a write that carried several objects' rows failed

    def next_number(self) -> int:
        return next(self._schema.numbers)

    # --- statements ---------------------------------------------------------------------------------------
    def _execute(self, sql: str, params: tuple[Any, ...] | None = None, *, what: str, dml: bool = False) -> Any:
        try:
            cur = self._conn.cursor()
            if (limit := statement_timeout(self._time_left)) is None:
                cur.execute(sql, params)
            else:
                # A statement-level parameter, sent with the query request itself: no round trip, enforced by the
                # server (000630), never a client-side cancel.
                cur.execute(sql, params, _statement_params={"STATEMENT_TIMEOUT_IN_SECONDS": limit})
        except PipelineError:
            raise
        except Exception as exc:
            raise classify(exc, what) from None
        if dml:
            self._in_transaction = True
        return cur

    def _fq(self, table: str) -> str:
        return f"{self._s.database}.{self._s.schema_name}.{table}"

    # --- DDL --------------------------------------------------------------------------------------------
    def ensure_fixed_tables(self) -> None:
        self._create(self._s.ledger_table, LEDGER_COLUMNS)
        self._add_missing_columns(self._s.ledger_table, LEDGER_COLUMNS)  # a ledger from before ROWS_FLAGGED
        self._create(self._s.rejects_table, [*REJECT_COLUMNS, REJECTED_AT])

    def _create(self, table: str, columns: list[tuple[str, str]]) -> None:
        cols = ", ".join(f"{validate_identifier(n)} {t}" for n, t in columns)
        self._ddl(f"CREATE TABLE IF NOT EXISTS {self._fq(table)} ({cols})", what=f"create {table}")

    def _ddl(self, sql: str, *, what: str) -> None:
        """Run one DDL statement. Its failure is retriable, never a reason to fail the file for good.

        Every DDL statement is idempotent (IF NOT EXISTS, OR REPLACE of a temporary table), so the one a concurrent
        delivery has just run makes this one a no-op; what still fails (privileges, an outage, a conflict on the
        catalog) is an environment problem a retry or an operator can fix, never a property of the file.
        """
        try:
            self._execute(sql, what=what)
        except PermanentError as exc:
            raise SchemaEvolutionError(f"{exc} (retried: DDL never fails a file for good)") from exc
        self._in_transaction = False  # DDL commits the open transaction first

    def ensure_target(self, columns: list[tuple[str, str]]) -> None:
        """Create the target with explicit types if missing; add new (nullable) columns a file brings.

        Two deliveries may both find a column missing and both add it: ``ADD COLUMN IF NOT EXISTS`` makes the
        second a no-op (the INFORMATION_SCHEMA read only saves the statements for columns that exist). A warm
        container that has seen these columns runs nothing.
        """
        table = self._s.target_table
        if self._schema.has(table, columns):
            return
        self._create(table, columns)
        existing = self._add_missing_columns(table, columns)
        self._schema.columns[table] = existing | {name for name, _ in columns}

    def _add_missing_columns(self, table: str, columns: list[tuple[str, str]]) -> set[str]:
        """Add the (nullable) ``columns`` an existing ``table`` lacks; return the columns it had."""
        try:
            cur = self._execute(
                "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                (self._s.schema_name, table),
                what=f"describe {table}",
            )
        except PermanentError as exc:
            raise SchemaEvolutionError(str(exc)) from exc
        existing = {str(r[0]).upper() for r in cur.fetchall()}
        for name, sql_type in columns:
            if name not in existing:
                self._ddl(
                    f"ALTER TABLE {self._fq(table)} ADD COLUMN IF NOT EXISTS "
                    f"{validate_identifier(name)} {sql_type.replace(' NOT NULL', '')}",
                    what=f"evolve {table} (add {name})",
                )
        return existing

    # --- ledger -----------------------------------------------------------------------------------------
    def claim(self, identities: Sequence[LoadIdentity], model_version: str) -> dict[str, tuple[str, str | None]]:
        """Record that the batch's new versions started loading; return those already LOADED (or FAILED).

        One INSERT for the whole batch: a STARTED row (this attempt's load id) for each version no row says LOADED
        or FAILED, committed at once (it takes no lock of its own, but on Snowflake it may wait behind a publisher's
        ledger lock). Its row count tells whether every version was new; only when one was not does a read follow,
        to learn which ones and their load ids. The STARTED rows are what concurrent deliveries of
        one version both write at publish (the lock statement), so even an engine that does not lock as Snowflake
        does (DuckDB, under fakesnow) refuses the second of them instead of loading it twice.
        """
        new = {i.load_key: i for i in identities}
        if not new:
            return {}
        keys = sorted(new)
        # A load keyed on its content is also done when a ledger row records its version as loaded under the
        # per-version key (every load before the content rule): an upgrade never loads a version twice.
        version_keys = {i.version_key: key for key, i in new.items() if i.version_key != key}
        looked_up = keys + sorted(version_keys)
        ledger = self._fq(self._s.ledger_table)
        values: list[Any] = []
        for key in keys:
            i = new[key]
            values += [key, i.version_key, i.bucket, i.key, i.version, i.load_id]
        rows = _values(len(keys), 6)
        in_keys = _marks(len(looked_up))
        cur = self._execute(
            f"INSERT INTO {ledger} (LOAD_KEY, SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, STATUS, LOAD_ID, "
            "MODEL_VERSION, LOAD_MODE, STARTED_AT) SELECT v.LOAD_KEY, v.SOURCE_BUCKET, v.SOURCE_KEY, "
            f"v.SOURCE_VERSION, 'STARTED', v.LOAD_ID, %s, %s, CURRENT_TIMESTAMP() FROM (VALUES {rows}) "
            "AS v(LOAD_KEY, VERSION_KEY, SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, LOAD_ID) "
            f"WHERE v.LOAD_KEY NOT IN (SELECT LOAD_KEY FROM {ledger} "
            f"WHERE LOAD_KEY IN ({in_keys}) AND STATUS IN {_FINAL}) "
            f"AND v.VERSION_KEY NOT IN (SELECT LOAD_KEY FROM {ledger} "
            f"WHERE LOAD_KEY IN ({in_keys}) AND STATUS IN {_FINAL})",
            (model_version, self._s.load_mode.value, *values, *looked_up, *looked_up),
            what="claim ledger",
            dml=True,
        )
        inserted = int(cur.rowcount or 0)
        # Committed at once, before the batch's objects are read and scored: no transaction of this session stays
        # open through S3 reads (Snowflake: an INSERT only "sometimes" runs beside another session's UPDATE of the
        # table, so an open claim could hold up or queue behind the ledger's publishers). The round trip is the
        # one a staging table's CREATE (DDL, an implicit commit) cost before the session kept its staging tables.
        self._execute("COMMIT", what="commit claim")
        self._in_transaction = False
        if inserted == len(keys):
            return {}
        cur = self._execute(
            f"SELECT LOAD_KEY, STATUS, LOAD_ID FROM {ledger} WHERE LOAD_KEY IN ({in_keys}) AND STATUS IN {_FINAL}",
            tuple(looked_up),
            what="read ledger",
        )
        final: dict[str, tuple[str, str | None]] = {}
        for found, status, load_id in cur.fetchall():
            key = version_keys.get(str(found), str(found))  # a per-version row answers for its content's load
            if status == "LOADED" or key not in final:  # LOADED wins over a FAILED of an older code version
                final[key] = (str(status), str(load_id) if load_id is not None else None)
        return final

    # --- staging ----------------------------------------------------------------------------------------
    def staging(self, identity: LoadIdentity) -> _ObjectStaging:
        return _ObjectStaging(self, identity)

    def stage(
        self, number: int, frame: pd.DataFrame, columns: list[tuple[str, str]], *, rejects: bool = False
    ) -> _StagedTable:
        """Tag the frame with its object's number and gather it; write when enough rows are waiting."""
        table = self._table(columns, rejects=rejects)
        frame[OBJECT_NO[0]] = np.int32(number)  # the caller's frame is staged and dropped: no copy
        table.pending.append((number, frame))
        table.pending_rows += len(frame)
        if table.pending_rows >= self._s.chunk_rows:
            self._flush(table)
        return table

    def _staged_tables(self) -> list[_StagedTable]:
        return [*self._tables.values(), *([self._rejects] if self._rejects else [])]

    def forget(self, number: int) -> None:
        for table in self._staged_tables():
            table.forget(number)

    def _table(self, columns: list[tuple[str, str]], *, rejects: bool) -> _StagedTable:
        if rejects:
            if self._rejects is None:
                name = validate_identifier(f"STGX_{self._s.rejects_table[:200]}")
                self._rejects = _StagedTable(name, [*columns, OBJECT_NO])
            return self._rejects
        layout = tuple(columns)
        table = self._tables.get(layout)
        if table is None:
            staged = [*columns, OBJECT_NO]
            if self._s.load_mode is LoadMode.UPSERT:
                staged.append(UPSERT_NOTE)  # not in the frame: COPY leaves it NULL
            name = validate_identifier(f"STGR_{self._s.target_table[:200]}_{len(self._tables) + 1}")
            table = self._tables[layout] = _StagedTable(name, staged)
        return table

    def _flush(self, table: _StagedTable) -> None:
        if not table.pending:
            return
        if not table.created and self._schema.staging.get(table.name) == table.columns:
            table.created = True  # created by an earlier batch of this session: its rows have other numbers
        if not table.created:
            # OR REPLACE: a table of this name the session created for another layout goes, with its rows.
            cols = ", ".join(f"{validate_identifier(n)} {t.replace(' NOT NULL', '')}" for n, t in table.columns)
            self._ddl(f"CREATE OR REPLACE TEMPORARY TABLE {table.name} ({cols})", what=f"create {table.name}")
            table.created = True
            self._schema.staging[table.name] = table.columns
            self._schema.staging_rows[table.name] = 0
        frames = [f for _, f in table.pending]
        objects = len({n for n, _ in table.pending})
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True, copy=False)
        table.pending, table.pending_rows = [], 0
        self._schema.stages += 1  # write_pandas' CREATE TEMPORARY STAGE, which nothing drops but the session's end
        try:
            try:
                ok, _chunks, nrows, _ = self._write_pandas(
                    self._conn,
                    frame,
                    table_name=table.name,
                    quote_identifiers=False,  # every name is a validated, upper-case identifier
                    auto_create_table=False,
                    overwrite=False,
                    use_logical_type=True,
                    **WRITE_PANDAS_OPTIONS,
                )
            except PipelineError:
                raise
            except Exception as exc:
                raise classify(exc, f"staging write to {table.name}") from None
            finally:
                self._in_transaction = True  # its COPY (DML) opened a transaction; CREATE STAGE committed the last
            if not ok or nrows != len(frame):
                raise WarehouseUnavailableError(f"staging write to {table.name} loaded {nrows} of {len(frame)} rows")
        except PipelineError as exc:
            if objects == 1:
                raise  # the one object's own failure (a refusal of its data fails that file)
            # Several objects' rows went down with it, and the write may or may not have landed: nothing of this
            # batch may be published now, even if the caller goes on (publish() raises this again).
            self._broken = SharedStagingError(f"a staging write carrying {objects} objects' rows failed: {exc}")
            raise self._broken from exc
        table.written_rows += len(frame)
        self._schema.staging_rows[table.name] = self._schema.staging_rows.get(table.name, 0) + len(frame)

    # --- publish ----------------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """AUTOCOMMIT is off: the first DML statement opened the transaction; end it with COMMIT or ROLLBACK."""
        try:
            yield
        except BaseException:
            self.abandon()  # the original error is what matters
            raise
        if not self._in_transaction:
            return
        try:
            self._conn.commit()
        except Exception as exc:
            # Never leave the transaction open on a connection that is reused: the retry would read its own
            # uncommitted ledger row and skip a load that never committed.
            self.abandon()
            raise classify(exc, "commit") from None
        self._in_transaction = False

    def abandon(self) -> None:
        """Roll back whatever is open (staged rows, a half publish, the ledger lock)."""
        if self._in_transaction:
            with contextlib.suppress(Exception):
                self._conn.rollback()
            self._in_transaction = False

    def finish(self) -> None:
        """The end of a batch that went well: nothing is open; big staging tables are dropped now."""
        self.abandon()
        for table in self._staged_tables():
            if table.created and self._schema.staging_rows.get(table.name, 0) >= self._s.chunk_rows:
                self._schema.staging.pop(table.name, None)  # the next batch that needs it creates it again
                self._schema.staging_rows.pop(table.name, None)
                with contextlib.suppress(Exception):  # temporary tables also vanish with the session
                    self._conn.cursor().execute(f"DROP TABLE IF EXISTS {table.name}")

    def publish(self, outcomes: Sequence[Outcome]) -> list[PublishResult]:
        """Every outcome's rows + rejects + ledger row (LOADED, or FAILED with its reason) in one transaction.

        Append mode: the rows and rejects are inserted first (INSERT takes no lock), then ``UPDATE ledger``
        takes the ledger's lock, then one UPDATE finishes the claim's STARTED rows of every version no committed
        row says LOADED or FAILED (a new statement: it sees what a publisher committed while this one waited), then
        COMMIT. Three statements under the lock, whatever the batch's size (upsert: at most eight, set-based, see
        ``_publish_upsert``). If that UPDATE finished fewer rows
        than there are outcomes, a concurrent delivery won one of them: everything is rolled back
        (ConcurrentLoadError).
        """
        if not outcomes:
            return []
        if self._broken is not None:
            raise self._broken
        for table in self._staged_tables():
            self._flush(table)
        loads = [o for o in outcomes if o.failure is None]
        upsert = self._s.load_mode is LoadMode.UPSERT
        with self._transaction():
            if upsert:
                published = [o for o in loads if o.staging.rows_staged]
                self._mark_repeated(published)
                self._insert_rejects(loads)
                self._lock_ledger(outcomes)
                counts = self._publish_upsert(published)
            else:
                self._insert_rows(loads)
                self._insert_rejects(loads)
                self._lock_ledger(outcomes)
                counts = {}
            results = [self._result(o, counts.get(id(o))) for o in outcomes]
            finished = self._finish_ledger(outcomes, results)
            if finished != len(outcomes):
                raise ConcurrentLoadError(
                    f"{len(outcomes) - finished} of the batch's {len(outcomes)} object versions were loaded by a "
                    "concurrent delivery after the claim; nothing was published, and the batch runs again"
                )
        return results

    def _result(self, outcome: Outcome, kept_out: tuple[int, int] | None) -> PublishResult:
        s = cast(_ObjectStaging, outcome.staging)
        if outcome.failure is not None:
            return PublishResult(0, 0, s.identity.load_id)
        kept, flagged = kept_out if kept_out is not None else (0, s.flagged_staged)
        return PublishResult(s.rows_staged - kept, s.rejects_staged + kept, s.identity.load_id, flagged)

    def _lock_ledger(self, outcomes: Sequence[Outcome]) -> None:
        # Write-locks the ledger until COMMIT/ROLLBACK (matching rows or not): concurrent publishers queue here.
        keys = [o.staging.identity.load_key for o in outcomes]
        self._execute(
            f"UPDATE {self._fq(self._s.ledger_table)} SET LOCK_TOKEN = %s WHERE LOAD_KEY IN ({_marks(len(keys))}) "
            f"AND STARTED_AT >= {_RECENT}",
            (self.batch_id, *keys),
            what="lock ledger",
            dml=True,
        )

    def _finish_ledger(self, outcomes: Sequence[Outcome], results: list[PublishResult]) -> int:
        """Each outcome's STARTED row -> LOADED with its counts, or FAILED with the reason, unless a committed row
        already says LOADED or FAILED for that version (a new statement, after the lock: it sees what a publisher
        committed while this one waited); the rows written."""
        names = "LOAD_ID, STATUS, ROWS_LOADED, ROWS_REJECTED, ROWS_FLAGGED, REASON_CODE, REASON, MODEL_VERSION"
        values: list[Any] = []
        for outcome, result in zip(outcomes, results, strict=True):
            code, reason = outcome.failure or (None, None)
            values += [outcome.staging.identity.load_id, "FAILED" if outcome.failure else "LOADED"]
            values += [result.rows_loaded, result.rows_rejected, result.rows_flagged]
            values += [code[:64] if code else None, reason[:4096] if reason else None, outcome.model_version]
        keys = [o.staging.identity.load_key for o in outcomes]
        ledger = self._fq(self._s.ledger_table)
        rows = _values(len(outcomes), 8)
        cur = self._execute(
            f"UPDATE {ledger} AS l SET STATUS = v.STATUS, ROWS_LOADED = v.ROWS_LOADED, "
            "ROWS_REJECTED = v.ROWS_REJECTED, ROWS_FLAGGED = v.ROWS_FLAGGED, REASON_CODE = v.REASON_CODE, "
            "REASON = v.REASON, MODEL_VERSION = v.MODEL_VERSION, FINISHED_AT = CURRENT_TIMESTAMP() "
            f"FROM (VALUES {rows}) AS v({names}) "
            f"WHERE l.LOAD_ID = v.LOAD_ID AND l.STATUS = 'STARTED' AND l.STARTED_AT >= {_RECENT} "
            f"AND l.LOAD_KEY NOT IN (SELECT f.LOAD_KEY FROM {ledger} AS f WHERE f.LOAD_KEY IN ({_marks(len(keys))}) "
            f"AND f.STATUS IN {_FINAL} AND f.STARTED_AT >= {_RECENT})",
            (*values, *keys),
            what="ledger loaded",
            dml=True,
        )
        return int(cur.rowcount or 0)

    def _lineage(self, loads: Sequence[Outcome]) -> tuple[str, tuple[Any, ...]]:
        """A VALUES list of the objects' one-per-load lineage, joined to their staged rows by object number."""
        values: list[Any] = []
        for o in loads:
            s = cast(_ObjectStaging, o.staging)
            i = s.identity
            values += [s.number, i.bucket, i.key, i.version, o.order.sequencer, o.order.last_modified_text]
            values += [o.model_version, i.load_id]
        rows = _values(len(loads), 8)
        return (
            f"(VALUES {rows}) AS v(OBJECT_NO_, V_BUCKET, V_KEY, V_VERSION, V_SEQUENCER, V_LAST_MODIFIED, "
            "V_MODEL_VERSION, V_LOAD_ID)",
            tuple(values),
        )

    _INTO_LINEAGE = (
        "SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, SOURCE_SEQUENCER, SOURCE_LAST_MODIFIED, MODEL_VERSION, LOAD_ID, "
        "LOADED_AT"
    )
    _SELECT_LINEAGE = (
        "v.V_BUCKET, v.V_KEY, v.V_VERSION, v.V_SEQUENCER, CAST(v.V_LAST_MODIFIED AS TIMESTAMP_TZ), v.V_MODEL_VERSION, "
        "v.V_LOAD_ID, CURRENT_TIMESTAMP()"
    )

    def _insert_rows(self, loads: Sequence[Outcome], *, where: str | None = None) -> None:
        """The staged rows of every object (those ``where`` selects), one INSERT per staging table (one per column
        layout)."""
        target = self._fq(self._s.target_table)
        for table in self._tables.values():
            mine = [o for o in loads if cast(_ObjectStaging, o.staging).rows_table is table]
            if not mine:
                continue
            columns = mine[0].columns
            lineage, params = self._lineage(mine)
            self._execute(
                f"INSERT INTO {target} ({', '.join(columns)}, {self._INTO_LINEAGE}) "
                f"SELECT {', '.join('s.' + c for c in columns)}, {self._SELECT_LINEAGE} "
                f"FROM {table.name} AS s JOIN {lineage} ON s.OBJECT_NO_ = v.OBJECT_NO_"
                + (f" WHERE {where}" if where else ""),
                params,
                what="publish rows",
                dml=True,
            )

    def _insert_rejects(self, loads: Sequence[Outcome]) -> None:
        numbers = [cast(_ObjectStaging, o.staging).number for o in loads if o.staging.rejects_staged]
        if not numbers or self._rejects is None:
            return
        cols = ", ".join(n for n, _ in REJECT_COLUMNS)
        self._execute(
            f"INSERT INTO {self._fq(self._s.rejects_table)} ({cols}, REJECTED_AT) "
            f"SELECT {cols}, CURRENT_TIMESTAMP() FROM {self._rejects.name} "
            f"WHERE OBJECT_NO_ IN ({_marks(len(numbers))})",
            tuple(numbers),
            what="publish rejects",
            dml=True,
        )

    # --- upsert: set-based, whatever the number of objects (docs/exactly-once.md) -------------------------
    def _upsert_tables(self, published: Sequence[Outcome]) -> list[tuple[_StagedTable, list[Outcome]]]:
        """The batch's staging tables with their published objects, in batch order. Several column layouts in one
        upsert batch are published one object at a time instead (SharedStagingError: the batch runs again one by
        one), so that which row of a merge key wins never depends on which staging table it sits in."""
        tables = [
            (table, [o for o in published if cast(_ObjectStaging, o.staging).rows_table is table])
            for table in self._tables.values()
        ]
        tables = [(table, mine) for table, mine in tables if mine]
        if len(tables) > 1:
            raise SharedStagingError(
                f"an upsert batch with {len(tables)} column layouts is published one object at a time"
            )
        return tables

    def _mark_repeated(self, published: Sequence[Outcome]) -> None:
        """Before the ledger lock (it reads and writes only this session's staging table): an earlier line whose merge
        key a later line of the same file repeats is marked 'repeated' (the last line wins). One statement."""
        note = UPSERT_NOTE[0]
        partition = ", ".join(["OBJECT_NO_", *self._s.merge_keys])
        for table, mine in self._upsert_tables(published):
            numbers = [cast(_ObjectStaging, o.staging).number for o in mine]
            self._execute(
                f"UPDATE {table.name} AS u SET {note} = 'repeated' FROM (SELECT OBJECT_NO_, SOURCE_LINE FROM "
                f"{table.name} WHERE OBJECT_NO_ IN ({_marks(len(numbers))}) QUALIFY ROW_NUMBER() OVER (PARTITION BY "
                f"{partition} ORDER BY SOURCE_LINE DESC) > 1) AS r "
                "WHERE u.OBJECT_NO_ = r.OBJECT_NO_ AND u.SOURCE_LINE = r.SOURCE_LINE",
                tuple(numbers),
                what="upsert: mark repeated keys",
                dml=True,
            )

    def _publish_upsert(self, published: Sequence[Outcome]) -> dict[int, tuple[int, int]]:
        """MERGE semantics (matched keys take the new row, new keys are inserted) that never lose count, for every
        object of the batch at once, under the ledger lock: five statements per staging table, whatever the number
        of objects. Returns {id(outcome): (rows kept out, flagged rows landed)}.

        1. mark the staged rows that must not be published (the staging table's note column):
           * 'superseded': a newer version of the same S3 object (its sequencer, else Last-Modified; S3's order,
             docs/exactly-once.md) already wrote that merge key, in the target or earlier in this batch: an older
             version's event that arrives late must not overwrite it;
           * 'replaced': a later object of this batch writes the same key (published in the same transaction, the
             earlier row was never visible): it counts as kept out, like a line a later line of its file repeats;
        2. count each object's marked rows (and flagged rows that land): the ledger's counts;
        3. the marked rows (and the 'repeated' ones, marked before the lock) become rejects with their reason;
        4. DELETE the target's rows of the keys being written; 5. INSERT the unmarked rows.
        Written as UPDATE + DELETE + INSERT rather than MERGE: fakesnow cannot MERGE inside a transaction.
        """
        counts: dict[int, tuple[int, int]] = {}
        note = UPSERT_NOTE[0]
        keys = self._s.merge_keys
        key_names = ", ".join(keys)
        target = self._fq(self._s.target_table)
        for table, mine in self._upsert_tables(published):
            numbers = [cast(_ObjectStaging, o.staging).number for o in mine]
            in_numbers = f"OBJECT_NO_ IN ({_marks(len(numbers))})"
            lineage, params = self._lineage(mine)
            same_key = " AND ".join(f"{{a}}.{k} = {{b}}.{k}" for k in keys)
            candidates = (
                f"SELECT s.OBJECT_NO_, s.SOURCE_LINE, {', '.join('s.' + k for k in keys)}, v.V_BUCKET, v.V_KEY, "
                "CAST(v.V_SEQUENCER AS VARCHAR) AS V_SEQ, CAST(v.V_LAST_MODIFIED AS TIMESTAMP_TZ) AS V_LM "
                f"FROM {table.name} AS s JOIN {lineage} ON s.OBJECT_NO_ = v.OBJECT_NO_ WHERE s.{note} IS NULL"
            )
            superseded = (
                f"SELECT c.OBJECT_NO_, c.SOURCE_LINE FROM c JOIN {target} AS t ON {same_key.format(a='t', b='c')} "
                "AND t.SOURCE_BUCKET = c.V_BUCKET AND t.SOURCE_KEY = c.V_KEY "
                "WHERE COALESCE(t.SOURCE_SEQUENCER > c.V_SEQ, t.SOURCE_LAST_MODIFIED > c.V_LM) "
                f"UNION SELECT c.OBJECT_NO_, c.SOURCE_LINE FROM c JOIN c AS e ON {same_key.format(a='e', b='c')} "
                "AND e.V_BUCKET = c.V_BUCKET AND e.V_KEY = c.V_KEY AND e.OBJECT_NO_ < c.OBJECT_NO_ "
                "WHERE COALESCE(e.V_SEQ > c.V_SEQ, e.V_LM > c.V_LM)"
            )
            key_c = ", ".join("c." + k for k in keys)
            marks = (
                f"WITH c AS ({candidates}), sup AS ({superseded}), f AS (SELECT c.OBJECT_NO_, c.SOURCE_LINE, "
                f"{key_c}, sup.OBJECT_NO_ IS NOT NULL AS SUP FROM c LEFT JOIN sup "
                "ON sup.OBJECT_NO_ = c.OBJECT_NO_ AND sup.SOURCE_LINE = c.SOURCE_LINE) "
                "SELECT OBJECT_NO_, SOURCE_LINE, CASE WHEN SUP THEN 'superseded' ELSE 'replaced' END AS NOTE_ FROM f "
                "QUALIFY SUP OR OBJECT_NO_ < MAX(CASE WHEN NOT SUP THEN OBJECT_NO_ END) "
                f"OVER (PARTITION BY {key_names})"
            )
            self._execute(
                f"UPDATE {table.name} AS u SET {note} = m.NOTE_ FROM ({marks}) AS m "
                "WHERE u.OBJECT_NO_ = m.OBJECT_NO_ AND u.SOURCE_LINE = m.SOURCE_LINE",
                params,
                what="upsert: mark rows superseded or replaced",
                dml=True,
            )
            flagged = (
                f"COUNT_IF({note} IS NULL AND {FLAG_COLUMN} IS NOT NULL)" if FLAG_COLUMN in mine[0].columns else "0"
            )
            rows = self._execute(
                f"SELECT OBJECT_NO_, COUNT({note}), {flagged} FROM {table.name} WHERE {in_numbers} GROUP BY OBJECT_NO_",
                tuple(numbers),
                what="upsert: count kept out",
            ).fetchall()
            by_number = {cast(_ObjectStaging, o.staging).number: o for o in mine}
            for number, kept_out, flag_count in rows:
                counts[id(by_number[int(number)])] = (int(kept_out or 0), int(flag_count or 0))
            if any(kept for kept, _ in counts.values()):
                self._reject_marked(table, mine, key_names)
            on_key = " AND ".join(f"t.{k} = s.{k}" for k in keys)
            self._execute(
                f"DELETE FROM {target} AS t USING (SELECT DISTINCT {key_names} FROM {table.name} "
                f"WHERE {in_numbers} AND {note} IS NULL) AS s WHERE {on_key}",
                tuple(numbers),
                what="upsert delete",
                dml=True,
            )
            self._insert_rows(mine, where=f"s.{note} IS NULL")
        return counts

    def _reject_marked(self, table: _StagedTable, mine: Sequence[Outcome], key_names: str) -> None:
        """The staged rows the upsert keeps out, as rejects with their reason: one INSERT for the batch."""
        note = UPSERT_NOTE[0]
        values: list[Any] = []
        for o in mine:
            i = o.staging.identity
            number = cast(_ObjectStaging, o.staging).number
            values += [number, i.load_id, i.bucket, i.key, i.version, (o.merge_key_columns or key_names)[:255]]
        reasons = (
            f"merge key ({key_names}) repeated by a later line of this file; that line is loaded instead",
            f"a newer version of this object (S3 sequencer, else Last-Modified) already loaded this merge key "
            f"({key_names}); this older version's row is not loaded",
            f"merge key ({key_names}) written again by a later file of the same batch, published in the same "
            "transaction; that file's row is loaded instead",
        )
        self._execute(
            f"INSERT INTO {self._fq(self._s.rejects_table)} "
            "(LOAD_ID, SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, SOURCE_LINE, COLUMN_NAME, REASON, RAW_TEXT, "
            "REJECTED_AT) SELECT v.V_LOAD_ID, v.V_BUCKET, v.V_KEY, v.V_VERSION, s.SOURCE_LINE, v.V_COLUMNS, "
            f"CASE s.{note} WHEN 'repeated' THEN %s WHEN 'superseded' THEN %s ELSE %s END, NULL, CURRENT_TIMESTAMP() "
            f"FROM {table.name} AS s JOIN (VALUES {_values(len(mine), 6)}) "
            "AS v(OBJECT_NO_, V_LOAD_ID, V_BUCKET, V_KEY, V_VERSION, V_COLUMNS) ON s.OBJECT_NO_ = v.OBJECT_NO_ "
            f"WHERE s.{note} IS NOT NULL",
            (*reasons, *values),
            what="upsert: reject rows kept out",
            dml=True,
        )
