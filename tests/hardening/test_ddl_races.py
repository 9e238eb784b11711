"""Every DDL statement the function runs, run by two sessions at the same moment.

The function creates the ledger, the rejects table and the target, adds the columns a file brings to the target
(``ALTER TABLE ... ADD COLUMN IF NOT EXISTS``, including the lineage columns an older target lacks), and creates
its temporary staging tables. Each statement is run here from two Snowflake sessions (two containers) released
together by a barrier placed right before it, i.e. after both have read INFORMATION_SCHEMA and decided to run
it. Each session must succeed, or fail with a retriable error whose retry succeeds; never a permanent error,
which would record the file as FAILED for good. Then the table holds every column exactly once.

This relies on fakesnow's behaviour, which is not Snowflake's: fakesnow runs the two statements one after the
other on its one DuckDB database (in this suite's runs both sessions' statements succeeded), while Snowflake
takes its own DDL locks. "Succeeds, or retriable and the retry succeeds" is what is asserted, so that a
conflict reported by either counts as handled; tests/integration/test_real_snowflake.py runs the ALTER race on a
real account. On main, the second ``ADD COLUMN`` failed with "column already exists", classified as permanent
(the four ALTER cases fail there; the CREATE cases already passed: they were the class, not the bug).
"""

from __future__ import annotations

import contextlib
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest

from pipeline.errors import PermanentError, RetriableError
from tests.hardening.conftest import Warehouse
from tests.hardening.test_duplicates import _two_containers
from tests.ledger_invariant import assert_ledger_matches_tables

EXTRA = "clinic"  # a column the target does not have yet


class AtOnce:
    """Holds each thread's first statement matching ``pattern`` until every party has reached one."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, pattern: str, parties: int = 2) -> None:
        from snowflake.connector.cursor import SnowflakeCursor

        self.armed = True
        self.reached = 0
        barrier = threading.Barrier(parties, timeout=60)
        waited = threading.local()
        matcher = re.compile(pattern, re.IGNORECASE | re.DOTALL)
        original = SnowflakeCursor.execute

        def execute(cursor: Any, command: str, *args: Any, **kwargs: Any) -> Any:
            if self.armed and matcher.search(command) and not getattr(waited, "done", False):
                waited.done = True
                self.reached += 1
                with contextlib.suppress(threading.BrokenBarrierError):  # the other one stopped early: go on
                    barrier.wait()
            return original(cursor, command, *args, **kwargs)

        monkeypatch.setattr(SnowflakeCursor, "execute", execute)


def _in_parallel(work: list[Callable[[], None]]) -> list[BaseException | None]:
    outcomes: list[BaseException | None] = [None] * len(work)

    def run(i: int) -> None:
        try:
            work[i]()
        except BaseException as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in threads), "a DDL statement hung"
    return outcomes


@pytest.fixture
def containers(harness: Any, monkeypatch: pytest.MonkeyPatch, modelled_port: int) -> Iterator[list[Any]]:
    """Two containers on the Snowflake model (Snowflake's table locks: the same file twice loads once)."""
    pipelines = _two_containers(harness, monkeypatch, modelled_port)
    yield pipelines
    for pipeline in pipelines:
        pipeline.warehouse.close()


def _identity() -> Any:
    from pipeline.ports import LoadIdentity, new_load_id

    return LoadIdentity("bucket", f"incoming/ddl-{uuid.uuid4().hex[:6]}.csv", "v1", new_load_id())


def _target_columns(pipeline: Any, *, extra: bool) -> list[tuple[str, str]]:
    from pipeline.output import OutputLayout

    metadata = pipeline.scorer.metadata
    header = ["sample_id", *metadata.feature_names, *([EXTRA] if extra else [])]
    columns: list[tuple[str, str]] = OutputLayout(header, metadata, pipeline.settings).ddl_columns()
    return columns


def _without(columns: list[tuple[str, str]], names: set[str]) -> list[tuple[str, str]]:
    return [c for c in columns if c[0] not in names]


def _stage_one_reject(batch: Any) -> None:
    staging = batch.staging(_identity())
    i = staging.identity
    staging.stage_rejects(
        pd.DataFrame(
            {
                "LOAD_ID": [i.load_id],
                "SOURCE_BUCKET": [i.bucket],
                "SOURCE_KEY": [i.key],
                "SOURCE_VERSION": [i.version],
                "SOURCE_LINE": [2],
                "COLUMN_NAME": ["mean radius"],
                "REASON": ["test"],
                "RAW_TEXT": ["x"],
            }
        )
    )
    batch._flush(batch._rejects)  # the staging write: creates the batch's temporary table, then PUT + COPY
    [(count,)] = batch._execute(f"SELECT COUNT(*) FROM {batch._rejects.name}", what="count").fetchall()
    assert count == 1  # a temporary table is the session's own: it never sees the other session's row


# Each case: the statement the barrier holds, what a container does to reach it, and what the table must hold after.
# ``setup`` runs first on one container alone (e.g. a target as main created it, without the newer columns).
DDL_CASES: dict[str, dict[str, Any]] = {
    "create-ledger": {"pattern": r"^CREATE TABLE IF NOT EXISTS \S+\.{ledger}\b", "table": "ledger"},
    "create-rejects": {"pattern": r"^CREATE TABLE IF NOT EXISTS \S+\.{rejects}\b", "table": "rejects"},
    "create-target": {"pattern": r"^CREATE TABLE IF NOT EXISTS \S+\.{target}\b", "table": "target"},
    "alter-target-add-extra-column": {
        "pattern": rf"^ALTER TABLE \S+\.{{target}}\b.*\b{EXTRA.upper()}\b",
        "table": "target",
        "setup": lambda p: _target_columns(p, extra=False),
        "extra": True,
    },
    "alter-target-add-lineage-columns": {
        "pattern": r"^ALTER TABLE \S+\.{target}\b.*\bSOURCE_SEQUENCER\b",
        "table": "target",
        "setup": lambda p: _without(_target_columns(p, extra=False), {"SOURCE_SEQUENCER", "SOURCE_LAST_MODIFIED"}),
    },
    "create-temporary-staging-table": {"pattern": r"^CREATE OR REPLACE TEMPORARY TABLE STG[RX]_", "table": None},
}


@pytest.mark.parametrize("case", list(DDL_CASES))
def test_every_ddl_statement_run_by_two_sessions_at_once_succeeds_or_retries(
    harness: Any, warehouse: Warehouse, containers: list[Any], monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    spec = DDL_CASES[case]
    columns = _target_columns(containers[0], extra=bool(spec.get("extra")))

    def work(pipeline: Any) -> Callable[[], None]:
        def run() -> None:
            with pipeline.warehouse.batch() as batch:  # the first batch creates ledger + rejects
                if spec["table"] == "target":
                    batch.ensure_target(columns)
                if spec["table"] is None:
                    _stage_one_reject(batch)

        return run

    # Given two containers, and (for an ALTER) the target as an earlier load left it
    if "setup" in spec:
        with containers[0].warehouse.batch() as batch:
            batch.ensure_target(spec["setup"](containers[0]))
    # When both run the statement at the same moment
    at_once = AtOnce(monkeypatch, spec["pattern"].format(**harness.tables))
    outcomes = _in_parallel([work(p) for p in containers])
    assert at_once.reached == 2, "both sessions must have reached the statement"
    at_once.armed = False
    # Then neither failed for good: each succeeded, or failed retriably and its retry succeeds
    for outcome in outcomes:
        assert outcome is None or isinstance(outcome, RetriableError), repr(outcome)
        assert not isinstance(outcome, PermanentError)
    for pipeline, outcome in zip(containers, outcomes, strict=True):
        if outcome is not None:
            work(pipeline)()
    # and the table holds each of its columns exactly once
    if spec["table"] is not None:
        from adapters.snowflake import LEDGER_COLUMNS, REJECTED_AT
        from pipeline.ports import REJECT_COLUMNS

        expected = {
            "ledger": [n for n, _ in LEDGER_COLUMNS],
            "rejects": [n for n, _ in [*REJECT_COLUMNS, REJECTED_AT]],
            "target": [n for n, _ in columns],
        }[spec["table"]]
        name = harness.tables[spec["table"]]
        found = warehouse.query(
            f"SELECT COLUMN_NAME, COUNT(*) FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = '{name}' "
            "GROUP BY COLUMN_NAME"
        )
        assert sorted(found) == sorted((n, 1) for n in expected)


@pytest.mark.parametrize("same_object", [False, True], ids=["two-files", "one-file-twice"])
def test_two_loads_adding_the_same_new_column_at_once_both_load(
    harness: Any,
    warehouse: Warehouse,
    containers: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    make_csv: Callable[..., bytes],
    same_object: bool,
) -> None:
    from pipeline.batch import handle

    # Given a target created by an earlier load, and files that bring a new column, delivered to two containers
    # at once; both read INFORMATION_SCHEMA, both decide to add the column, and meet right before the ALTER
    def with_clinic(lines: list[str]) -> list[str]:
        return [lines[0] + f",{EXTRA}"] + [line + ",north" for line in lines[1:]]

    assert handle(harness.put("incoming/ddl/first.csv", make_csv(3)), containers[0])["rows_loaded"] == 3
    events = [harness.put("incoming/ddl/a.csv", make_csv(20, with_clinic))]
    events.append(events[0] if same_object else harness.put("incoming/ddl/b.csv", make_csv(30, with_clinic)))
    at_once = AtOnce(monkeypatch, rf"^ALTER TABLE \S+\.{harness.tables['target']}\b.*\b{EXTRA.upper()}\b")

    # When both deliveries run
    def deliver(i: int) -> Callable[[], None]:
        def run() -> None:
            statuses[i] = handle(events[i], containers[i])["objects"][0]["status"]

        return run

    statuses: list[str | None] = [None, None]
    outcomes = _in_parallel([deliver(0), deliver(1)])
    assert at_once.reached == 2, "both deliveries must have reached the ALTER"
    at_once.armed = False
    # Then no delivery failed for good; Lambda's retry of a retriable loser completes it
    for i, outcome in enumerate(outcomes):
        assert outcome is None or isinstance(outcome, RetriableError), repr(outcome)
        if outcome is not None:
            deliver(i)()
    assert "failed" not in statuses
    # and every row landed once, with the new column; no ledger row says FAILED
    expected = 3 + (20 if same_object else 50)
    assert sorted(s for s in statuses if s) == (["duplicate", "loaded"] if same_object else ["loaded", "loaded"])
    assert warehouse.count("target") == expected
    assert warehouse.count("target", f"{EXTRA.upper()} = 'north'") == expected - 3
    assert [r[0] for r in warehouse.ledger() if r[0] != "STARTED"] == ["LOADED"] * (2 if same_object else 3)
    assert_ledger_matches_tables(warehouse.query, harness.tables)
