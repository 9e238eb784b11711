"""The ledger tells the truth: for every load, its counts equal the rows that load put in the tables.

``assert_ledger_matches_tables`` is called after every delivery in the suites that load (tests/integration,
tests/hardening/test_faults.py, test_duplicates.py, test_ddl_races.py, test_upsert_order.py). It checks the loads
the delivery just finished, right after it, every one of them: the counts are what each load left in the tables
when its transaction committed. In upsert mode a later delivery may replace an earlier load's rows, which is what
upsert means, so an earlier delivery's loads are not checked again. Within one delivery (one SQS batch, one
transaction) nothing is exempt: rows of a file that a later file of the same batch replaced are that file's
rejects (tests/integration/test_batches.py::test_upsert_files_sharing_merge_keys_count_what_each_left_in_the_tables).

The monitoring table (when ``tables`` names one) holds exactly one row per LOADED or FAILED load, none for a
STARTED one, and none whose load the ledger does not record as LOADED or FAILED: never a monitoring row without
its load, nor a load without its row. A LOADED load scored at least the rows it loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

Query = Callable[[str], list[tuple[Any, ...]]]


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _table_exists(query: Query, table: str) -> bool:
    rows = query(f"SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = {_quoted(table)}")
    return bool(rows[0][0])


def ledger_vs_tables(query: Query, tables: dict[str, str], load_ids: Iterable[str] | None = None) -> list[str]:
    """Each disagreement between the ledger and the tables, as text (empty when they agree).

    ``load_ids``: the loads to check (None: every ledger row). A LOADED row's ROWS_LOADED / ROWS_REJECTED must
    equal the target / rejects rows carrying its LOAD_ID, and its ROWS_FLAGGED the target rows among them with
    OUT_OF_RANGE_FEATURES set; a FAILED or STARTED row must have none.
    """
    if not _table_exists(query, tables["ledger"]):
        return []
    where = "TRUE" if load_ids is None else f"LOAD_ID IN ({', '.join(_quoted(i) for i in load_ids) or 'NULL'})"
    ledger = query(
        f"SELECT LOAD_ID, STATUS, ROWS_LOADED, ROWS_REJECTED, ROWS_FLAGGED FROM {tables['ledger']} WHERE {where}"
    )
    problems = []
    for load_id, status, rows_loaded, rows_rejected, rows_flagged in ledger:
        landed = []
        for table, condition in (
            ("target", "TRUE"),
            ("rejects", "TRUE"),
            ("target", "OUT_OF_RANGE_FEATURES IS NOT NULL"),
        ):
            if not _table_exists(query, tables[table]):
                landed.append(0)
                continue
            count = query(
                f"SELECT COUNT(*) FROM {tables[table]} WHERE LOAD_ID = {_quoted(str(load_id))} AND {condition}"
            )
            landed.append(int(count[0][0]))
        counts = [rows_loaded, rows_rejected, rows_flagged]
        expected = [int(c or 0) for c in counts] if status == "LOADED" else [0, 0, 0]
        if landed != expected:
            problems.append(
                f"load {load_id} ({status}): ledger says loaded/rejected/flagged {expected}, the tables hold {landed}"
            )
        problems += _monitoring_vs_ledger(query, tables, str(load_id), status, int(rows_loaded or 0))
    if tables.get("monitoring") and _table_exists(query, tables["monitoring"]):
        orphans = query(
            f"SELECT COUNT(*) FROM {tables['monitoring']} AS m WHERE NOT EXISTS (SELECT 1 FROM {tables['ledger']} "
            "AS l WHERE l.LOAD_ID = m.LOAD_ID AND l.STATUS IN ('LOADED', 'FAILED'))"
        )
        if int(orphans[0][0]):
            problems.append(f"{orphans[0][0]} monitoring rows have no LOADED or FAILED load in the ledger")
    return problems


def _monitoring_vs_ledger(query: Query, tables: dict[str, str], load_id: str, status: str, loaded: int) -> list[str]:
    table = tables.get("monitoring")
    if not table:
        return []
    rows = (
        query(f"SELECT ROWS_SCORED, LOAD_ID FROM {table} WHERE LOAD_ID = {_quoted(load_id)}")
        if _table_exists(query, table)
        else []
    )
    expected = 1 if status in {"LOADED", "FAILED"} else 0
    if len(rows) != expected:
        return [f"load {load_id} ({status}): {len(rows)} monitoring rows, {expected} expected"]
    if status == "FAILED" and int(rows[0][0] or 0) != 0:
        return [f"load {load_id} (FAILED): its monitoring row says {rows[0][0]} rows scored"]
    if status == "LOADED" and int(rows[0][0] or 0) < loaded:  # upsert may keep scored rows out, as rejects
        return [f"load {load_id}: monitoring says {rows[0][0]} rows scored, the ledger {loaded} loaded"]
    return []


def assert_ledger_matches_tables(query: Query, tables: dict[str, str], load_ids: Iterable[str] | None = None) -> None:
    problems = ledger_vs_tables(query, tables, load_ids)
    assert not problems, "; ".join(problems)


def assert_summary_matches_ledger(query: Query, tables: dict[str, str], summary: dict[str, Any]) -> None:
    """After one delivery: each object it loaded or failed agrees with its ledger row and with the tables."""
    finished = [o for o in summary.get("objects", []) if o.get("status") in {"loaded", "failed"}]
    for obj in finished:
        [(status, rows_loaded, rows_rejected, rows_flagged)] = query(
            f"SELECT STATUS, ROWS_LOADED, ROWS_REJECTED, ROWS_FLAGGED FROM {tables['ledger']} "
            f"WHERE LOAD_ID = {_quoted(str(obj['load_id']))}"
        )
        assert status == obj["status"].upper(), (status, obj)
        assert (int(rows_loaded or 0), int(rows_rejected or 0)) == (obj["rows_loaded"], obj["rows_rejected"]), obj
        assert int(rows_flagged or 0) == obj["rows_flagged"], obj
    assert_ledger_matches_tables(query, tables, [str(o["load_id"]) for o in finished])


def check_every_delivery(harness: Any, monkeypatch: Any) -> None:
    """Wrap ``harness.invoke`` so that after every delivery the ledger's counts (ROWS_FLAGGED included) equal
    the rows those loads put in the target and rejects tables, and the summary says the same."""
    invoke = harness.invoke

    def invoke_and_check(event: dict[str, Any], **env: str) -> dict[str, Any]:
        summary: dict[str, Any] = invoke(event, **env)
        assert_summary_matches_ledger(harness.query, harness.tables, summary)
        return summary

    monkeypatch.setattr(harness, "invoke", invoke_and_check)
