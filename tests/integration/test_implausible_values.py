"""Implausible values through the handler, on moto + fakesnow.

The file is the corpus's ``implausible_values.csv``: lines 2, 5 and 10 untouched; 3, 7 and 8 hold negative sizes
(impossible: rejected naming the column); 4 has a mean area of 1,000,000 and 6 an area error of 25,000 and a worst
area of 1,000,000 (far beyond the training range); 9 a mean radius of 0 (the domain's edge, and within the margin).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ledger_invariant import check_every_delivery

FILE = Path(__file__).resolve().parents[1] / "corpus" / "files" / "implausible_values.csv"
KEY = "incoming/implausible/values.csv"
IMPOSSIBLE = [(3, "mean radius"), (7, "mean perimeter"), (8, "mean area")]
BEYOND = "value beyond the training range by more than OUT_OF_RANGE_MARGIN (0.5 of the range) in column"


@pytest.fixture(autouse=True)
def _ledger_tells_the_truth(harness: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """After every delivery: the ledger (ROWS_FLAGGED included) tells the truth (tests/ledger_invariant.py)."""
    check_every_delivery(harness, monkeypatch)


@pytest.mark.parametrize(
    ("mode", "loaded", "rejected", "flags"),
    [
        ("flag", [2, 4, 5, 6, 9, 10], IMPOSSIBLE, {4: "MEAN_AREA", 6: "AREA_ERROR,WORST_AREA"}),
        ("reject", [2, 5, 9, 10], sorted([*IMPOSSIBLE, (4, "mean area"), (6, "area error")]), {}),
        ("off", [2, 4, 5, 6, 9, 10], IMPOSSIBLE, {}),
    ],
)
def test_the_three_settings_through_the_handler(
    harness: Any, mode: str, loaded: list[int], rejected: list[tuple[int, str]], flags: dict[int, str]
) -> None:
    # Given the file of negative sizes and huge areas
    event = harness.put(KEY, FILE.read_bytes())
    # When it is delivered under OUT_OF_RANGE=flag, reject or off
    summary = harness.invoke(event, OUT_OF_RANGE=mode)
    # Then the impossible rows are rejected naming the column and the rule, under every setting
    result = summary["objects"][0]
    assert (result["status"], result["rows_loaded"], result["rows_rejected"]) == ("loaded", len(loaded), len(rejected))
    rejects = harness.query("SELECT SOURCE_LINE, COLUMN_NAME, REASON FROM {rejects} ORDER BY SOURCE_LINE")
    assert [(r[0], r[1]) for r in rejects] == rejected
    for line, column, reason in rejects:
        expected = BEYOND if line in {4, 6} else "value below the valid minimum 0 in column"
        assert reason == f"{expected} {column!r}"
    # and the far out-of-range rows are flagged (flag), rejected (reject) or loaded as any other row (off); the
    # untouched rows and the radius of 0 load unflagged
    rows = harness.query("SELECT SOURCE_LINE, OUT_OF_RANGE_FEATURES FROM {target} ORDER BY SOURCE_LINE")
    assert [r[0] for r in rows] == loaded
    assert {r[0]: r[1] for r in rows if r[1] is not None} == flags
    assert result["rows_flagged"] == summary["rows_flagged"] == len(flags)
    [(rows_flagged,)] = harness.query("SELECT ROWS_FLAGGED FROM {ledger}")
    assert rows_flagged == len(flags)


def test_a_ledger_from_before_rows_flagged_gains_the_column(harness: Any) -> None:
    from adapters.snowflake import LEDGER_COLUMNS

    # Given a ledger as the function created it before ROWS_FLAGGED existed, with one load in it
    older = ", ".join(f"{n} {t}" for n, t in LEDGER_COLUMNS if n != "ROWS_FLAGGED")
    harness.query(f"CREATE TABLE {{ledger}} ({older})")
    harness.query(
        "INSERT INTO {ledger} (LOAD_KEY, SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, STATUS, LOAD_ID, ROWS_LOADED, "
        "ROWS_REJECTED) VALUES ('k', 'b', 'earlier.csv', 'v', 'LOADED', 'earlier', 3, 0)"
    )
    # When a file with flagged rows is loaded by the new function
    summary = harness.invoke(harness.put(KEY, FILE.read_bytes()))
    # Then the ledger has gained ROWS_FLAGGED (once), the new load records its 2 flagged rows, the old load is kept
    assert summary["objects"][0]["status"] == "loaded"
    columns = harness.query(
        "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = '{ledger}' AND COLUMN_NAME LIKE 'ROWS_%'"
    )
    assert sorted(c[0] for c in columns) == ["ROWS_FLAGGED", "ROWS_LOADED", "ROWS_REJECTED"]
    ledger = harness.query("SELECT SOURCE_KEY, ROWS_LOADED, ROWS_FLAGGED FROM {ledger} ORDER BY SOURCE_KEY")
    assert ledger == [("earlier.csv", 3, None), (KEY, 6, 2)]


def test_upsert_counts_only_the_flagged_rows_that_land(harness: Any) -> None:
    # Given the file with one more line repeating line 4's sample id (IMP-0003) with plausible values, in upsert mode
    lines = FILE.read_text(encoding="utf-8").splitlines()
    repeat = lines[3].replace("1000000", "1203.0")
    assert repeat.startswith("IMP-0003,") and repeat != lines[3]
    body = "\n".join([*lines, repeat]) + "\n"
    # When it is delivered
    summary = harness.invoke(harness.put(KEY, body.encode()), LOAD_MODE="upsert", MERGE_KEYS="SAMPLE_ID")
    # Then line 4 (flagged) is kept out by the later line 11 (unflagged), so one flagged row landed: line 6; the
    # ledger counts 1, not the 2 that were staged
    result = summary["objects"][0]
    assert (result["rows_loaded"], result["rows_rejected"], result["rows_flagged"]) == (6, 4, 1)
    flagged = harness.query("SELECT SOURCE_LINE FROM {target} WHERE OUT_OF_RANGE_FEATURES IS NOT NULL")
    assert flagged == [(6,)]


def test_the_sample_export_loads_without_a_flag(harness: Any, sample_bytes: bytes) -> None:
    # Given the 569 real rows (114 of them never trained on)
    event = harness.put("incoming/implausible/sample.csv", sample_bytes)
    # When they are delivered with the default settings (OUT_OF_RANGE=flag, margin 0.5)
    summary = harness.invoke(event)
    # Then every row loads, none is flagged, and the ledger says so
    assert (summary["rows_loaded"], summary["rows_rejected"], summary["rows_flagged"]) == (569, 0, 0)
    assert harness.query("SELECT COUNT(*) FROM {target} WHERE OUT_OF_RANGE_FEATURES IS NOT NULL") == [(0,)]
    assert harness.query("SELECT ROWS_FLAGGED FROM {ledger}") == [(0,)]
