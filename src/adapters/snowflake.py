"""Snowflake writer: explicit DDL, staging through write_pandas, and an atomic, exactly-once publish.

How exactly-once works (the Snowflake semantics relied on are documented in the README):

1. ``claim``: a MERGE puts a STARTED row for the load key (bucket, key, version) into the ledger unless one
   exists; if the ledger already says LOADED or FAILED, the delivery is a duplicate and nothing is staged.
2. ``stage_*``: rows and rejects go to session-scoped TEMPORARY tables through write_pandas (PUT + COPY),
   chunk by chunk, outside any transaction (write_pandas runs DDL, which would commit an open transaction).
3. ``publish``: one transaction. ``UPDATE ledger ... WHERE LOAD_KEY = ?`` first, which write-locks the ledger
   until COMMIT, so concurrent publishers of any load queue behind each other; then the ledger is re-read (a
   new statement sees everything committed before it began) and, if another delivery has already loaded this
   version, the transaction rolls back. Otherwise the rows, the rejects and the ledger's LOADED row are
   written and committed together. A crash anywhere before COMMIT leaves nothing behind but the STARTED row
   and the temporary tables, which vanish with the session; the retry starts over.
"""

from __future__ import annotations

import contextlib
import io
import mimetypes
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd

# Imported when the module is (at Lambda init, through build_pipeline), not on the first event: the connector
# and its pandas tools take about a second to import, which would otherwise land on the first invocation.
import snowflake.connector
from snowflake.connector.pandas_tools import write_pandas as _connector_write_pandas

from pipeline.errors import (
    LoadConflictError,
    PermanentError,
    PipelineError,
    SchemaEvolutionError,
    WarehouseConnectionError,
    WarehouseRejectedError,
    WarehouseUnavailableError,
)
from pipeline.ports import FLAG_COLUMN, REJECT_COLUMNS, LoadIdentity, PublishResult, SourceOrder
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


def classify(exc: BaseException, what: str) -> PipelineError:
    """A snowflake.connector exception as the project's own typed error, decided by errno and SQLSTATE."""
    from snowflake.connector import errors as sf

    errno = getattr(exc, "errno", None)
    sqlstate = str(getattr(exc, "sqlstate", None) or "")
    message = f"Snowflake {what} failed: {type(exc).__name__} {errno or ''} {sqlstate}".strip()
    sqlstate_class = sqlstate[:2] if len(sqlstate) == 5 else ""
    if errno in _CONNECTION_ERRNOS or sqlstate_class in _CONNECTION_SQLSTATE_CLASSES:
        return WarehouseConnectionError(message)
    if errno in _CONFLICT_ERRNOS or sqlstate_class in _CONFLICT_SQLSTATE_CLASSES:
        return LoadConflictError(f"{message} (concurrent transaction)")
    if errno in _TRANSIENT_ERRNOS or sqlstate_class in _TRANSIENT_SQLSTATE_CLASSES:
        return WarehouseUnavailableError(message)
    if isinstance(exc, sf.ProgrammingError | sf.IntegrityError | sf.DataError | sf.NotSupportedError):
        # The statement itself was refused (SQL, privileges, types, missing objects): the same statement fails
        # the same way. Only the first line of the server's message: it names objects, never bound values.
        return WarehouseRejectedError(f"{message}: {str(exc).splitlines()[0][:300]}")
    if isinstance(exc, sf.DatabaseError | sf.InterfaceError):
        return WarehouseUnavailableError(message)  # OperationalError, InternalError and the like
    # HTTP-level failures (sf.Error subclasses such as InternalServerError after the connector's own retries),
    # sockets and timeouts: the request never completed, so the session cannot be trusted either.
    return WarehouseConnectionError(message)


class SnowflakeWarehouse:
    """Owns one connection per container (reused across invocations) and builds a LoadSession per object.

    Implements the pipeline's Warehouse port (pipeline/ports.py).
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
        self._ensured_fixed_tables = False

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
            "network_timeout": s.login_timeout * 4,
            "client_session_keep_alive": False,
            "application": "tumour-scoring-lambda",
            # LOCK_TIMEOUT bounds the wait behind a concurrent publisher (then a retriable error); TIMEZONE
            # makes LOADED_AT UTC.
            "session_parameters": {
                "LOCK_TIMEOUT": 120,
                "TIMEZONE": "UTC",
                "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False,
                "QUERY_TAG": "tumour-scoring",
            },
            **creds.connect_kwargs(),
        }
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
            raise classify(exc, "connect") from exc
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
    def session(self, identity: LoadIdentity) -> Iterator[LoadSession]:
        conn = self._connection()
        session = LoadSession(conn, self._settings, identity, self._write_pandas)
        try:
            if not self._ensured_fixed_tables:
                session.ensure_fixed_tables()
                self._ensured_fixed_tables = True
            yield session
        except PipelineError as exc:
            if isinstance(exc, WarehouseConnectionError) or not self._usable(conn):
                # The session is gone (its temporary tables with it): drop the connection, so the retry in this
                # warm container logs in again instead of failing on the same dead session every time.
                self.close()
            else:
                session.cleanup()
            raise
        except Exception as exc:
            # The connection may be in an unknown state: drop it, so the next attempt starts clean.
            self.close()
            raise classify(exc, "load") from exc
        else:
            session.cleanup()


class LoadSession:
    """The statements of one object's load, on one connection (the pipeline's LoadSession port)."""

    def __init__(self, conn: Any, settings: Settings, identity: LoadIdentity, write_pandas: Any) -> None:
        self._conn = conn
        self._s = settings
        self.identity = identity
        self._write_pandas = write_pandas
        suffix = identity.load_id.replace("-", "")[:16].upper()
        self.stage_table = validate_identifier(f"STG_{settings.target_table[:200]}_{suffix}")
        self.stage_rejects_table = validate_identifier(f"STG_{settings.rejects_table[:200]}_{suffix}")
        self._staged_tables: set[str] = set()
        self.rows_staged = 0
        self.rejects_staged = 0
        self.flagged_staged = 0  # staged rows with OUT_OF_RANGE_FEATURES set

    # --- statements ---------------------------------------------------------------------------------------
    def _execute(self, sql: str, params: tuple[Any, ...] | None = None, *, what: str) -> Any:
        try:
            cur = self._conn.cursor()
            cur.execute(sql, params)
            return cur
        except PipelineError:
            raise
        except Exception as exc:
            raise classify(exc, what) from exc

    def _fq(self, table: str) -> str:
        return f"{self._s.database}.{self._s.schema_name}.{table}"

    # --- DDL --------------------------------------------------------------------------------------------
    def ensure_fixed_tables(self) -> None:
        self._create(self._s.ledger_table, LEDGER_COLUMNS)
        self._add_missing_columns(self._s.ledger_table, LEDGER_COLUMNS)  # a ledger from before ROWS_FLAGGED
        self._create(self._s.rejects_table, [*REJECT_COLUMNS, REJECTED_AT])

    def _create(self, table: str, columns: list[tuple[str, str]], *, temporary: bool = False) -> None:
        cols = ", ".join(f"{validate_identifier(n)} {t}" for n, t in columns)
        kind = "TEMPORARY TABLE" if temporary else "TABLE"
        name = table if temporary else self._fq(table)
        self._ddl(f"CREATE {kind} IF NOT EXISTS {name} ({cols})", what=f"create {table}")

    def _ddl(self, sql: str, *, what: str) -> None:
        """Run one DDL statement. Its failure is retriable, never a reason to fail the file for good.

        Every DDL statement is idempotent (IF NOT EXISTS), so the one a concurrent delivery has just run makes
        this one a no-op; what still fails (privileges, an outage, a conflict on the catalog) is an
        environment problem a retry or an operator can fix, never a property of the file.
        """
        try:
            self._execute(sql, what=what)
        except PermanentError as exc:
            raise SchemaEvolutionError(f"{exc} (retried: DDL never fails a file for good)") from exc

    def ensure_target(self, columns: list[tuple[str, str]]) -> None:
        """Create the target with explicit types if missing; add new (nullable) columns a file brings.

        Two deliveries may both find a column missing and both add it: ``ADD COLUMN IF NOT EXISTS`` makes the
        second a no-op (the INFORMATION_SCHEMA read only saves the statements for columns that exist).
        """
        self._create(self._s.target_table, columns)
        self._add_missing_columns(self._s.target_table, columns)

    def _add_missing_columns(self, table: str, columns: list[tuple[str, str]]) -> None:
        """Add the (nullable) ``columns`` an existing ``table`` lacks."""
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

    # --- ledger -----------------------------------------------------------------------------------------
    def ledger_status(self) -> tuple[str | None, str | None]:
        cur = self._execute(
            f"SELECT STATUS, LOAD_ID FROM {self._fq(self._s.ledger_table)} WHERE LOAD_KEY = %s "
            "ORDER BY CASE STATUS WHEN 'LOADED' THEN 0 WHEN 'FAILED' THEN 1 ELSE 2 END LIMIT 1",
            (self.identity.load_key,),
            what="read ledger",
        )
        row = cur.fetchone()
        return (str(row[0]), str(row[1]) if row[1] is not None else None) if row else (None, None)

    def claim(self, model_version: str) -> tuple[str | None, str | None]:
        """Record that a load of this version started; return the ledger's status beforehand."""
        status, load_id = self.ledger_status()
        if status is None:
            i = self.identity
            self._execute(
                f"MERGE INTO {self._fq(self._s.ledger_table)} AS l USING (SELECT %s AS LOAD_KEY) AS s "
                "ON l.LOAD_KEY = s.LOAD_KEY WHEN NOT MATCHED THEN INSERT "
                "(LOAD_KEY, SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, STATUS, LOAD_ID, MODEL_VERSION, LOAD_MODE, "
                "STARTED_AT) VALUES (s.LOAD_KEY, %s, %s, %s, 'STARTED', %s, %s, %s, CURRENT_TIMESTAMP())",
                (i.load_key, i.bucket, i.key, i.version, i.load_id, model_version, self._s.load_mode.value),
                what="claim ledger",
            )
        return status, load_id

    def record_failure(self, reason_code: str, reason: str, model_version: str) -> None:
        """A file that cannot be used: ledger FAILED with its reason, nothing else written (one transaction)."""
        i = self.identity
        with self._transaction():
            self._lock_ledger()
            status, _ = self.ledger_status()
            if status in {"LOADED", "FAILED"}:
                return
            self._keep_one_ledger_row()
            self._execute(
                f"UPDATE {self._fq(self._s.ledger_table)} SET STATUS = 'FAILED', LOAD_ID = %s, ROWS_LOADED = 0, "
                "ROWS_REJECTED = 0, ROWS_FLAGGED = 0, REASON_CODE = %s, REASON = %s, MODEL_VERSION = %s, "
                "FINISHED_AT = CURRENT_TIMESTAMP() WHERE LOAD_KEY = %s",
                (i.load_id, reason_code[:64], reason[:4096], model_version, i.load_key),
                what="record failure",
            )

    # --- staging ----------------------------------------------------------------------------------------
    def stage_rows(self, frame: pd.DataFrame, columns: list[tuple[str, str]]) -> None:
        if self._s.load_mode is LoadMode.UPSERT:
            columns = [*columns, UPSERT_NOTE]  # not in the frame: COPY leaves it NULL
        self._stage(self.stage_table, frame, columns)
        self.rows_staged += len(frame)
        if FLAG_COLUMN in frame.columns:
            self.flagged_staged += int(frame[FLAG_COLUMN].count())

    def stage_rejects(self, frame: pd.DataFrame) -> None:
        self._stage(self.stage_rejects_table, frame, REJECT_COLUMNS)
        self.rejects_staged += len(frame)

    def _stage(self, table: str, frame: pd.DataFrame, columns: list[tuple[str, str]]) -> None:
        if frame.empty:
            return
        if table not in self._staged_tables:
            self._create(table, [(n, t.replace(" NOT NULL", "")) for n, t in columns], temporary=True)
            self._staged_tables.add(table)
        write_pandas = self._write_pandas or _connector_write_pandas
        try:
            ok, _chunks, nrows, _ = write_pandas(
                self._conn,
                frame,
                table_name=table,
                quote_identifiers=False,  # every name is a validated, upper-case identifier
                auto_create_table=False,
                overwrite=False,
                use_logical_type=True,
                **WRITE_PANDAS_OPTIONS,
            )
        except PipelineError:
            raise
        except Exception as exc:
            raise classify(exc, f"staging write to {table}") from exc
        if not ok or nrows != len(frame):
            raise WarehouseUnavailableError(f"staging write to {table} loaded {nrows} of {len(frame)} rows")

    # --- publish ----------------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._execute("BEGIN", what="begin")
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):  # the original error is what matters
                self._conn.rollback()
            raise
        else:
            try:
                self._conn.commit()
            except Exception as exc:
                # Never leave the transaction open on a connection that is reused: the retry would read its
                # own uncommitted ledger row and skip a load that never committed.
                with contextlib.suppress(Exception):
                    self._conn.rollback()
                raise classify(exc, "commit") from exc

    def _lock_ledger(self) -> None:
        # Write-locks the ledger until COMMIT/ROLLBACK: concurrent publishers queue here (see module doc).
        self._execute(
            f"UPDATE {self._fq(self._s.ledger_table)} SET LOCK_TOKEN = %s WHERE LOAD_KEY = %s",
            (self.identity.load_id, self.identity.load_key),
            what="lock ledger",
        )

    def _keep_one_ledger_row(self) -> None:
        # Two claims that overlap can both insert a STARTED row (standard tables enforce no unique key). Under the
        # ledger lock, and only once no row says LOADED or FAILED, keep one of them so the final UPDATE leaves
        # exactly one ledger row per object version.
        ledger = self._fq(self._s.ledger_table)
        key = self.identity.load_key
        self._execute(
            f"DELETE FROM {ledger} WHERE LOAD_KEY = %s AND LOAD_ID <> "
            f"(SELECT MIN(LOAD_ID) FROM {ledger} WHERE LOAD_KEY = %s)",
            (key, key),
            what="ledger dedupe",
        )

    def publish(
        self,
        columns: list[str],
        model_version: str,
        order: SourceOrder | None = None,
        merge_key_columns: str | None = None,
    ) -> PublishResult:
        """Rows + rejects + ledger LOADED, in one transaction; a duplicate publishes nothing.

        ``order`` is this version's place among the versions of its key (stored with every row, and compared in
        upsert mode); ``merge_key_columns`` names the merge key's input columns in the rejects it may add. The
        counts returned, and written to the ledger, are the rows this transaction inserted into each table.
        """
        i = self.identity
        order = order or SourceOrder()
        target = self._fq(self._s.target_table)
        with self._transaction():
            self._lock_ledger()
            status, load_id = self.ledger_status()
            if status in {"LOADED", "FAILED"}:
                self._conn.rollback()
                return PublishResult(False, 0, 0, load_id or "")
            self._keep_one_ledger_row()
            rows_loaded, rows_rejected, rows_flagged = 0, self.rejects_staged, self.flagged_staged
            if self.rows_staged:
                kept_out = self._publish_rows(target, columns, model_version, order, merge_key_columns)
                rows_loaded, rows_rejected = self.rows_staged - kept_out, rows_rejected + kept_out
                if kept_out and rows_flagged:  # upsert kept some staged rows out: count the flags that landed
                    [(rows_flagged,)] = self._execute(
                        f"SELECT COUNT({FLAG_COLUMN}) FROM {self.stage_table} WHERE {UPSERT_NOTE[0]} IS NULL",
                        what="upsert: count flagged rows",
                    ).fetchall()
            if self.rejects_staged:
                cols = ", ".join(n for n, _ in REJECT_COLUMNS)
                self._execute(
                    f"INSERT INTO {self._fq(self._s.rejects_table)} ({cols}, REJECTED_AT) "
                    f"SELECT {cols}, CURRENT_TIMESTAMP() FROM {self.stage_rejects_table}",
                    what="publish rejects",
                )
            self._execute(
                f"UPDATE {self._fq(self._s.ledger_table)} SET STATUS = 'LOADED', LOAD_ID = %s, ROWS_LOADED = %s, "
                "ROWS_REJECTED = %s, ROWS_FLAGGED = %s, REASON_CODE = NULL, REASON = NULL, MODEL_VERSION = %s, "
                "FINISHED_AT = CURRENT_TIMESTAMP() WHERE LOAD_KEY = %s",
                (i.load_id, rows_loaded, rows_rejected, int(rows_flagged or 0), model_version, i.load_key),
                what="ledger loaded",
            )
        return PublishResult(True, rows_loaded, rows_rejected, i.load_id, int(rows_flagged or 0))

    def _publish_rows(
        self,
        target: str,
        columns: list[str],
        model_version: str,
        order: SourceOrder,
        merge_key_columns: str | None,
    ) -> int:
        """Staged rows -> target; returns how many staged rows were kept out (and rejected instead).

        Lineage that is one value per load is bound here rather than staged per row.
        """
        i = self.identity
        cols = ", ".join(columns)
        into = (
            f"{cols}, SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, SOURCE_SEQUENCER, SOURCE_LAST_MODIFIED, "
            "MODEL_VERSION, LOAD_ID, LOADED_AT"
        )
        constants = "%s, %s, %s, %s, TO_TIMESTAMP_TZ(%s), %s, %s, CURRENT_TIMESTAMP()"
        params = (i.bucket, i.key, i.version, order.sequencer, order.last_modified_text, model_version, i.load_id)
        if self._s.load_mode is LoadMode.APPEND:
            self._execute(
                f"INSERT INTO {target} ({into}) SELECT {cols}, {constants} FROM {self.stage_table}",
                params,
                what="publish rows",
            )
            return 0
        return self._publish_upsert(target, cols, into, constants, params, order, merge_key_columns)

    def _publish_upsert(
        self,
        target: str,
        cols: str,
        into: str,
        constants: str,
        params: tuple[Any, ...],
        order: SourceOrder,
        merge_key_columns: str | None,
    ) -> int:
        """MERGE semantics (matched keys take the new row, new keys are inserted) that never lose count.

        Written as UPDATEs of the staging table's note column, then DELETE of the matched keys + INSERT, all inside
        the publish transaction (fakesnow cannot MERGE inside an explicit transaction; this runs on both). Staged
        rows that are not published become rejects with their reason, so the ledger's counts are what landed:
        * an earlier line whose merge key a later line of the same file repeats (the last line wins);
        * a row whose key a newer version of the same S3 object already wrote (an older version's event that
          arrives late must not overwrite it). "Newer" is S3's order: the sequencers when both rows have one,
          else Last-Modified (docs/exactly-once.md). Rows written by other objects are replaced as before.
        """
        i = self.identity
        stage = self.stage_table
        note = UPSERT_NOTE[0]
        keys = self._s.merge_keys
        partition = ", ".join(keys)
        self._execute(
            f"UPDATE {stage} SET {note} = 'repeated' WHERE SOURCE_LINE IN (SELECT SOURCE_LINE FROM {stage} "
            f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {partition} ORDER BY SOURCE_LINE DESC) > 1)",
            what="upsert: mark repeated keys",
        )
        on_key = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        self._execute(
            f"UPDATE {stage} SET {note} = 'superseded' WHERE {note} IS NULL AND SOURCE_LINE IN ("
            f"SELECT s.SOURCE_LINE FROM {stage} AS s JOIN {target} AS t ON {on_key} "
            "WHERE t.SOURCE_BUCKET = %s AND t.SOURCE_KEY = %s "
            "AND COALESCE(t.SOURCE_SEQUENCER > %s, t.SOURCE_LAST_MODIFIED > TO_TIMESTAMP_TZ(%s)))",
            (i.bucket, i.key, order.sequencer, order.last_modified_text),
            what="upsert: mark keys a newer version wrote",
        )
        [(kept_out,)] = self._execute(f"SELECT COUNT({note}) FROM {stage}", what="upsert: count kept out").fetchall()
        kept_out = int(kept_out or 0)
        if kept_out:
            key_names = ", ".join(keys)
            repeated = f"merge key ({key_names}) repeated by a later line of this file; that line is loaded instead"
            superseded = (
                f"a newer version of this object (S3 sequencer, else Last-Modified) already loaded this merge key "
                f"({key_names}); this older version's row is not loaded"
            )
            self._execute(
                f"INSERT INTO {self._fq(self._s.rejects_table)} "
                "(LOAD_ID, SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, SOURCE_LINE, COLUMN_NAME, REASON, RAW_TEXT, "
                f"REJECTED_AT) SELECT %s, %s, %s, %s, SOURCE_LINE, %s, CASE {note} WHEN 'repeated' THEN %s "
                f"ELSE %s END, NULL, CURRENT_TIMESTAMP() FROM {stage} WHERE {note} IS NOT NULL",
                (
                    i.load_id,
                    i.bucket,
                    i.key,
                    i.version,
                    (merge_key_columns or key_names)[:255],
                    repeated,
                    superseded,
                ),
                what="upsert: reject rows kept out",
            )
        match = " AND ".join(f"{target}.{k} = s.{k}" for k in keys)
        self._execute(
            f"DELETE FROM {target} USING {stage} AS s WHERE s.{note} IS NULL AND {match}", what="upsert delete"
        )
        self._execute(
            f"INSERT INTO {target} ({into}) SELECT {cols}, {constants} FROM {stage} WHERE {note} IS NULL",
            params,
            what="upsert insert",
        )
        return kept_out

    def discard_staged(self) -> None:
        """Forget everything staged so far (the object is about to be read again from the start)."""
        self.cleanup()
        self.rows_staged = self.rejects_staged = self.flagged_staged = 0

    def cleanup(self) -> None:
        for table in list(self._staged_tables):
            with contextlib.suppress(Exception):  # temporary tables also vanish with the session
                self._conn.cursor().execute(f"DROP TABLE IF EXISTS {table}")
            self._staged_tables.discard(table)
