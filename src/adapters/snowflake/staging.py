"""Staging: the batch's rows and rejects, tagged with their object's number, gathered and written with write_pandas
into the session's temporary staging tables (created once per session; small files share one write)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from adapters.snowflake.errors import classify
from adapters.snowflake.statements import _Statements
from pipeline.errors import PipelineError, SharedStagingError, WarehouseUnavailableError
from pipeline.ports import FLAG_COLUMN, REJECT_COLUMNS, LoadIdentity
from pipeline.settings import LoadMode, validate_identifier

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

# A staged row's object within its batch (never a target column: pipeline/output.py reserves the name).
OBJECT_NO = ("OBJECT_NO_", "NUMBER(9,0)")


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

    def __init__(self, batch: _StagingStatements, identity: LoadIdentity) -> None:
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


class _StagingStatements(_Statements):
    """The staging of a batch: one temporary table per column layout, one for rejects."""

    _write_pandas: Callable[..., Any]
    _tables: dict[tuple[tuple[str, str], ...], _StagedTable]
    _rejects: _StagedTable | None
    _broken: SharedStagingError | None  # a write that carried several objects' rows failed

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
