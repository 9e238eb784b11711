"""A row the model cannot score is rejected, never labelled benign: through the handler, on moto + fakesnow.

Finite float32 inputs such as 3e38 make the shipped model return NaN; before, such a row loaded with
MALIGNANT_PROBABILITY NULL, CLASSIFICATION 0 and CONDITION benign (NaN >= threshold is false), unflagged under
OUT_OF_RANGE=off. Any model may do it (an imported one, or the fake below returning NaN, inf or 1.5).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from scoring import Scorer, Scores
from tests.ledger_invariant import check_every_delivery

KEY = "incoming/unscorable.csv"
REASON = "the model gave no finite probability in [0, 1] for this row; it is not labelled"


@pytest.fixture(autouse=True)
def _ledger_tells_the_truth(harness: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    check_every_delivery(harness, monkeypatch)


def _set_measurements(lines_to_value: dict[int, str]) -> Any:
    """An edit for make_csv: line number (header = 1) -> the text written in every measurement of that line."""

    def edit(lines: list[str]) -> list[str]:
        for line_no, value in lines_to_value.items():
            cells = lines[line_no - 1].split(",")
            lines[line_no - 1] = ",".join([cells[0]] + [value] * (len(cells) - 1))
        return lines

    return edit


def _assert_only_scored_rows_loaded(harness: Any, summary: dict[str, Any], rows: int, unscored: list[int]) -> None:
    result = summary["objects"][0]
    assert (result["status"], result["rows_loaded"], result["rows_rejected"]) == (
        "loaded",
        rows - len(unscored),
        len(unscored),
    )
    rejects = harness.query("SELECT SOURCE_LINE, COLUMN_NAME, REASON FROM {rejects} ORDER BY SOURCE_LINE")
    assert rejects == [(line, "MALIGNANT_PROBABILITY", REASON) for line in unscored]
    loaded = harness.query("SELECT SOURCE_LINE, MALIGNANT_PROBABILITY, CLASSIFICATION, CONDITION FROM {target}")
    assert sorted(r[0] for r in loaded) == [line for line in range(2, rows + 2) if line not in unscored]
    # every loaded row has a probability in [0, 1] and the label that goes with it
    assert all(r[1] is not None and 0.0 <= r[1] <= 1.0 for r in loaded)
    assert all(r[3] == ("malignant" if r[2] == 1 else "benign") for r in loaded)


@pytest.mark.parametrize(("value", "mode"), [("3e38", "off"), ("3.4e38", "flag")])
def test_finite_inputs_the_shipped_model_cannot_score_are_rejected(
    harness: Any, make_csv: Any, mode: str, value: str
) -> None:
    # Given a file of 6 rows whose line 4 holds, in every measurement, a finite float32 the model overflows on
    body = make_csv(6, _set_measurements({4: value}))
    # When it is delivered with the range check off (or flagging)
    summary = harness.invoke(harness.put(KEY, body), OUT_OF_RANGE=mode)
    # Then line 4 is rejected with the reason, and the 5 other rows of the chunk load, each properly labelled
    _assert_only_scored_rows_loaded(harness, summary, 6, [4])
    if mode == "flag":  # and the flags of the rows that load stay theirs (line 4's flag went with it)
        assert harness.count(where="OUT_OF_RANGE_FEATURES IS NOT NULL") == 0
        assert summary["rows_flagged"] == 0


MARKER = 11.11  # a mean radius the fake scorer below answers badly for


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1.5], ids=["nan", "inf", "1.5"])
def test_a_model_returning_an_unusable_probability_never_labels_the_row(
    harness: Any, make_csv: Any, monkeypatch: pytest.MonkeyPatch, bad: float
) -> None:
    # Given a model (a fake around the shipped one) that returns `bad` for rows with a mean radius of 11.11, and
    # labels every row at 0.5 as a naive model would (NaN as benign, 1.5 as malignant)
    original = Scorer.score

    def score(self: Scorer, features: Any) -> Scores:
        probability = original(self, features).malignant_probability.copy()
        probability[np.asarray(features)[:, 0] == np.float32(MARKER)] = bad
        with np.errstate(invalid="ignore"):
            classification = (probability >= 0.5).astype(np.int8)
        return Scores(probability, classification)

    monkeypatch.setattr(Scorer, "score", score)

    def edit(lines: list[str]) -> list[str]:
        for line_no in (3, 6):
            cells = lines[line_no - 1].split(",")
            cells[1] = str(MARKER)
            lines[line_no - 1] = ",".join(cells)
        return lines

    # When a file of 7 rows, lines 3 and 6 with that radius, is delivered (range check off)
    summary = harness.invoke(harness.put(KEY, make_csv(7, edit)), OUT_OF_RANGE="off")
    # Then lines 3 and 6 are rejected with the reason; the other rows load, each with its probability and label
    _assert_only_scored_rows_loaded(harness, summary, 7, [3, 6])
