"""A challenger in shadow, through the handler on moto + fakesnow: it scores the same rows, the champion alone
decides, the agreement is stored per load, and its failures never cost the champion's rows.

The challenger is the shipped model under another version and a stricter threshold (0.999): the same
probabilities, so it disagrees exactly on the rows the champion calls malignant below 0.999.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from pipeline.challenger import Challenger
from tests.ledger_invariant import check_every_delivery

ROOT = Path(__file__).resolve().parents[2]
KEY = "incoming/challenger/wdbc.csv"
VERSION = "challenger-strict-0.999"


@pytest.fixture(autouse=True)
def _ledger_tells_the_truth(harness: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    check_every_delivery(harness, monkeypatch)


@pytest.fixture
def challenger_dir(tmp_path: Path) -> Path:
    """Given a challenger: the shipped model's files, another model version, a decision threshold of 0.999."""
    out = tmp_path / "challenger"
    out.mkdir()
    shutil.copy2(ROOT / "model" / "model.tflite", out / "model.tflite")
    metadata = json.loads((ROOT / "model" / "metadata.json").read_text())
    metadata |= {"model_version": VERSION, "decision_threshold": 0.999}
    (out / "metadata.json").write_text(json.dumps(metadata))
    return out


def _rows(harness: Any) -> list[tuple[Any, ...]]:
    return harness.query(
        "SELECT CLASSIFICATION, MALIGNANT_PROBABILITY, CHALLENGER_CLASSIFICATION, CHALLENGER_PROBABILITY, "
        "CHALLENGER_MODEL_VERSION, MODEL_VERSION FROM {target}"
    )


def _monitoring(harness: Any) -> tuple[Any, Any, dict[str, Any]]:
    [(version, agreement, detail)] = harness.query(
        "SELECT CHALLENGER_MODEL_VERSION, CHALLENGER_AGREEMENT, DRIFT_DETAIL FROM {monitoring}"
    )
    return version, agreement, json.loads(detail) if isinstance(detail, str) else detail


def test_the_challenger_scores_every_row_beside_the_champion_which_alone_decides(
    harness: Any, make_csv: Any, challenger_dir: Path
) -> None:
    # When the sample is delivered with a challenger
    summary = harness.invoke(harness.put(KEY, make_csv(569)), CHALLENGER_MODEL_DIR=str(challenger_dir))
    # Then every row has both models' scores: the champion's CLASSIFICATION at its own threshold (0.5), the
    # challenger's at 0.999, with the challenger's version beside the champion's
    rows = _rows(harness)
    assert len(rows) == 569
    for champion, p, challenger, q, challenger_version, model_version in rows:
        assert champion == int(p >= 0.5) and challenger == int(q >= 0.999)
        assert q == pytest.approx(p) and challenger_version == VERSION and model_version != VERSION
    # And they disagree only where 0.5 <= p < 0.999; the load's agreement is the share of rows they agree on
    agreed = sum(r[0] == r[2] for r in rows) / len(rows)
    assert 0 < agreed < 1
    version, agreement, _ = _monitoring(harness)
    assert version == VERSION and agreement == pytest.approx(agreed)
    assert summary["objects"][0]["challenger_agreement"] == pytest.approx(agreed)


def test_a_challenger_failing_on_a_file_never_costs_the_champions_rows(
    harness: Any, make_csv: Any, challenger_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a challenger whose scoring fails
    def failing(self: Challenger, batch: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_exception(MemoryError("the challenger ran out"))
        return future

    monkeypatch.setattr(Challenger, "submit", failing)
    # When a file is delivered
    summary = harness.invoke(harness.put(KEY, make_csv(40)), CHALLENGER_MODEL_DIR=str(challenger_dir))
    # Then every row loads with the champion's scores and NULL challenger columns
    assert summary["objects"][0]["rows_loaded"] == 40
    rows = _rows(harness)
    assert len(rows) == 40 and all(r[0] in (0, 1) and r[2] is None and r[3] is None for r in rows)
    # And the monitoring row names the failure by its type, with no agreement
    version, agreement, detail = _monitoring(harness)
    assert version == VERSION and agreement is None
    assert "MemoryError" in detail["challenger_failed"] and "ran out" not in detail["challenger_failed"]


def test_a_challenger_that_cannot_be_loaded_is_left_out(harness: Any, make_csv: Any, challenger_dir: Path) -> None:
    # Given a challenger whose .tflite is not the one its metadata names
    (challenger_dir / "model.tflite").write_bytes(b"not a model")
    # When a file is delivered
    summary = harness.invoke(harness.put(KEY, make_csv(10)), CHALLENGER_MODEL_DIR=str(challenger_dir))
    # Then the champion loads it alone: no challenger columns, no agreement
    assert summary["objects"][0]["rows_loaded"] == 10
    columns = {
        r[0] for r in harness.query("SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_NAME = '{target}'")
    }
    assert not {c for c in columns if c.startswith("CHALLENGER_")}
    version, agreement, _ = _monitoring(harness)
    assert version is None and agreement is None
