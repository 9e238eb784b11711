"""Upsert's publish, set-based for every object of the batch at once: at most eight statements under the ledger lock
whatever the number of objects (docs/exactly-once.md, Upsert)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from adapters.snowflake.append import _AppendStatements
from adapters.snowflake.staging import UPSERT_NOTE, _ObjectStaging, _StagedTable
from adapters.snowflake.statements import _marks, _values
from pipeline.errors import SharedStagingError
from pipeline.ports import FLAG_COLUMN, Outcome


class _UpsertStatements(_AppendStatements):
    """Upsert mode's statements: merge-key marks, counts, rejects, DELETE … USING and the INSERT of the rest."""

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
