"""Accuracy: the committed .tflite, scored through Scorer, on the held-out rows named in metadata.json.

Labels come from scikit-learn's bundled data set, flipped to the project's convention: malignant = target == 0.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.metrics import accuracy_score, precision_score, recall_score

from scoring import ModelMetadata, Scorer
from tests.model.conftest import N_ROWS, Dataset

MIN_HELD_OUT_ACCURACY = 0.95
RECORDED_DECIMALS = 6  # train.py rounds the recorded metrics to 6 decimals

METRICS = {"accuracy": accuracy_score, "precision": precision_score, "recall": recall_score}


def test_held_out_accuracy_meets_the_bound(scorer: Scorer, dataset: Dataset, held_out: npt.NDArray[np.intp]) -> None:
    """Given the held-out rows of metadata.json and their scikit-learn labels (malignant = 1)
    When the .tflite scores them
    Then at least 95% are classified correctly."""
    predicted = scorer.score(dataset.x[held_out]).classification

    accuracy = accuracy_score(dataset.malignant[held_out], predicted)

    assert accuracy >= MIN_HELD_OUT_ACCURACY, f"held-out accuracy {accuracy:.4f} < {MIN_HELD_OUT_ACCURACY}"


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_held_out_metric_equals_the_recorded_one(
    metric: str, scorer: Scorer, dataset: Dataset, metadata: ModelMetadata, held_out: npt.NDArray[np.intp]
) -> None:
    """Given the held-out rows and the metric train.py recorded from the Keras model
    When the same metric is computed from the .tflite's classes
    Then it is the recorded value (to the 6 decimals recorded): the converted model is the evaluated model."""
    predicted = scorer.score(dataset.x[held_out]).classification

    measured = METRICS[metric](dataset.malignant[held_out], predicted)

    assert round(float(measured), RECORDED_DECIMALS) == getattr(metadata.held_out, metric)


def test_held_out_indices_are_a_stratified_split(
    dataset: Dataset, metadata: ModelMetadata, held_out: npt.NDArray[np.intp]
) -> None:
    """Given metadata's held_out_indices and its recorded split
    When they are compared with the data set
    Then they are distinct valid row numbers, as many as n_test, with the malignant share of the whole set
    (to within one row: the split was stratified)."""
    split = metadata.held_out.model_extra["split"]  # type: ignore[index]

    assert len(np.unique(held_out)) == len(held_out) == split["n_test"]
    assert split["n_test"] + split["n_train"] == N_ROWS
    assert held_out.min() >= 0
    assert held_out.max() < N_ROWS
    expected_malignant = dataset.malignant.mean() * len(held_out)
    assert abs(int(dataset.malignant[held_out].sum()) - expected_malignant) <= 1
