"""How a batch's statements are sent on the session: the base every part of SnowflakeBatch shares.

One connection, the settings, what the session already has (``_Schema``) and the invocation's clock: every
statement carries its own server-side STATEMENT_TIMEOUT_IN_SECONDS (``statement_timeout``), never a client-side
timer; a failure becomes a typed error (errors.py); DDL never fails a file for good. Bound parameters are written
with ``_marks`` and ``_values``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from adapters.snowflake.errors import classify
from pipeline.errors import PermanentError, PipelineError, SchemaEvolutionError
from pipeline.settings import Settings


def _marks(n: int) -> str:
    """``n`` bound parameters, comma-separated (the connector binds them on the client: pyformat)."""
    return ", ".join(["%s"] * n)


def _values(rows: int, columns: int) -> str:
    """The rows of a VALUES list of bound parameters."""
    return ", ".join([f"({_marks(columns)})"] * rows)


# Seconds of the invocation kept back when a statement's server-side timeout is derived from the time left: enough
# to roll back, answer SQS and log after Snowflake cancels the statement (000630, retriable).
STATEMENT_MARGIN_SECONDS = 15


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


class _Statements:
    """What every part of a batch shares (set up by SnowflakeBatch, publish.py), and how a statement is sent."""

    _conn: Any
    _s: Settings
    _schema: _Schema
    _time_left: Callable[[], float] | None
    _in_transaction: bool  # a DML statement ran since the last COMMIT, ROLLBACK or DDL

    def next_number(self) -> int:
        return next(self._schema.numbers)

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
