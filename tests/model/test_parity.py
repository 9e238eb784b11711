"""Parity: the committed .tflite, scored through Scorer, against the committed SavedModel run by TensorFlow.

Measured on this project's CPU (XNNPACK delegate): max |tflite - SavedModel| = 3e-7 over the 569 rows, and the
closest probability to the 0.5 threshold is 0.008 away, so identical classes are an honest requirement.
"""

from __future__ import annotations

import numpy as np

from scoring import Scorer
from tests.model.conftest import MODEL_DIR, N_FEATURES, N_ROWS, Dataset

PROBABILITY_TOLERANCE = 1e-5


def test_saved_model_signature_is_the_documented_one(tf, committed_saved_model_outputs) -> None:
    """Given the committed SavedModel
    When its serving_default signature is run on the 569 rows
    Then it returns exactly the two documented outputs, a float32 probability and an int32 class, one per row."""
    outputs = committed_saved_model_outputs

    assert set(outputs) == {"malignant_probability", "classification"}
    assert outputs["malignant_probability"].dtype == np.float32
    assert outputs["classification"].dtype == np.int32
    assert outputs["malignant_probability"].shape == (N_ROWS,)
    assert outputs["classification"].shape == (N_ROWS,)


def test_saved_model_input_is_features_float32_none_by_30(tf) -> None:
    """Given the committed SavedModel
    When its serving_default signature is inspected
    Then its only input is `features`, float32 [None, 30]."""
    serve = tf.saved_model.load(str(MODEL_DIR / "saved_model")).signatures["serving_default"]
    _, kwargs = serve.structured_input_signature

    assert list(kwargs) == ["features"]
    assert kwargs["features"].dtype == tf.float32
    assert kwargs["features"].shape.as_list() == [None, N_FEATURES]


def test_tflite_probability_matches_saved_model(
    scorer: Scorer, dataset: Dataset, committed_saved_model_outputs
) -> None:
    """Given all 569 rows
    When they are scored by the .tflite (Scorer) and by the SavedModel (TensorFlow)
    Then the probabilities differ by at most 1e-5 anywhere."""
    tflite = scorer.score(dataset.x).malignant_probability
    reference = committed_saved_model_outputs["malignant_probability"]

    max_abs_diff = float(np.max(np.abs(tflite.astype(np.float64) - reference.astype(np.float64))))
    assert max_abs_diff <= PROBABILITY_TOLERANCE, f"max |tflite - saved_model| = {max_abs_diff:.3g}"


def test_tflite_classification_matches_saved_model(
    scorer: Scorer, dataset: Dataset, committed_saved_model_outputs
) -> None:
    """Given all 569 rows
    When they are scored by the .tflite (Scorer) and by the SavedModel (TensorFlow)
    Then every row gets the same class, both from Scorer's threshold and from the .tflite's own class output."""
    reference = committed_saved_model_outputs["classification"]

    scored = scorer.score(dataset.x).classification
    raw = scorer.raw_outputs(dataset.x)["classification"]

    np.testing.assert_array_equal(scored, reference)
    np.testing.assert_array_equal(raw, reference)


def test_model_classification_output_equals_scorer_threshold(scorer: Scorer, dataset: Dataset) -> None:
    """Given all 569 rows and the default threshold from metadata (0.5)
    When the .tflite's own `classification` output is compared with Scorer's thresholded class
    Then they agree on every row (the class baked into the model and the scorer's rule are the same rule)."""
    assert scorer.threshold == scorer.metadata.decision_threshold

    raw = scorer.raw_outputs(dataset.x)
    scores = scorer.score(dataset.x)

    np.testing.assert_array_equal(raw["classification"], scores.classification)
    np.testing.assert_array_equal(raw["malignant_probability"], scores.malignant_probability)
    # Both classes occur, so the comparison above is not trivially all-benign or all-malignant.
    assert set(np.unique(scores.classification).tolist()) == {0, 1}
