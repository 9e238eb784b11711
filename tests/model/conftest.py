"""Fixtures for the model tests: the data set, the committed artifacts, TensorFlow (imported once) and scorers.

TensorFlow takes ~10 s to import, so it is imported once per session, by the ``tf`` fixture, and only by the
tests that compare against a SavedModel. It is a test (development) dependency: a missing TensorFlow is an
error here, never a skip, because the parity tests are the point of this directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.datasets import load_breast_cancer

from scoring import ModelMetadata, Scorer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO_ROOT / "model"
SAMPLE_CSV = REPO_ROOT / "data" / "breast_cancer.csv"
N_ROWS = 569
N_FEATURES = 30


def streamsets_rule(classification: int) -> str:
    """The StreamSets pipeline's rule ``classification == 0 ? 'benign' : 'malignant'``, which we must keep."""
    return "benign" if classification == 0 else "malignant"


@dataclass(frozen=True)
class Dataset:
    """scikit-learn's breast-cancer data with the project's target: 1 = malignant (sklearn's target == 0)."""

    feature_names: list[str]
    x: npt.NDArray[np.float64]  # [569, 30] as scikit-learn ships it
    malignant: npt.NDArray[np.int8]  # 1 where sklearn's target == 0

    @property
    def truth_labels(self) -> npt.NDArray[np.str_]:
        return np.where(self.malignant == 1, "malignant", "benign")


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    data = load_breast_cancer()
    return Dataset(
        feature_names=[str(name) for name in data.feature_names],
        x=np.asarray(data.data, dtype=np.float64),
        malignant=(data.target == 0).astype(np.int8),
    )


@pytest.fixture(scope="session")
def metadata() -> ModelMetadata:
    return ModelMetadata.load(MODEL_DIR / "metadata.json")


@pytest.fixture(scope="session")
def held_out(metadata: ModelMetadata) -> npt.NDArray[np.intp]:
    indices = np.asarray(metadata.held_out_indices, dtype=np.intp)
    assert indices.size > 0, "metadata.json has no held_out_indices"
    return indices


@pytest.fixture(scope="session")
def scorer() -> Scorer:
    """The committed .tflite, loaded the way the Lambda loads it (default threshold and chunk size)."""
    return Scorer.load(MODEL_DIR)


@pytest.fixture(scope="session")
def tf() -> ModuleType:
    """TensorFlow, imported once per session."""
    import tensorflow

    return tensorflow


def saved_model_outputs(tf: ModuleType, saved_model_dir: Path, x: npt.ArrayLike) -> dict[str, np.ndarray]:
    """Run a SavedModel's ``serving_default`` signature on ``x`` (cast to float32) and return numpy outputs."""
    loaded: Any = tf.saved_model.load(str(saved_model_dir))
    serve = loaded.signatures["serving_default"]
    outputs = serve(features=tf.constant(np.asarray(x, dtype=np.float32)))
    return {name: tensor.numpy() for name, tensor in outputs.items()}


@pytest.fixture(scope="session")
def committed_saved_model_outputs(tf: ModuleType, dataset: Dataset) -> dict[str, np.ndarray]:
    """The committed SavedModel's outputs on all 569 rows (computed once: loading it is the slow part)."""
    return saved_model_outputs(tf, MODEL_DIR / "saved_model", dataset.x)
