"""Upsert end to end: merge keys written as missing-value markers (R's write.csv writes NA) never merge rows."""

from __future__ import annotations

from typing import Any

import pytest

from tests.csv_edits import set_sample_ids
from tests.ledger_invariant import check_every_delivery

UPSERT = {"LOAD_MODE": "upsert", "MERGE_KEYS": "SAMPLE_ID"}


@pytest.fixture(autouse=True)
def _ledger_tells_the_truth(harness: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    check_every_delivery(harness, monkeypatch)


# (every marker and spelling: tests/unit/test_merge_key_markers.py; here R's NA and a punctuation one)
@pytest.mark.parametrize("marker", ["NA", "-"])
def test_marker_keys_are_rejected_and_a_later_files_marker_row_deletes_nothing(
    harness: Any, make_csv: Any, marker: str
) -> None:
    # Given upsert on SAMPLE_ID, and a file of 6 rows where two different patients (lines 3 and 5) have the marker
    first = harness.invoke(
        harness.put("incoming/na-1.csv", make_csv(6, set_sample_ids({3: marker, 5: marker}))), **UPSERT
    )
    # Then the 4 keyed rows load and both marker rows are rejected, naming the column: they do not merge into one
    assert (first["rows_loaded"], first["rows_rejected"]) == (4, 2)
    rejects = harness.query("SELECT SOURCE_LINE, COLUMN_NAME, REASON FROM {rejects} ORDER BY SOURCE_LINE")
    assert [(r[0], r[1]) for r in rejects] == [(3, "sample_id"), (5, "sample_id")]
    assert all(
        r[2].startswith("missing merge key: column 'sample_id' is empty or a missing-value marker") for r in rejects
    )
    # When a later file brings a row with the same marker (in another case, padded)
    padded = f" {marker.lower()} "
    later = harness.invoke(harness.put("incoming/na-2.csv", make_csv(1, set_sample_ids({2: padded}))), **UPSERT)
    # Then it is rejected too and deletes nothing: the first file's rows are all there, as its ledger row says
    assert (later["rows_loaded"], later["rows_rejected"]) == (0, 1)
    assert harness.count() == 4
    loaded = "SELECT ROWS_LOADED FROM {ledger} WHERE STATUS = 'LOADED' ORDER BY ROWS_LOADED DESC"
    assert harness.query(loaded) == [(4,), (0,)]
