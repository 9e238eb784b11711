"""SnowflakeBatch: one batch of loads on one connection, and its publish, the one place where the statements of the
batch's transaction are issued in order (the package's docstring says how exactly-once works)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

from snowflake.connector.pandas_tools import write_pandas as _connector_write_pandas

from adapters.snowflake.errors import classify
from adapters.snowflake.ledger import _LedgerStatements
from adapters.snowflake.monitoring import _MonitoringStatements
from adapters.snowflake.schema import _SchemaStatements
from adapters.snowflake.staging import _ObjectStaging, _StagedTable
from adapters.snowflake.statements import _Schema
from adapters.snowflake.upsert import _UpsertStatements
from pipeline.errors import ConcurrentLoadError, SharedStagingError
from pipeline.ports import Outcome, PublishResult, new_load_id
from pipeline.settings import LoadMode, Settings


class SnowflakeBatch(_SchemaStatements, _LedgerStatements, _UpsertStatements, _MonitoringStatements):
    """The statements of one batch of object versions, on one connection (the pipeline's LoadBatch port).

    Rows and rejects are staged through write_pandas into session-scoped temporary tables shared by the batch's
    objects, each row tagged with its object's number; the frames of small files are gathered and written
    together. The publish is one transaction for the whole batch (see the package's docstring, __init__.py).
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

        Append mode: the rows, rejects and monitoring rows are inserted first (INSERT takes no lock), then
        ``UPDATE ledger`` takes the ledger's lock, then one UPDATE finishes the claim's STARTED rows of every version
        no committed row says LOADED or FAILED (a new statement: it sees what a publisher committed while this one
        waited), then COMMIT. Three statements under the lock, whatever the batch's size (upsert: at most eight,
        set-based, see ``_publish_upsert``). If that UPDATE finished fewer rows than there are outcomes, a concurrent
        delivery won one of them: everything is rolled back (ConcurrentLoadError).
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
                self._insert_monitoring(outcomes)
                self._lock_ledger(outcomes)
                counts = self._publish_upsert(published)
            else:
                self._insert_rows(loads)
                self._insert_rejects(loads)
                self._insert_monitoring(outcomes)
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
