"""The text of each statement the Snowflake adapter sends (src/adapters/snowflake/), pinned without a network.

The SQL is the adapter's contract with Snowflake, and neither fakesnow (it accepts SQL Snowflake refuses) nor the
lock model (it sees statement kinds, not text) can hold it to it. So the real ``SnowflakeWarehouse`` runs a warm
container's batch on a recording connection (tests/sql_trace.py), and the tests read what the connector would
have received: the claim, the ledger lock and the ledger's finishing UPDATE (table aliases, never a four-part
column name), the rows' ``INSERT … SELECT``, upsert's set-based statements (at most eight under the lock, whatever
the number of objects), the ``STARTED_AT`` predicate on every ledger reference under the lock, and a server-side
``STATEMENT_TIMEOUT_IN_SECONDS`` in every request. Exact text where the text is the contract; counts and order
where the behaviour is.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest

from adapters.snowflake import RECENT_SECONDS
from pipeline.errors import ConcurrentLoadError
from pipeline.ports import LoadIdentity, Outcome, PublishResult, SourceOrder
from tests.sql_trace import BASE, RecordingConnection, Sent, four_part_names, logged_in
from tools.emulated.snowflake_model import unpruned_scans

LEDGER = "D.S.TUMOUR_SCORE_LOADS"
TARGET = "D.S.TUMOUR_SCORES"
REJECTS = "D.S.TUMOUR_SCORE_REJECTS"
ROWS_STAGE = "STGR_TUMOUR_SCORES_1"  # the session's first staging table for rows
REJECTS_STAGE = "STGX_TUMOUR_SCORE_REJECTS"
RECENT = "DATEADD(SECOND, -7200, CURRENT_TIMESTAMP())"  # the ledger's pruning bound: RECENT_SECONDS ago
FINAL = "('LOADED', 'FAILED')"
COLUMNS = [("SAMPLE_ID", "VARCHAR"), ("MEAN_RADIUS", "FLOAT"), ("SOURCE_LINE", "NUMBER(19,0)")]
UPSERT = {"LOAD_MODE": "upsert", "MERGE_KEYS": "SAMPLE_ID"}
LEFT = 300.0  # seconds the invocation has left when the batch opens
MARGIN = 15  # STATEMENT_MARGIN_SECONDS


def identity(i: int, *, content: str | None = None) -> LoadIdentity:
    return LoadIdentity("bucket", f"incoming/f{i}.csv", f"v{i}", f"load-{i}", content)


def rows_frame(lines: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "SAMPLE_ID": [f"S{n}" for n in range(lines)],
            "MEAN_RADIUS": [17.99] * lines,
            "SOURCE_LINE": list(range(2, lines + 2)),
        }
    )


def rejects_frame(who: LoadIdentity) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "LOAD_ID": [who.load_id],
            "SOURCE_BUCKET": [who.bucket],
            "SOURCE_KEY": [who.key],
            "SOURCE_VERSION": [who.version],
            "SOURCE_LINE": [5],
            "COLUMN_NAME": ["mean radius"],
            "REASON": ["not a number"],
            "RAW_TEXT": ["abc"],
        }
    )


@dataclass
class Run:
    """What a batch sent (the warm-up's DDL left out), and what its calls returned."""

    sent: list[Sent]
    claimed: dict[str, tuple[str, str | None]]
    results: list[PublishResult]

    def adapters_own(self) -> list[Sent]:
        """The statements the adapter wrote itself (not write_pandas', not the connection's COMMIT/ROLLBACK)."""
        return [s for s in self.sent if s.via == "cursor"]

    def texts(self) -> list[str]:
        return [s.sql for s in self.sent if s.via != "write_pandas"]

    def one(self, prefix: str) -> Sent:
        [found] = [s for s in self.sent if s.via == "cursor" and s.sql.startswith(prefix)]
        return found

    def under_the_lock(self) -> list[Sent]:
        """From the statement that takes the ledger's lock to the COMMIT that releases it, both included."""
        taken = next(i for i, s in enumerate(self.sent) if s.sql.startswith(f"UPDATE {LEDGER} SET LOCK_TOKEN"))
        released = next(i for i, s in enumerate(self.sent) if i > taken and s.via in {"commit", "rollback"})
        return self.sent[taken : released + 1]


def run_batch(
    objects: int,
    *,
    failed: int = 0,
    env: dict[str, str] | None = None,
    duplicates: int = 0,
    kept_out: int = 0,
    content: bool = False,
    lost: int = 0,
) -> Run:
    """A warm container's batch of ``objects`` files (the first with a reject) and ``failed`` files recorded
    FAILED: claimed, staged, published. The connection answers as Snowflake would: the claim inserts a STARTED row
    for all but ``duplicates`` versions, upsert keeps ``kept_out`` rows of each object out, and the ledger's
    finishing UPDATE writes every row but ``lost`` (a concurrent delivery won them)."""
    ids = [identity(i, content=f"etag-{i}" if content else None) for i in range(objects + failed)]

    def rowcount(sql: str, params: Any) -> int:
        if sql.startswith(f"INSERT INTO {LEDGER} "):
            return len(ids) - duplicates
        if sql.startswith(f"UPDATE {LEDGER} AS l "):
            return len(ids) - lost
        return 0

    def rows(sql: str, params: Any) -> list[tuple[Any, ...]]:
        if sql.startswith(f"SELECT LOAD_KEY, STATUS, LOAD_ID FROM {LEDGER} "):
            return [(i.load_key, "LOADED", f"earlier-{n}") for n, i in enumerate(ids[:duplicates])]
        if sql.startswith("SELECT OBJECT_NO_, COUNT(UPSERT_SKIP_)"):
            return [(number, kept_out, 0) for number in params]
        return []

    environ = BASE | {"DUPLICATE_RULE": "content" if content else "version"} | (env or {})
    _, conn, warehouse = logged_in(environ, [LEFT], RecordingConnection(rowcount, rows))
    with warehouse.batch() as batch:  # the container's first batch: the fixed tables and the target
        batch.ensure_target(COLUMNS)
    conn.sent.clear()
    results: list[PublishResult] = []
    with warehouse.batch() as batch:
        claimed = batch.claim(ids, "m1")
        batch.ensure_target(COLUMNS)  # known to this container: no statement
        outcomes = []
        for n, who in enumerate(ids):
            staging = batch.staging(who)
            if n >= objects:
                outcomes.append(Outcome(staging, "m1", failure=("not_csv", "the file is not CSV")))
                continue
            staging.stage_rows(rows_frame(3), COLUMNS)
            if n == 0:
                staging.stage_rejects(rejects_frame(who))
            order = SourceOrder.of("0A1B", datetime(2024, 5, 1, tzinfo=UTC))
            outcomes.append(Outcome(staging, "m1", [c for c, _ in COLUMNS], order, merge_key_columns="sample id"))
        with contextlib.suppress(ConcurrentLoadError):  # the statements up to the ROLLBACK are what matter
            results = batch.publish(outcomes)
    return Run(list(conn.sent), claimed, results)


def marks(n: int) -> str:
    return ", ".join(["%s"] * n)


def values(rows: int, columns: int) -> str:
    return ", ".join([f"({marks(columns)})"] * rows)


# --- the claim ------------------------------------------------------------------------------------------------
def claim_insert(versions: int, looked_up: int) -> str:
    return (
        f"INSERT INTO {LEDGER} (LOAD_KEY, SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, STATUS, LOAD_ID, MODEL_VERSION, "
        "LOAD_MODE, STARTED_AT) SELECT v.LOAD_KEY, v.SOURCE_BUCKET, v.SOURCE_KEY, v.SOURCE_VERSION, 'STARTED', "
        f"v.LOAD_ID, %s, %s, CURRENT_TIMESTAMP() FROM (VALUES {values(versions, 6)}) "
        "AS v(LOAD_KEY, VERSION_KEY, SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, LOAD_ID) "
        f"WHERE v.LOAD_KEY NOT IN (SELECT LOAD_KEY FROM {LEDGER} WHERE LOAD_KEY IN ({marks(looked_up)}) "
        f"AND STATUS IN {FINAL}) "
        f"AND v.VERSION_KEY NOT IN (SELECT LOAD_KEY FROM {LEDGER} WHERE LOAD_KEY IN ({marks(looked_up)}) "
        f"AND STATUS IN {FINAL})"
    )


def test_the_claim_is_one_insert_of_started_rows_committed_at_once() -> None:
    # Given a warm container and a batch of two new object versions (the version rule)
    # When the batch is claimed
    run = run_batch(2)
    # Then the claim is one INSERT … SELECT of a STARTED row per version no final row names, then a COMMIT: no
    # transaction stays open while the files are read, and, every version being new, no read follows
    insert, commit = run.adapters_own()[:2]
    assert insert.sql == claim_insert(2, 2)
    assert commit.sql == "COMMIT"
    assert not any(s.sql.startswith("SELECT LOAD_KEY") for s in run.sent)
    assert run.claimed == {}
    # And its values are the model version, the load mode, each version's six values in key order, then the
    # looked-up keys once for each subquery
    ids = sorted((identity(i) for i in range(2)), key=lambda i: i.load_key)
    versions = [v for i in ids for v in (i.load_key, i.version_key, i.bucket, i.key, i.version, i.load_id)]
    keys = [i.load_key for i in ids]
    assert insert.params == ("m1", "append", *versions, *keys, *keys)


def test_a_claim_that_inserted_fewer_rows_than_versions_reads_which_were_loaded() -> None:
    # Given a batch of three versions, one of which a committed row already says is LOADED
    # When the batch is claimed (the INSERT writes two rows)
    run = run_batch(3, duplicates=1)
    # Then one read after the COMMIT learns which, by the same keys, and the claim reports it with its load id
    insert, commit, lookup = run.adapters_own()[:3]
    assert (insert.sql, commit.sql) == (claim_insert(3, 3), "COMMIT")
    assert (
        lookup.sql
        == f"SELECT LOAD_KEY, STATUS, LOAD_ID FROM {LEDGER} WHERE LOAD_KEY IN (%s, %s, %s) AND STATUS IN {FINAL}"
    )
    assert sorted(lookup.params) == sorted(identity(i).load_key for i in range(3))
    assert run.claimed == {identity(0).load_key: ("LOADED", "earlier-0")}


def test_under_the_content_rule_the_claim_also_looks_up_each_versions_own_key() -> None:
    # Given two loads keyed on their content (a version loaded before the content rule is keyed on the version)
    # When they are claimed
    run = run_batch(2, content=True)
    # Then both subqueries look up the content keys and the per-version keys: no statement more
    insert = run.adapters_own()[0]
    assert insert.sql == claim_insert(2, 4)
    looked_up = insert.params[-8:-4]
    assert looked_up == insert.params[-4:]
    assert set(looked_up) == {identity(i, content=f"etag-{i}").load_key for i in range(2)} | {
        identity(i).load_key for i in range(2)
    }


def rescore(i: int, *, content: str | None = None) -> LoadIdentity:
    return LoadIdentity("bucket", f"incoming/f{i}.csv", f"v{i}", f"rescore-{i}", content, rescore_for="m2")


def claim_rescores(rescores: int, earlier: int) -> str:
    return (
        f"INSERT INTO {LEDGER} (LOAD_KEY, SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, STATUS, LOAD_ID, MODEL_VERSION, "
        "LOAD_MODE, RESCORE_OF, STARTED_AT) SELECT v.LOAD_KEY, v.SOURCE_BUCKET, v.SOURCE_KEY, v.SOURCE_VERSION, "
        f"'STARTED', v.LOAD_ID, %s, %s, MIN(e.LOAD_ID), CURRENT_TIMESTAMP() FROM (VALUES {values(rescores, 7)}) "
        "AS v(LOAD_KEY, BASE_KEY, VERSION_KEY, SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, LOAD_ID) "
        f"JOIN {LEDGER} AS e ON e.LOAD_KEY IN (v.BASE_KEY, v.VERSION_KEY) "
        f"WHERE e.LOAD_KEY IN ({marks(earlier)}) AND e.STATUS IN {FINAL} "
        f"AND v.LOAD_KEY NOT IN (SELECT LOAD_KEY FROM {LEDGER} WHERE LOAD_KEY IN ({marks(rescores)}) "
        f"AND STATUS IN {FINAL}) "
        "GROUP BY v.LOAD_KEY, v.SOURCE_BUCKET, v.SOURCE_KEY, v.SOURCE_VERSION, v.LOAD_ID "
        "HAVING SUM(CASE WHEN e.MODEL_VERSION = %s THEN 1 ELSE 0 END) = 0"
    )


def claim_only(ids: list[LoadIdentity], inserted: list[int], found: list[tuple[Any, ...]]) -> Run:
    """A warm container's claim of ``ids`` alone: its INSERTs write ``inserted`` rows each, a read finds ``found``."""
    writes = iter(inserted)

    def rowcount(sql: str, params: Any) -> int:
        return next(writes) if sql.startswith(f"INSERT INTO {LEDGER} ") else 0

    def rows(sql: str, params: Any) -> list[tuple[Any, ...]]:
        return found if sql.startswith("SELECT LOAD_KEY, STATUS, LOAD_ID") else []

    _, conn, warehouse = logged_in(BASE | {"DUPLICATE_RULE": "version"}, [LEFT], RecordingConnection(rowcount, rows))
    with warehouse.batch() as batch:
        batch.ensure_target(COLUMNS)
    conn.sent.clear()
    with warehouse.batch() as batch:
        claimed = batch.claim(ids, "m2")
    return Run(list(conn.sent), claimed, [])


def test_a_batch_of_rescores_is_claimed_by_one_insert_committed_at_once() -> None:
    # Given a warm container and a batch of two rescores for model version m2 (the version rule)
    ids = [rescore(0), rescore(1)]
    # When the batch is claimed, and both are new
    run = claim_only(ids, [2], [])
    # Then the claim is one INSERT … SELECT of a STARTED row per rescore whose version's own load (its key or its
    # per-version key) a final row records under another model version and whose own key none does, with the
    # earlier load's id as RESCORE_OF, then a COMMIT; no read follows
    insert, commit = run.adapters_own()[:2]
    assert insert.sql == claim_rescores(2, 2)
    assert commit.sql == "COMMIT"
    assert len(run.adapters_own()) == 2
    assert run.claimed == {}
    # And its values are the model version, the load mode, each rescore's seven values in key order, the earlier
    # loads' keys, the rescores' keys, and the model version again
    ordered = sorted(ids, key=lambda i: i.load_key)
    rows = [v for i in ordered for v in (i.load_key, i.base_key, i.version_key, i.bucket, i.key, i.version, i.load_id)]
    earlier = sorted(i.base_key for i in ids)
    assert insert.params == ("m2", "append", *rows, *earlier, *[i.load_key for i in ordered], "m2")
    # And a rescore's key is its load's key and the model version: neither the load's nor another model's
    assert {i.load_key for i in ids}.isdisjoint({i.base_key for i in ids})
    assert rescore(0).load_key != LoadIdentity("bucket", "incoming/f0.csv", "v0", "x", None, "m3").load_key


def test_a_rescore_claim_that_inserted_fewer_rows_reads_why() -> None:
    # Given three rescores for m2: one m2 rescored already, one whose load m2 made, one no load has recorded
    done, by_m2, never = rescore(0), rescore(1), rescore(2)
    found = [
        (done.load_key, "LOADED", "rescore-earlier", "m2"),
        (done.base_key, "LOADED", "load-0", "m1"),
        (by_m2.base_key, "LOADED", "load-1", "m2"),
    ]
    # When the batch is claimed (the INSERT writes no row)
    run = claim_only([done, by_m2, never], [0], found)
    # Then one read after the COMMIT, by the rescores' keys and their loads' keys, says which: the first two are
    # duplicates of those loads, the third was never loaded (the pipeline loads it as an ordinary load)
    insert, commit, lookup = run.adapters_own()
    assert (insert.sql, commit.sql) == (claim_rescores(3, 3), "COMMIT")
    assert lookup.sql == (
        f"SELECT LOAD_KEY, STATUS, LOAD_ID, MODEL_VERSION FROM {LEDGER} WHERE LOAD_KEY IN ({marks(6)}) "
        f"AND STATUS IN {FINAL}"
    )
    assert set(lookup.params) == {k for i in (done, by_m2, never) for k in (i.load_key, i.base_key)}
    assert run.claimed == {
        done.load_key: ("LOADED", "rescore-earlier"),
        by_m2.load_key: ("LOADED", "load-1"),
        never.load_key: ("NEVER_LOADED", None),
    }


def test_a_batch_of_loads_and_rescores_is_claimed_by_two_inserts_and_one_commit() -> None:
    # Given a batch of one ordinary load and one rescore (content rule for the rescore's load)
    ids = [identity(0), rescore(1, content="etag-1")]
    # When it is claimed
    run = claim_only(ids, [1, 1], [])
    # Then the ordinary load's INSERT is the same as ever, the rescore's follows, and one COMMIT ends the claim;
    # the rescore looks up its version's content key and its per-version key
    loads, rescores, commit = run.adapters_own()
    assert (loads.sql, rescores.sql, commit.sql) == (claim_insert(1, 1), claim_rescores(1, 2), "COMMIT")
    assert set(rescores.params[-4:-2]) == {ids[1].base_key, ids[1].version_key}


# --- the publish: append --------------------------------------------------------------------------------------
LINEAGE_INTO = (
    "SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, SOURCE_SEQUENCER, SOURCE_LAST_MODIFIED, MODEL_VERSION, LOAD_ID, "
    "LOADED_AT"
)
LINEAGE_SELECT = (
    "v.V_BUCKET, v.V_KEY, v.V_VERSION, v.V_SEQUENCER, CAST(v.V_LAST_MODIFIED AS TIMESTAMP_TZ), v.V_MODEL_VERSION, "
    "v.V_LOAD_ID, CURRENT_TIMESTAMP()"
)


def lineage(objects: int) -> str:
    return (
        f"(VALUES {values(objects, 8)}) AS v(OBJECT_NO_, V_BUCKET, V_KEY, V_VERSION, V_SEQUENCER, V_LAST_MODIFIED, "
        "V_MODEL_VERSION, V_LOAD_ID)"
    )


def rows_insert(objects: int, where: str = "") -> str:
    return (
        f"INSERT INTO {TARGET} (SAMPLE_ID, MEAN_RADIUS, SOURCE_LINE, {LINEAGE_INTO}) "
        f"SELECT s.SAMPLE_ID, s.MEAN_RADIUS, s.SOURCE_LINE, {LINEAGE_SELECT} "
        f"FROM {ROWS_STAGE} AS s JOIN {lineage(objects)} ON s.OBJECT_NO_ = v.OBJECT_NO_{where}"
    )


REJECTS_INSERT = (
    f"INSERT INTO {REJECTS} (LOAD_ID, SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, SOURCE_LINE, COLUMN_NAME, REASON, "
    "RAW_TEXT, REJECTED_AT) SELECT LOAD_ID, SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, SOURCE_LINE, COLUMN_NAME, "
    f"REASON, RAW_TEXT, CURRENT_TIMESTAMP() FROM {REJECTS_STAGE} WHERE OBJECT_NO_ IN (%s)"
)


def monitoring_insert(loads: int) -> str:
    measured = (
        "ROWS_SCORED, DRIFT_DETECTED, DRIFT_SCORE, DRIFTED_FEATURES, ESTIMATED_ACCURACY, ESTIMATED_ACCURACY_LOW, "
        "ESTIMATED_ACCURACY_HIGH, PREDICTED_MALIGNANT_SHARE, REFERENCE_MALIGNANT_SHARE, DRIFT_DETAIL, "
        "CHALLENGER_MODEL_VERSION, CHALLENGER_AGREEMENT"
    )
    return (
        "INSERT INTO D.S.TUMOUR_SCORE_MONITORING (LOAD_ID, SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, MODEL_VERSION, "
        f"MONITORED_AT, {measured}) SELECT v.LOAD_ID, v.SOURCE_BUCKET, v.SOURCE_KEY, v.SOURCE_VERSION, "
        "v.MODEL_VERSION, CURRENT_TIMESTAMP(), CAST(v.ROWS_SCORED AS NUMBER(19,0)), CAST(v.DRIFT_DETECTED AS BOOLEAN), "
        "CAST(v.DRIFT_SCORE AS FLOAT), CAST(v.DRIFTED_FEATURES AS VARCHAR(4096)), CAST(v.ESTIMATED_ACCURACY AS FLOAT), "
        "CAST(v.ESTIMATED_ACCURACY_LOW AS FLOAT), CAST(v.ESTIMATED_ACCURACY_HIGH AS FLOAT), "
        "CAST(v.PREDICTED_MALIGNANT_SHARE AS FLOAT), CAST(v.REFERENCE_MALIGNANT_SHARE AS FLOAT), "
        "PARSE_JSON(v.DRIFT_DETAIL), CAST(v.CHALLENGER_MODEL_VERSION AS VARCHAR(128)), "
        f"CAST(v.CHALLENGER_AGREEMENT AS FLOAT) FROM (VALUES {values(loads, 17)}) "
        f"AS v(LOAD_ID, SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, MODEL_VERSION, {measured})"
    )


def lock_update(versions: int) -> str:
    return f"UPDATE {LEDGER} SET LOCK_TOKEN = %s WHERE LOAD_KEY IN ({marks(versions)}) AND STARTED_AT >= {RECENT}"


def finish_update(versions: int) -> str:
    return (
        f"UPDATE {LEDGER} AS l SET STATUS = v.STATUS, ROWS_LOADED = v.ROWS_LOADED, ROWS_REJECTED = v.ROWS_REJECTED, "
        "ROWS_FLAGGED = v.ROWS_FLAGGED, REASON_CODE = v.REASON_CODE, REASON = v.REASON, "
        "MODEL_VERSION = v.MODEL_VERSION, FINISHED_AT = CURRENT_TIMESTAMP() "
        f"FROM (VALUES {values(versions, 8)}) AS v(LOAD_ID, STATUS, ROWS_LOADED, ROWS_REJECTED, ROWS_FLAGGED, "
        "REASON_CODE, REASON, MODEL_VERSION) "
        f"WHERE l.LOAD_ID = v.LOAD_ID AND l.STATUS = 'STARTED' AND l.STARTED_AT >= {RECENT} "
        f"AND l.LOAD_KEY NOT IN (SELECT f.LOAD_KEY FROM {LEDGER} AS f WHERE f.LOAD_KEY IN ({marks(versions)}) "
        f"AND f.STATUS IN {FINAL} AND f.STARTED_AT >= {RECENT})"
    )


def test_an_append_publish_is_these_statements_in_this_order() -> None:
    # Given a batch of two files (the first with a reject) and one file recorded FAILED, staged
    # When it is published
    run = run_batch(2, failed=1)
    # Then, after the staging writes, one transaction: the rows of both files in one INSERT … SELECT joined to
    # their lineage, the rejects in one INSERT, every load's monitoring row in one INSERT, the ledger's lock, the
    # UPDATE that finishes all three ledger rows (LOADED with counts, or FAILED with the reason), COMMIT
    first = next(i for i, s in enumerate(run.sent) if s.sql.startswith(f"INSERT INTO {TARGET}"))
    assert run.texts()[run.texts().index(run.sent[first].sql) :] == [
        rows_insert(2),
        REJECTS_INSERT,
        monitoring_insert(3),
        lock_update(3),
        finish_update(3),
        "COMMIT",
    ]
    assert run.sent[-1].via == "commit"
    # And the values carry each object's lineage and each load's outcome
    sequencer, last_modified = "0" * 60 + "0A1B", "2024-05-01T00:00:00+00:00"  # padded; UTC text
    assert run.one(f"INSERT INTO {TARGET}").params == (
        *(1, "bucket", "incoming/f0.csv", "v0", sequencer, last_modified, "m1", "load-0"),
        *(2, "bucket", "incoming/f1.csv", "v1", sequencer, last_modified, "m1", "load-1"),
    )
    finish = run.one(f"UPDATE {LEDGER} AS l").params
    assert finish[:24] == (
        *("load-0", "LOADED", 3, 1, 0, None, None, "m1"),
        *("load-1", "LOADED", 3, 0, 0, None, None, "m1"),
        *("load-2", "FAILED", 0, 0, 0, "not_csv", "the file is not CSV", "m1"),
    )
    assert [r.rows_loaded for r in run.results] == [3, 3, 0]


@pytest.mark.parametrize("objects", [1, 10])
def test_an_append_batch_holds_the_ledger_lock_for_three_statements_whatever_its_size(objects: int) -> None:
    # Given a batch of one file, or of ten / When it is published
    run = run_batch(objects)
    # Then the lock, the ledger's UPDATE and COMMIT are all that run under the ledger's lock, taken once
    assert [s.sql for s in run.under_the_lock()] == [lock_update(objects), finish_update(objects), "COMMIT"]
    assert sum(s.sql.startswith(f"UPDATE {LEDGER} SET LOCK_TOKEN") for s in run.sent) == 1


def test_a_publish_that_finished_fewer_rows_than_versions_is_rolled_back() -> None:
    # Given a concurrent delivery that won one of the batch's two versions after the claim
    # When the batch is published (the ledger's UPDATE finishes one row)
    run = run_batch(2, lost=1)
    # Then nothing commits: the transaction is rolled back right after that UPDATE
    assert [s.sql for s in run.under_the_lock()] == [lock_update(2), finish_update(2), "ROLLBACK"]
    assert not any(s.via == "commit" for s in run.sent)


# --- the publish: upsert --------------------------------------------------------------------------------------
MARK_REPEATED = (
    f"UPDATE {ROWS_STAGE} AS u SET UPSERT_SKIP_ = 'repeated' FROM (SELECT OBJECT_NO_, SOURCE_LINE FROM {ROWS_STAGE} "
    "WHERE OBJECT_NO_ IN ({numbers}) QUALIFY ROW_NUMBER() OVER (PARTITION BY OBJECT_NO_, SAMPLE_ID "
    "ORDER BY SOURCE_LINE DESC) > 1) AS r WHERE u.OBJECT_NO_ = r.OBJECT_NO_ AND u.SOURCE_LINE = r.SOURCE_LINE"
)
MARK_KEPT_OUT = (
    f"UPDATE {ROWS_STAGE} AS u SET UPSERT_SKIP_ = m.NOTE_ FROM (WITH c AS (SELECT s.OBJECT_NO_, s.SOURCE_LINE, "
    "s.SAMPLE_ID, v.V_BUCKET, v.V_KEY, CAST(v.V_SEQUENCER AS VARCHAR) AS V_SEQ, "
    f"CAST(v.V_LAST_MODIFIED AS TIMESTAMP_TZ) AS V_LM FROM {ROWS_STAGE} AS s JOIN {{lineage}} "
    "ON s.OBJECT_NO_ = v.OBJECT_NO_ WHERE s.UPSERT_SKIP_ IS NULL), "
    f"sup AS (SELECT c.OBJECT_NO_, c.SOURCE_LINE FROM c JOIN {TARGET} AS t ON t.SAMPLE_ID = c.SAMPLE_ID "
    "AND t.SOURCE_BUCKET = c.V_BUCKET AND t.SOURCE_KEY = c.V_KEY "
    "WHERE COALESCE(t.SOURCE_SEQUENCER > c.V_SEQ, t.SOURCE_LAST_MODIFIED > c.V_LM) "
    "UNION SELECT c.OBJECT_NO_, c.SOURCE_LINE FROM c JOIN c AS e ON e.SAMPLE_ID = c.SAMPLE_ID "
    "AND e.V_BUCKET = c.V_BUCKET AND e.V_KEY = c.V_KEY AND e.OBJECT_NO_ < c.OBJECT_NO_ "
    "WHERE COALESCE(e.V_SEQ > c.V_SEQ, e.V_LM > c.V_LM)), "
    "f AS (SELECT c.OBJECT_NO_, c.SOURCE_LINE, c.SAMPLE_ID, sup.OBJECT_NO_ IS NOT NULL AS SUP FROM c LEFT JOIN sup "
    "ON sup.OBJECT_NO_ = c.OBJECT_NO_ AND sup.SOURCE_LINE = c.SOURCE_LINE) "
    "SELECT OBJECT_NO_, SOURCE_LINE, CASE WHEN SUP THEN 'superseded' ELSE 'replaced' END AS NOTE_ FROM f "
    "QUALIFY SUP OR OBJECT_NO_ < MAX(CASE WHEN NOT SUP THEN OBJECT_NO_ END) OVER (PARTITION BY SAMPLE_ID)) AS m "
    "WHERE u.OBJECT_NO_ = m.OBJECT_NO_ AND u.SOURCE_LINE = m.SOURCE_LINE"
)
COUNT_KEPT_OUT = (
    f"SELECT OBJECT_NO_, COUNT(UPSERT_SKIP_), 0 FROM {ROWS_STAGE} WHERE OBJECT_NO_ IN ({{numbers}}) GROUP BY OBJECT_NO_"
)
REJECT_KEPT_OUT = (
    f"INSERT INTO {REJECTS} (LOAD_ID, SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, SOURCE_LINE, COLUMN_NAME, REASON, "
    "RAW_TEXT, REJECTED_AT) SELECT v.V_LOAD_ID, v.V_BUCKET, v.V_KEY, v.V_VERSION, s.SOURCE_LINE, v.V_COLUMNS, "
    "CASE s.UPSERT_SKIP_ WHEN 'repeated' THEN %s WHEN 'superseded' THEN %s ELSE %s END, NULL, CURRENT_TIMESTAMP() "
    f"FROM {ROWS_STAGE} AS s JOIN (VALUES {{values}}) AS v(OBJECT_NO_, V_LOAD_ID, V_BUCKET, V_KEY, V_VERSION, "
    "V_COLUMNS) ON s.OBJECT_NO_ = v.OBJECT_NO_ WHERE s.UPSERT_SKIP_ IS NOT NULL"
)
UPSERT_DELETE = (
    f"DELETE FROM {TARGET} AS t USING (SELECT DISTINCT SAMPLE_ID FROM {ROWS_STAGE} WHERE OBJECT_NO_ IN ({{numbers}}) "
    "AND UPSERT_SKIP_ IS NULL) AS s WHERE t.SAMPLE_ID = s.SAMPLE_ID"
)


def test_an_upsert_publish_is_these_set_based_statements_in_this_order() -> None:
    # Given upsert mode, a batch of two files (the first with a reject) and one file recorded FAILED, and
    # Snowflake finding one row of each file to keep out
    run = run_batch(2, failed=1, env=UPSERT, kept_out=1)
    # When it is published / Then one statement per step for both files together: before the lock, the lines a
    # later line of the same file repeats are marked and the parse rejects inserted; under it, the rows a newer
    # version or a later file writes are marked, counted, inserted as rejects, their keys' target rows deleted
    # and the rest inserted; then the ledger's UPDATE and COMMIT
    first = next(i for i, s in enumerate(run.sent) if s.sql.startswith(f"UPDATE {ROWS_STAGE} AS u SET UPSERT_SKIP_"))
    numbers = marks(2)
    assert run.texts()[run.texts().index(run.sent[first].sql) :] == [
        MARK_REPEATED.format(numbers=numbers),
        REJECTS_INSERT,
        monitoring_insert(3),
        lock_update(3),
        MARK_KEPT_OUT.format(lineage=lineage(2)),
        COUNT_KEPT_OUT.format(numbers=numbers),
        REJECT_KEPT_OUT.format(values=values(2, 6)),
        UPSERT_DELETE.format(numbers=numbers),
        rows_insert(2, " WHERE s.UPSERT_SKIP_ IS NULL"),
        finish_update(3),
        "COMMIT",
    ]
    # And the ledger counts each kept-out row as a reject of its file
    assert [(r.rows_loaded, r.rows_rejected) for r in run.results] == [(2, 2), (2, 1), (0, 0)]


@pytest.mark.parametrize("objects", [1, 3, 10])
@pytest.mark.parametrize("kept_out", [0, 1], ids=["nothing-kept-out", "rows-kept-out"])
def test_an_upsert_batch_holds_the_ledger_lock_for_at_most_eight_statements_whatever_its_size(
    objects: int, kept_out: int
) -> None:
    # Given upsert mode and a batch of 1, 3 or 10 files / When it is published
    run = run_batch(objects, env=UPSERT, kept_out=kept_out)
    # Then at most eight statements run under the ledger's lock (seven when no row is kept out: no rejects to
    # insert), the same for every size: one statement per step, never one per object
    under = run.under_the_lock()
    assert len(under) == (8 if kept_out else 7), [s.sql[:40] for s in under]
    assert sum(s.sql.startswith(f"UPDATE {LEDGER} SET LOCK_TOKEN") for s in run.sent) == 1


# --- properties of every statement ----------------------------------------------------------------------------
SCENARIOS: dict[str, Callable[[], Run]] = {
    "append": lambda: run_batch(3, failed=1, duplicates=1),
    "upsert": lambda: run_batch(3, failed=1, env=UPSERT, kept_out=1, duplicates=1),
    "content-rule": lambda: run_batch(2, content=True),
}


def test_the_four_part_check_finds_a_four_part_column_name() -> None:
    # Given the finishing UPDATE written without aliases, as it once was / When its names are checked
    # Then the column named by database, schema, table and column is found (so an empty result means something)
    found = four_part_names(f"UPDATE {LEDGER} SET STATUS = 'LOADED' WHERE {LEDGER}.LOAD_ID = 'x.y.z.w'")
    assert found == [f"{LEDGER}.LOAD_ID"]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_no_statement_names_a_column_by_four_parts(scenario: str) -> None:
    # Given a batch claimed, staged and published / When every statement it sent is read (values left out)
    run = SCENARIOS[scenario]()
    # Then no column is named DATABASE.SCHEMA.TABLE.COLUMN (Snowflake documents three-part object names; a
    # column is qualified by its table's alias)
    assert [(s.sql[:60], name) for s in run.adapters_own() for name in four_part_names(s.sql)] == []


LEDGER_REFERENCE = re.compile(rf"{re.escape(LEDGER)}(?: AS (\w+))?")
PRUNED = re.compile(rf"(?:\b(\w+)\.)?STARTED_AT >= {re.escape(RECENT)}")


@pytest.mark.parametrize("scenario", ["append", "upsert"])
def test_every_ledger_reference_under_the_lock_is_pruned_by_started_at(scenario: str) -> None:
    # Given a batch published (the ledger is appended to in STARTED_AT order; LOAD_KEY is a hash, which no
    # micro-partition's min/max excludes)
    run = SCENARIOS[scenario]()
    references = pruned = 0
    for sent in run.under_the_lock():
        # When each statement under the lock is read
        aliases = sorted(alias or "" for alias in LEDGER_REFERENCE.findall(sent.sql))
        predicates = sorted(alias or "" for alias in PRUNED.findall(sent.sql))
        # Then each reference to the ledger (by its alias, or unqualified) has its own STARTED_AT bound of
        # RECENT_SECONDS, in its own WHERE clause (the lock model's reading of the statement agrees)
        assert aliases == predicates, sent.sql
        assert unpruned_scans(sent.sql, LEDGER, "STARTED_AT", "D", "S") == 0, sent.sql
        references, pruned = references + len(aliases), pruned + len(predicates)
    # And there are three: the lock's, and the finishing UPDATE's target and subquery
    assert (references, pruned) == (3, 3)
    assert f"DATEADD(SECOND, -{RECENT_SECONDS}, " in RECENT


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_statement_carries_the_invocations_time_limit_in_its_own_request(scenario: str) -> None:
    # Given an invocation with 300 s left when its batch opens / When the batch runs
    run = SCENARIOS[scenario]()
    # Then every statement the adapter writes carries STATEMENT_TIMEOUT_IN_SECONDS (the time left less the
    # margin) as a parameter of its own query request: Snowflake cancels it (000630), no client timer does
    limits = [s.kwargs.get("_statement_params", {}).get("STATEMENT_TIMEOUT_IN_SECONDS") for s in run.adapters_own()]
    assert limits and all(isinstance(n, int) and LEFT - MARGIN - 5 <= n <= LEFT - MARGIN for n in limits), limits
    assert all(set(s.kwargs) == {"_statement_params"} for s in run.adapters_own())
    # And the only requests without one are write_pandas' and the connection's COMMIT, which the login's session
    # parameter bounds
    assert {s.via for s in run.sent} - {"cursor"} <= {"write_pandas", "commit"}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_statement_binds_as_many_values_as_it_has_markers(scenario: str) -> None:
    # Given a batch / When its statements are read / Then each %s has its value (the connector binds client-side)
    run = SCENARIOS[scenario]()
    assert [s.sql[:60] for s in run.adapters_own() if s.sql.count("%s") != len(s.params or ())] == []


def test_every_ddl_statement_is_a_no_op_when_its_object_exists() -> None:
    # Given a cold container (no table known) / When its first batch creates and widens the tables
    _, conn, warehouse = logged_in(BASE, [LEFT])
    with warehouse.batch() as batch:
        batch.ensure_target(COLUMNS)
        batch.staging(identity(0)).stage_rows(rows_frame(200_000), COLUMNS)  # a chunk's worth: written now
    # (and, having grown past CHUNK_ROWS, the staging table is dropped after the batch)
    ddl = [s.sql for s in conn.sent if s.sql.startswith(("CREATE", "ALTER", "DROP"))]
    # Then every DDL statement is idempotent, so that two sessions racing to run it both succeed
    assert ddl and all(
        sql.startswith(
            ("CREATE TABLE IF NOT EXISTS D.S.", "CREATE OR REPLACE TEMPORARY TABLE STG", "DROP TABLE IF EXISTS STG")
        )
        or re.match(r"ALTER TABLE D\.S\.\w+ ADD COLUMN IF NOT EXISTS ", sql)
        for sql in ddl
    ), ddl
    assert (
        f"CREATE TABLE IF NOT EXISTS {TARGET} (SAMPLE_ID VARCHAR, MEAN_RADIUS FLOAT, SOURCE_LINE NUMBER(19,0))" in ddl
    )
