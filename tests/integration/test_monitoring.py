"""Per-file monitoring through the handler, on moto + fakesnow: one row per load in MONITORING_TABLE, written in the
load's own transaction (tests/ledger_invariant.py checks one row per LOADED or FAILED load after every delivery).

The shipped model's reference profile is the labelled sample's 569 rows (model/metadata.json, "monitoring").
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from monitoring import FileMonitor
from pipeline.errors import WarehouseUnavailableError
from tests.ledger_invariant import check_every_delivery

KEY = "incoming/monitoring/wdbc.csv"
COLUMNS = (
    "LOAD_ID, ROWS_SCORED, DRIFT_DETECTED, DRIFT_SCORE, DRIFTED_FEATURES, ESTIMATED_ACCURACY, ESTIMATED_ACCURACY_LOW, "
    "ESTIMATED_ACCURACY_HIGH, PREDICTED_MALIGNANT_SHARE, REFERENCE_MALIGNANT_SHARE, MODEL_VERSION, SOURCE_KEY"
)


@pytest.fixture(autouse=True)
def _ledger_tells_the_truth(harness: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    check_every_delivery(harness, monkeypatch)


def _divide_column(column: int, by: float) -> Any:
    """An edit for make_csv: every data line's ``column``-th field (0-based) divided by ``by``."""

    def edit(lines: list[str]) -> list[str]:
        out = [lines[0]]
        for line in lines[1:]:
            cells = line.split(",")
            cells[column] = repr(float(cells[column]) / by)
            out.append(",".join(cells))
        return out

    return edit


def _monitoring(harness: Any) -> list[dict[str, Any]]:
    names = [c.strip() for c in COLUMNS.split(",")]
    return [dict(zip(names, row, strict=True)) for row in harness.query(f"SELECT {COLUMNS} FROM {{monitoring}}")]


def test_a_file_like_the_reference_loads_with_one_monitoring_row_and_no_drift(harness: Any, make_csv: Any) -> None:
    # Given the sample file, which is the model's reference
    event = harness.put(KEY, make_csv(569))
    # When it is delivered twice
    summary = harness.invoke(event)
    again = harness.invoke(event)
    # Then one monitoring row, for its load, says no drift, and an accuracy estimate whose interval holds it
    [row] = _monitoring(harness)
    [(load_id, model_version)] = harness.query("SELECT LOAD_ID, MODEL_VERSION FROM {ledger} WHERE STATUS = 'LOADED'")
    assert (row["LOAD_ID"], row["MODEL_VERSION"], row["SOURCE_KEY"]) == (load_id, model_version, KEY)
    assert row["ROWS_SCORED"] == 569 and row["DRIFT_DETECTED"] is False and row["DRIFTED_FEATURES"] is None
    assert 0 <= row["DRIFT_SCORE"] < 1
    assert 0.8 <= row["ESTIMATED_ACCURACY_LOW"] <= row["ESTIMATED_ACCURACY"] <= row["ESTIMATED_ACCURACY_HIGH"] <= 1
    # and the predicted malignant share is the reference's (the same rows)
    assert row["PREDICTED_MALIGNANT_SHARE"] == pytest.approx(row["REFERENCE_MALIGNANT_SHARE"], abs=1e-6)
    # and the load's result carries the verdict; the duplicate delivery added no row
    result = summary["objects"][0]
    assert (result["drift_detected"], result["estimated_accuracy"]) == (False, row["ESTIMATED_ACCURACY"])
    assert again["objects"][0]["status"] == "duplicate"


def test_a_unit_error_in_one_feature_is_detected_and_named(harness: Any, make_csv: Any) -> None:
    # Given 200 rows whose mean radius (the second field, after SAMPLE_ID) was exported in centimetres
    body = make_csv(200, _divide_column(1, 10))
    # When delivered
    harness.invoke(harness.put(KEY, body))
    # Then the load's monitoring row says drift, and names MEAN_RADIUS
    [row] = _monitoring(harness)
    assert row["DRIFT_DETECTED"] is True and row["DRIFT_SCORE"] >= 1
    assert "MEAN_RADIUS" in row["DRIFTED_FEATURES"].split(",")
    [(detail,)] = harness.query("SELECT DRIFT_DETAIL FROM {monitoring}")
    feature = (json.loads(detail) if isinstance(detail, str) else detail)["features"]["MEAN_RADIUS"]
    assert feature["drifted"] is True and 0.05 < feature["median_ratio"] < 0.2


def test_a_failed_file_has_a_monitoring_row_with_nothing_scored(harness: Any) -> None:
    # Given a file with a header but no rows / When delivered
    summary = harness.invoke(harness.put(KEY, b"mean radius,mean texture\n"))
    # Then it failed, and its monitoring row says nothing was scored
    assert summary["objects"][0]["status"] == "failed"
    [row] = _monitoring(harness)
    assert row["ROWS_SCORED"] == 0 and row["DRIFT_DETECTED"] is None and row["ESTIMATED_ACCURACY"] is None


def test_a_failure_inside_monitoring_never_costs_the_rows(
    harness: Any, make_csv: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given monitoring that breaks on every chunk
    def broken(self: Any, *args: Any) -> None:
        raise FloatingPointError("a bug in monitoring")

    monkeypatch.setattr(FileMonitor, "_add", broken)
    # When a file is delivered
    summary = harness.invoke(harness.put(KEY, make_csv(50)))
    # Then every row loads, and its monitoring row says monitoring failed (by the error's type, never its text)
    assert summary["objects"][0]["rows_loaded"] == 50 and harness.count() == 50
    [row] = _monitoring(harness)
    assert row["DRIFT_DETECTED"] is None and row["ESTIMATED_ACCURACY"] is None
    [(detail,)] = harness.query("SELECT DRIFT_DETAIL FROM {monitoring}")
    failed = (json.loads(detail) if isinstance(detail, str) else detail)["monitoring_failed"]
    assert "FloatingPointError" in failed and "a bug" not in failed


def test_files_of_easy_rows_are_estimated_more_accurate_than_files_of_hard_rows(harness: Any, make_csv: Any) -> None:
    # Given the sample's rows the model is surest about, and those it is least sure about (by its own probability)
    from pathlib import Path

    from scoring import Scorer

    root = Path(__file__).resolve().parents[2]
    scorer = Scorer.load(root / "model")
    lines = make_csv(569).decode().splitlines()
    values = np.array([[float(v) for v in line.split(",")[1:]] for line in lines[1:]], dtype=np.float32)
    confidence = np.abs(scorer.score(values).malignant_probability - 0.5)
    order = np.argsort(confidence)
    hard = "\n".join([lines[0], *(lines[1 + i] for i in order[:60])]) + "\n"
    easy = "\n".join([lines[0], *(lines[1 + i] for i in order[-60:])]) + "\n"
    # When both are delivered
    harness.invoke(harness.put("incoming/monitoring/hard.csv", hard.encode()))
    harness.invoke(harness.put("incoming/monitoring/easy.csv", easy.encode()))
    # Then the easy file's estimate is the higher
    rows = {r["SOURCE_KEY"].rsplit("/", 1)[1]: r["ESTIMATED_ACCURACY"] for r in _monitoring(harness)}
    assert rows["easy.csv"] > rows["hard.csv"]


def test_a_monitoring_table_that_refuses_its_row_holds_the_load_back_never_fails_the_file(
    harness: Any, make_csv: Any
) -> None:
    # Given a monitoring table an operator created wrongly (DRIFT_SCORE a DATE: every row's insert is refused)
    harness.query(
        "CREATE TABLE {monitoring} (LOAD_ID VARCHAR, SOURCE_BUCKET VARCHAR, SOURCE_KEY VARCHAR, "
        "SOURCE_VERSION VARCHAR, MODEL_VERSION VARCHAR, MONITORED_AT TIMESTAMP_TZ, ROWS_SCORED NUMBER, "
        "DRIFT_DETECTED BOOLEAN, DRIFT_SCORE DATE, DRIFTED_FEATURES VARCHAR, ESTIMATED_ACCURACY FLOAT, "
        "ESTIMATED_ACCURACY_LOW FLOAT, ESTIMATED_ACCURACY_HIGH FLOAT, PREDICTED_MALIGNANT_SHARE FLOAT, "
        "REFERENCE_MALIGNANT_SHARE FLOAT, DRIFT_DETAIL VARIANT)"
    )
    event = harness.put(KEY, make_csv(20))
    # When the file is delivered
    with pytest.raises(WarehouseUnavailableError) as raised:
        harness.invoke(event)
    # Then nothing of it is published, it is not recorded FAILED, and the error is retriable, naming the table
    assert raised.value.retriable and raised.value.reason == "monitoring_table_refused"
    assert harness.count() == 0
    assert harness.query("SELECT STATUS FROM {ledger}") == [("STARTED",)]
    # And once the table is fixed, the redelivery loads it with its monitoring row
    harness.query("DROP TABLE {monitoring}")
    assert harness.invoke(event)["objects"][0]["status"] == "loaded"
    assert harness.count() == 20 and len(_monitoring(harness)) == 1
