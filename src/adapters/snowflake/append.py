"""Publishing staged rows: one INSERT … SELECT per staging table, joined to the objects' one-per-load lineage (a
VALUES list), and one INSERT of the staged rejects. Append mode's publish; upsert inserts its unmarked rows the same
way."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from adapters.snowflake.staging import _ObjectStaging, _StagingStatements
from adapters.snowflake.statements import _marks, _values
from pipeline.ports import REJECT_COLUMNS, Outcome


class _AppendStatements(_StagingStatements):
    """The INSERTs that publish a batch's staged rows and rejects."""

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
