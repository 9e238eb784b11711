"""Labels: rows scikit-learn marks malignant come out 'malignant', benign ones 'benign', at the held-out rate;
and class 1 -> 'malignant' agrees with the StreamSets rule ``classification == 0 ? 'benign' : 'malignant'``."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from scoring import ModelMetadata, Scorer
from tests.model.conftest import N_ROWS, Dataset, streamsets_rule

MIN_AGREEMENT = 0.95


def _rows(subset: str, dataset: Dataset, held_out: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    return held_out if subset == "held-out" else np.arange(N_ROWS)


@pytest.mark.parametrize("subset", ["held-out", "all"])
@pytest.mark.parametrize("truth", ["malignant", "benign"])
def test_rows_get_their_scikit_learn_label(
    truth: str, subset: str, scorer: Scorer, dataset: Dataset, held_out: npt.NDArray[np.intp]
) -> None:
    """Given the rows of one scikit-learn class (malignant = target 0), held-out or all 569
    When they are scored
    Then at least 95% of them carry that class's label."""
    rows = _rows(subset, dataset, held_out)
    rows = rows[dataset.truth_labels[rows] == truth]
    assert rows.size > 0

    labels = scorer.score(dataset.x[rows]).label

    agreement = float(np.mean(labels == truth))
    assert agreement >= MIN_AGREEMENT, f"{subset} {truth}: {agreement:.4f} labelled {truth!r}"


@pytest.mark.parametrize("subset", ["held-out", "all"])
def test_label_agreement_rate(
    subset: str, scorer: Scorer, dataset: Dataset, metadata: ModelMetadata, held_out: npt.NDArray[np.intp]
) -> None:
    """Given held-out or all rows with their scikit-learn labels
    When they are scored
    Then the labels agree at >= 95%, and on held-out rows exactly at the recorded held-out accuracy."""
    rows = _rows(subset, dataset, held_out)

    labels = scorer.score(dataset.x[rows]).label

    agreement = float(np.mean(labels == dataset.truth_labels[rows]))
    assert agreement >= MIN_AGREEMENT
    if subset == "held-out":
        assert round(agreement, 6) == metadata.held_out.accuracy


@pytest.mark.parametrize(("classification", "label"), [(0, "benign"), (1, "malignant")])
def test_metadata_label_mapping_is_the_streamsets_rule(
    classification: int, label: str, metadata: ModelMetadata
) -> None:
    """Given a class number
    When it is looked up in metadata.json's label mapping and in the StreamSets rule
    Then both give the same label, and class 1 is the positive (malignant) class."""
    assert metadata.labels[str(classification)] == label == streamsets_rule(classification)
    assert metadata.model_extra["positive_class"] == 1  # type: ignore[index]


def test_every_scored_label_follows_the_streamsets_rule(scorer: Scorer, dataset: Dataset) -> None:
    """Given all 569 rows
    When they are scored
    Then each row's label is what the StreamSets rule makes of its class, and the class is 1 exactly when
    the probability reaches the threshold."""
    scores = scorer.score(dataset.x)

    assert scores.label.tolist() == [streamsets_rule(int(c)) for c in scores.classification]
    np.testing.assert_array_equal(scores.classification == 1, scores.malignant_probability >= scorer.threshold)
