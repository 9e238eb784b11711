"""Every corpus input (tests/corpus/manifest.json) through the handler on moto + fakesnow, delivered twice.

For each input: the handler does not raise; the outcome is the manifest's; a failed file has a specific reason
in the ledger; a partly bad file loads its good rows and rejects the others with line, column and reason; and
the second delivery changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.corpus.generators import GENERATORS, max_length_key
from tests.hardening.conftest import CORPUS, Warehouse, load_manifest, quoted

CASES = load_manifest()


def _body(case: dict[str, Any]) -> bytes:
    if "generator" in case:
        return GENERATORS[case["generator"]](CORPUS / "files")
    return Path(CORPUS / case["file"]).read_bytes()


def _key(case: dict[str, Any]) -> str:
    return max_length_key() if case["key"] == "max_length_key" else str(case["key"])


def test_the_corpus_is_big_enough_and_every_input_exists() -> None:
    # Given the manifest / Then it has at least 30 inputs, unique ids, and each names a file or a generator
    assert len(CASES) >= 30
    assert len({c["id"] for c in CASES}) == len(CASES)
    for case in CASES:
        assert ("file" in case) != ("generator" in case), case["id"]
        assert "generator" not in case or case["generator"] in GENERATORS, case["id"]
        assert "file" not in case or (CORPUS / case["file"]).is_file(), case["id"]
        assert case["expect"]["status"] in {"loaded", "failed"}, case["id"]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_corpus_input(harness: Any, warehouse: Warehouse, case: dict[str, Any]) -> None:
    expect = case["expect"]
    env = case.get("env", {})
    key = _key(case)
    # Given the input uploaded, and the S3 event for it
    event = harness.put(key, _body(case))
    if case.get("setup") == "delete_after_event":
        harness.stack.client("s3").delete_object(Bucket=harness.bucket, Key=key)

    # When the event is delivered (the handler must not raise: every case here is permanent or fine)
    first = harness.invoke(event, **env)
    after_first = warehouse.snapshot()
    # and delivered again
    second = harness.invoke(event, **env)

    # Then the outcome is the manifest's
    result = first["objects"][0]
    assert result["key"] == key
    assert result["status"] == expect["status"], result
    where = f"SOURCE_KEY = {quoted(key)}"
    if expect["status"] == "loaded":
        assert (result["rows_loaded"], result["rows_rejected"]) == (expect["rows_loaded"], expect["rows_rejected"])
        if "rows_blank" in expect:
            assert result["rows_blank"] == expect["rows_blank"]
        # the good rows are in the target, each once, and the ledger agrees
        assert warehouse.count("target", where) == expect["rows_loaded"]
        assert warehouse.ledger(key) == [("LOADED", expect["rows_loaded"], expect["rows_rejected"], None, None)]
        # every bad row is in the rejects table with its line, column and a specific reason
        rejects = warehouse.query(
            f"SELECT SOURCE_LINE, COLUMN_NAME, REASON, RAW_TEXT FROM {{rejects}} WHERE {where} ORDER BY SOURCE_LINE"
        )
        assert [(r[0], r[1]) for r in rejects] == [(line, column) for line, column, _ in expect["rejects"]]
        for (_, _, reason, raw), (_, _, expected_reason) in zip(rejects, expect["rejects"], strict=True):
            assert expected_reason in reason
            assert raw  # the raw text is kept (only here) so the row can be fixed and re-sent
        # and exactly the rows the manifest names are flagged as far outside the training data, with the columns it
        # names; every other row's OUT_OF_RANGE_FEATURES is NULL, and the ledger counts the flagged rows
        flagged = warehouse.query(
            f"SELECT SOURCE_LINE, OUT_OF_RANGE_FEATURES FROM {{target}} WHERE {where} "
            "AND OUT_OF_RANGE_FEATURES IS NOT NULL ORDER BY SOURCE_LINE"
        )
        assert [list(r) for r in flagged] == expect.get("flags", [])
        assert result["rows_flagged"] == len(flagged)
        assert warehouse.query(f"SELECT ROWS_FLAGGED FROM {{ledger}} WHERE {where}") == [(len(flagged),)]
        # and values land in the right columns, exactly as written
        for line, column, value in expect.get("values", []):
            stored = warehouse.query(f"SELECT {column} FROM {{target}} WHERE {where} AND SOURCE_LINE = {int(line)}")
            assert stored == [(value,)], (line, column)
    else:
        assert result["reason_code"] == expect["reason_code"], result
        assert result["reason"]
        assert expect.get("reason_contains", "") in result["reason"]
        [(status, loaded, rejected, reason_code, reason)] = warehouse.ledger(key)
        assert (status, loaded, rejected, reason_code) == ("FAILED", 0, 0, expect["reason_code"])
        assert reason == result["reason"]
        assert warehouse.count("target") == 0 and warehouse.count("rejects") == 0

    # and the second delivery is a duplicate that changes nothing
    assert second["objects"][0]["status"] == "duplicate"
    assert warehouse.snapshot() == after_first
