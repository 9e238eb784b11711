"""Every statement on the load ledger: the claim (before anything is read), and under the ledger lock, the lock
itself and the UPDATE that finishes the batch's STARTED rows. Each ledger reference under the lock is pruned by
STARTED_AT (``RECENT_SECONDS``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from adapters.snowflake.statements import _marks, _Statements, _values
from pipeline.ports import NEVER_LOADED, LoadIdentity, Outcome, PublishResult

_FINAL = "('LOADED', 'FAILED')"
# The statements under the ledger lock touch only recent ledger rows, by a predicate Snowflake prunes micro-partitions
# by (the ledger is appended to in STARTED_AT order, so each micro-partition covers a narrow STARTED_AT range): LOAD_KEY
# is a hash, which no micro-partition's min/max excludes. Safe because every row they need is recent: the batch's
# STARTED rows were claimed in this invocation, and a row a concurrent delivery made final after this claim (the
# claim saw every row final before it) was claimed in an invocation that overlapped this one. A Lambda invocation
# lasts at most 900 s; the window is 8 times that.
RECENT_SECONDS = 7200
_RECENT = f"DATEADD(SECOND, -{RECENT_SECONDS}, CURRENT_TIMESTAMP())"


class _LedgerStatements(_Statements):
    """The ledger's statements of a batch; ``batch_id`` is the lock's token."""

    batch_id: str

    def claim(self, identities: Sequence[LoadIdentity], model_version: str) -> dict[str, tuple[str, str | None]]:
        """Record that the batch's new versions started loading; return those already LOADED (or FAILED).

        One INSERT for the whole batch: a STARTED row (this attempt's load id) for each version no row says LOADED
        or FAILED, committed at once (it takes no lock of its own, but on Snowflake it may wait behind a publisher's
        ledger lock). Its row count tells whether every version was new; only when one was not does a read follow,
        to learn which ones and their load ids. The STARTED rows are what concurrent deliveries of
        one version both write at publish (the lock statement), so even an engine that does not lock as Snowflake
        does (DuckDB, under fakesnow) refuses the second of them instead of loading it twice.

        Rescores (``rescore_for``) are claimed by an INSERT of their own (``_insert_rescores``), before the same
        COMMIT: a batch of rescores costs what a batch of loads does; one that mixes both, one INSERT more.
        """
        claimed = {i.load_key: i for i in identities}
        if not claimed:
            return {}
        new = {key: i for key, i in claimed.items() if i.rescore_for is None}
        rescores = {key: i for key, i in claimed.items() if i.rescore_for is not None}
        inserted = self._insert_started(new, model_version) if new else 0
        inserted += self._insert_rescores(rescores, model_version) if rescores else 0
        # Committed at once, before the batch's objects are read and scored: no transaction of this session stays
        # open through S3 reads (Snowflake: an INSERT only "sometimes" runs beside another session's UPDATE of the
        # table, so an open claim could hold up or queue behind the ledger's publishers). The round trip is the
        # one a staging table's CREATE (DDL, an implicit commit) cost before the session kept its staging tables.
        self._execute("COMMIT", what="commit claim")
        self._in_transaction = False
        if inserted == len(claimed):
            return {}
        final = self._final_loads(new) if new else {}
        return final | (self._final_rescores(rescores, model_version) if rescores else {})

    def _insert_started(self, new: dict[str, LoadIdentity], model_version: str) -> int:
        """The ordinary loads' STARTED rows (one INSERT): the rows written."""
        keys = sorted(new)
        looked_up, _ = self._looked_up(new)
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
        return int(cur.rowcount or 0)

    def _looked_up(self, new: dict[str, LoadIdentity]) -> tuple[list[str], dict[str, str]]:
        """The keys the ordinary loads' claim looks up, and {per-version key: the load key it answers for}.

        A load keyed on its content is also done when a ledger row records its version as loaded under the
        per-version key (every load before the content rule): an upgrade never loads a version twice."""
        version_keys = {i.version_key: key for key, i in new.items() if i.version_key != key}
        return sorted(new) + sorted(version_keys), version_keys

    def _final_loads(self, new: dict[str, LoadIdentity]) -> dict[str, tuple[str, str | None]]:
        """Which of the ordinary loads a final row already records (one read, by the keys the claim looked up)."""
        looked_up, version_keys = self._looked_up(new)
        ledger = self._fq(self._s.ledger_table)
        in_keys = _marks(len(looked_up))
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

    def _insert_rescores(self, rescores: dict[str, LoadIdentity], model_version: str) -> int:
        """The rescores' STARTED rows (one INSERT): the rows written.

        A rescore's row is written only when a final row records its version's own load (``base_key``, or the
        per-version key) and none of those was made by this model version, and no final row has the rescore's own
        key (this model version's rescore of that load). RESCORE_OF is the earlier load's id (the lowest, should
        both keys have one)."""
        keys = sorted(rescores)
        earlier = sorted({k for i in rescores.values() for k in (i.base_key, i.version_key)})
        ledger = self._fq(self._s.ledger_table)
        values: list[Any] = []
        for key in keys:
            i = rescores[key]
            values += [key, i.base_key, i.version_key, i.bucket, i.key, i.version, i.load_id]
        cur = self._execute(
            f"INSERT INTO {ledger} (LOAD_KEY, SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, STATUS, LOAD_ID, "
            "MODEL_VERSION, LOAD_MODE, RESCORE_OF, STARTED_AT) SELECT v.LOAD_KEY, v.SOURCE_BUCKET, v.SOURCE_KEY, "
            f"v.SOURCE_VERSION, 'STARTED', v.LOAD_ID, %s, %s, MIN(e.LOAD_ID), CURRENT_TIMESTAMP() "
            f"FROM (VALUES {_values(len(keys), 7)}) "
            "AS v(LOAD_KEY, BASE_KEY, VERSION_KEY, SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, LOAD_ID) "
            f"JOIN {ledger} AS e ON e.LOAD_KEY IN (v.BASE_KEY, v.VERSION_KEY) "
            f"WHERE e.LOAD_KEY IN ({_marks(len(earlier))}) AND e.STATUS IN {_FINAL} "
            f"AND v.LOAD_KEY NOT IN (SELECT LOAD_KEY FROM {ledger} "
            f"WHERE LOAD_KEY IN ({_marks(len(keys))}) AND STATUS IN {_FINAL}) "
            "GROUP BY v.LOAD_KEY, v.SOURCE_BUCKET, v.SOURCE_KEY, v.SOURCE_VERSION, v.LOAD_ID "
            "HAVING SUM(CASE WHEN e.MODEL_VERSION = %s THEN 1 ELSE 0 END) = 0",
            (model_version, self._s.load_mode.value, *values, *earlier, *keys, model_version),
            what="claim ledger (rescore)",
            dml=True,
        )
        return int(cur.rowcount or 0)

    def _final_rescores(
        self, rescores: dict[str, LoadIdentity], model_version: str
    ) -> dict[str, tuple[str, str | None]]:
        """Which rescores are not to run (one read): those a final row records under their own key, or whose
        version's load this model version made (its status and load id), and (NEVER_LOADED, None) for those whose
        version no final row records. The others were claimed (or, should a load of theirs have become final after
        the INSERT, are refused at publish, and the batch runs again)."""
        looked_up = sorted({k for key, i in rescores.items() for k in (key, i.base_key, i.version_key)})
        cur = self._execute(
            f"SELECT LOAD_KEY, STATUS, LOAD_ID, MODEL_VERSION FROM {self._fq(self._s.ledger_table)} "
            f"WHERE LOAD_KEY IN ({_marks(len(looked_up))}) AND STATUS IN {_FINAL}",
            tuple(looked_up),
            what="read ledger (rescore)",
        )
        rows: dict[str, list[tuple[str, str | None, str | None]]] = {}
        for found, status, load_id, model in cur.fetchall():
            row = (str(status), str(load_id) if load_id is not None else None, model)
            rows.setdefault(str(found), []).append(row)
        final: dict[str, tuple[str, str | None]] = {}
        for key, i in rescores.items():
            own = rows.get(key, [])
            earlier = rows.get(i.base_key, []) + (rows.get(i.version_key, []) if i.version_key != i.base_key else [])
            mine = [r for r in earlier if r[2] == model_version]
            done = sorted(own or mine, key=lambda r: r[0] != "LOADED")  # LOADED first
            if done:
                final[key] = done[0][:2]
            elif not earlier:
                final[key] = (NEVER_LOADED, None)
        return final

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
