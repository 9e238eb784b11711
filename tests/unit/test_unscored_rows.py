"""A row the model gives no finite probability in [0, 1] is never labelled: the scorer marks it, the pipeline
turns it into a reject (pipeline.output.reject_unscored) while the chunk's other rows go on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipeline.features import ConvertedFeatures, RowProblem
from pipeline.output import UNSCORED_COLUMN, reject_unscored
from scoring import Scorer, Scores
from scoring.scorer import NO_CLASS

FLOAT32_MAX = float(np.finfo(np.float32).max)
SAMPLE_CSV = Path(__file__).resolve().parents[2] / "data" / "breast_cancer.csv"


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.load()


def _labelled_as_a_naive_model_would(probability: list[float]) -> Scores:
    """A fake scorer's answer: every row classified at 0.5, NaN and all (NaN >= 0.5 is false: benign)."""
    p = np.array(probability, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        classification = (p >= 0.5).astype(np.int8)
    return Scores(p, classification)


@pytest.mark.parametrize(
    ("probability", "scored"),
    [
        (0.0, True),
        (1.0, True),
        (0.73, True),
        (float("nan"), False),
        (float("inf"), False),
        (float("-inf"), False),
        (1.5, False),
        (-0.1, False),
        (1.0000001, False),
    ],
)
def test_only_a_finite_probability_within_0_and_1_is_scored(probability: float, scored: bool) -> None:
    # Given what a model returned for a row
    scores = _labelled_as_a_naive_model_would([probability])
    # Then the row counts as scored only when its probability is finite and within [0, 1]
    assert scores.scored.tolist() == [scored]


@pytest.mark.parametrize("value", [3e38, -3e38, FLOAT32_MAX], ids=["3e38", "-3e38", "float32-max"])
def test_the_shipped_model_marks_finite_inputs_it_cannot_score_and_gives_them_no_class(
    scorer: Scorer, value: float
) -> None:
    # Given a batch of a sample row and a row of finite float32 values so large the model overflows on them
    x = np.array([[float(v) for v in _sample_row()], [value] * scorer.n_features], dtype=np.float32)
    # When it is scored
    scores = scorer.score(x)
    # Then the big row is marked unscored, with no class and no label, and the sample row is scored as ever
    assert scores.scored.tolist() == [True, False]
    assert int(scores.classification[1]) == NO_CLASS and scores.label[1] is None
    assert scores.label[0] in {"benign", "malignant"}


def _sample_row() -> list[str]:
    return SAMPLE_CSV.read_text().splitlines()[1].split(",")[1:]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1.5], ids=["nan", "inf", "1.5"])
def test_reject_unscored_turns_unusable_probabilities_into_rejects_and_keeps_the_rest(bad: float) -> None:
    # Given a chunk of 5 rows: row 1 already rejected (a bad cell), rows 0, 2, 3, 4 scored; rows 2 and 4 got `bad`
    values = np.asfortranarray(np.arange(10, dtype=np.float64).reshape(5, 2))
    ok = np.array([True, False, True, True, True])
    earlier = RowProblem(1, "mean radius", "non-numeric value in column 'mean radius'")
    converted = ConvertedFeatures(values=values, ok=ok, blank=np.zeros(5, bool), problems=[earlier])
    scores = _labelled_as_a_naive_model_would([0.2, bad, 0.9, bad])
    flags = pa.array(["A", "B", None, "D"], pa.string())
    # When the unscored rows are taken out
    kept, kept_scores, kept_flags = reject_unscored(converted, scores, flags)
    # Then rows 2 and 4 are rejects naming the score they lack, in line order with the earlier problem
    assert kept.ok.tolist() == [True, False, False, True, False]
    assert [(p.index, p.column) for p in kept.problems] == [
        (1, "mean radius"),
        (2, UNSCORED_COLUMN),
        (4, UNSCORED_COLUMN),
    ]
    assert all("no finite probability" in p.reason for p in kept.problems[1:])
    # and the scores, values and flags left are those of rows 0 and 3, aligned
    assert kept_scores.malignant_probability.tolist() == pytest.approx([0.2, 0.9])
    assert kept.good_values.tolist() == [[0.0, 1.0], [6.0, 7.0]]
    assert kept_flags is not None and kept_flags.to_pylist() == ["A", None]


def test_reject_unscored_changes_nothing_when_every_row_is_scored() -> None:
    # Given a chunk whose every row has a usable probability
    converted = ConvertedFeatures(values=np.zeros((2, 1)), ok=np.ones(2, bool), blank=np.zeros(2, bool), problems=[])
    scores = _labelled_as_a_naive_model_would([0.0, 1.0])
    # Then it comes back as it was
    assert reject_unscored(converted, scores, None) == (converted, scores, None)
