"""Unit tests for scoring.ModelMetadata: the committed metadata.json parses, and malformed copies are refused."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from scoring import ModelLoadError, ModelMetadata
from tests.unit.metadata_edits import set_field

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO_ROOT / "model"
METADATA = MODEL_DIR / "metadata.json"


@pytest.fixture(scope="module")
def committed() -> ModelMetadata:
    return ModelMetadata.load(METADATA)


@pytest.fixture
def raw() -> dict[str, Any]:
    """The committed metadata as a dict a test may alter."""
    return dict(json.loads(METADATA.read_text(encoding="utf-8")))


def test_committed_metadata_describes_the_committed_model(committed: ModelMetadata) -> None:
    """Given the committed metadata.json
    When it is loaded
    Then it names the committed .tflite by its actual sha256, in its model version, with the documented
    signature, 30 features, threshold 0.5 and labels 0 -> benign, 1 -> malignant."""
    sha256 = hashlib.sha256((MODEL_DIR / committed.tflite_file).read_bytes()).hexdigest()

    assert committed.tflite_sha256 == sha256
    assert sha256[:12] in committed.model_version
    assert committed.signature.key == "serving_default"
    assert committed.signature.input.name == "features"
    assert committed.signature.input.dtype == "float32"
    assert committed.signature.input.shape == [None, 30]
    assert committed.signature.outputs == {"malignant_probability": "float32", "classification": "int32"}
    assert committed.n_features == len(committed.feature_names) == 30
    assert committed.decision_threshold == 0.5
    assert committed.labels == {"0": "benign", "1": "malignant"}


def test_feature_columns_are_snowflake_safe_renames(committed: ModelMetadata) -> None:
    """Given the committed features
    When each output column is compared with its feature name
    Then it is the name upper-cased with every run of other characters turned into one underscore, all distinct."""
    columns = [f.column for f in committed.features]

    assert columns == [re.sub(r"[^A-Z0-9]+", "_", f.name.upper()).strip("_") for f in committed.features]
    assert len(set(columns)) == len(columns)
    assert committed.features[0].column == "MEAN_RADIUS"


def test_held_out_metrics_are_recorded(committed: ModelMetadata) -> None:
    """Given the committed metadata
    When its held-out section is read
    Then accuracy, precision and recall are fractions, accuracy >= 0.95, and there is one held-out index per
    held-out row."""
    held_out = committed.held_out

    for value in (held_out.accuracy, held_out.precision, held_out.recall):
        assert 0.0 <= value <= 1.0
    assert held_out.accuracy >= 0.95
    assert len(committed.held_out_indices) == held_out.model_extra["split"]["n_test"]  # type: ignore[index]


def _delete(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda meta: meta.pop(key)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(set_field("labels", {"0": "benign"}), "labels must map exactly", id="labels-missing-class"),
        pytest.param(
            set_field("labels", {"0": "benign", "1": "malignant", "2": "unknown"}),
            "labels must map exactly",
            id="3-labels",
        ),
        pytest.param(set_field("tflite_sha256", "ABC"), "tflite_sha256", id="sha256-not-hex"),
        pytest.param(set_field("tflite_sha256", "A" * 64), "tflite_sha256", id="sha256-upper-case"),
        pytest.param(set_field("decision_threshold", 0.0), "decision_threshold", id="threshold-0"),
        pytest.param(set_field("decision_threshold", 1.0), "decision_threshold", id="threshold-1"),
        pytest.param(set_field("features", []), "features", id="no-features"),
        pytest.param(
            set_field("features", [{"name": "mean radius", "column": "mean radius"}]), "column", id="column-not-safe"
        ),
        pytest.param(set_field("signature.input.shape", [None, 29]), "does not match its 30 features", id="shape-29"),
        pytest.param(set_field("signature.input.shape", [1, 30]), "does not match its 30 features", id="fixed-batch"),
        pytest.param(set_field("model_version", ""), "model_version", id="empty-version"),
        pytest.param(_delete("model_version"), "model_version", id="no-version"),
        pytest.param(_delete("signature"), "signature", id="no-signature"),
        pytest.param(
            set_field("preprocessing", {"standardize": {"mean": [0.0] * 29, "scale": [1.0] * 29}}),
            "29 values for 30 features",
            id="standardize-29-values",
        ),
        pytest.param(
            set_field("preprocessing", {"standardize": {"mean": [0.0] * 30, "scale": [1.0] * 29 + [0.0]}}),
            "scale must be finite numbers > 0",
            id="standardize-scale-0",
        ),
        pytest.param(
            set_field("preprocessing", {"standardize": {"mean": [0.0] * 30, "scale": [1.0] * 29}}),
            "30 means but 29 scales",
            id="standardize-lengths-differ",
        ),
        pytest.param(
            set_field("probability", {"output": "classification"}), "is int32, not float32", id="probability-int"
        ),
        pytest.param(
            set_field("probability", {"output": "malignant_probability", "kind": "classes"}),
            "classes listing 'benign' and 'malignant'",
            id="classes-without-order",
        ),
        pytest.param(
            set_field("probability", {"kind": "classes", "classes": ["benign", "benign"]}),
            "classes listing 'benign' and 'malignant'",
            id="classes-twice-benign",
        ),
        pytest.param(
            set_field("probability", {"probability_of": "unknown"}), "probability_of", id="probability-of-unknown"
        ),
        pytest.param(
            set_field("features.0.domain", {"min": 5, "max": 5}),
            "domain min 5.0 must be below its max",
            id="domain-empty",
        ),
        pytest.param(set_field("features.0.domain", {"min": float("nan")}), "finite", id="domain-nan"),
        pytest.param(set_field("features.0.domain", {"low": 0}), "Extra inputs", id="domain-unknown-key"),
        pytest.param(
            set_field("features.0.training_range", {"min": 1, "max": 2, "p0_5": 3, "p99_5": 2}),
            "min <= p0_5 <= p99_5 <= max",
            id="training-range-unordered",
        ),
        pytest.param(
            set_field("features.0.training_range", {"min": 1, "max": 2}), "p0_5", id="training-range-incomplete"
        ),
        pytest.param(
            set_field("features.0.domain", {"min": 10}),
            "feature 'mean radius': its training_range lies outside its domain",
            id="training-range-outside-domain",
        ),
    ],
)
def test_malformed_metadata_is_a_load_error(
    edit: Callable[[dict[str, Any]], None], message: str, raw: dict[str, Any], tmp_path: Path
) -> None:
    """Given a copy of the committed metadata altered in one respect
    When it is loaded
    Then ModelLoadError names the offending field and the file."""
    edit(raw)
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(raw), encoding="utf-8")

    with pytest.raises(ModelLoadError) as excinfo:
        ModelMetadata.load(path)

    assert message in str(excinfo.value)
    assert str(path) in str(excinfo.value)


@pytest.mark.parametrize(
    "content",
    [pytest.param(None, id="missing"), pytest.param("{not json", id="not-json"), pytest.param("", id="empty")],
)
def test_unreadable_metadata_is_a_load_error(content: str | None, tmp_path: Path) -> None:
    """Given a metadata.json that is missing, empty or not JSON
    When it is loaded
    Then ModelLoadError says it cannot read the metadata."""
    path = tmp_path / "metadata.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")

    with pytest.raises(ModelLoadError, match="cannot read model metadata"):
        ModelMetadata.load(path)


def test_unknown_keys_are_kept(raw: dict[str, Any], tmp_path: Path) -> None:
    """Given metadata with keys the model does not declare (positive_class, training, tools, a new one)
    When it is loaded
    Then it loads and keeps them, so older code reads newer metadata."""
    raw["added_later"] = {"x": 1}
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(raw), encoding="utf-8")

    loaded = ModelMetadata.load(path)

    assert loaded.model_extra is not None
    assert loaded.model_extra["added_later"] == {"x": 1}
    assert loaded.model_extra["positive_class"] == 1


def test_imported_model_metadata_without_held_out_loads(raw: dict[str, Any], tmp_path: Path) -> None:
    """Given metadata as `make import-model` writes it for a user's model: no held-out split of ours, a
    standardisation and a P(benign) output
    When it is loaded
    Then it loads, with no held-out metrics and the preprocessing and probability mapping it names."""
    for key in ("held_out", "held_out_indices"):
        raw.pop(key)
    raw["preprocessing"] = {"standardize": {"mean": [1.0] * 30, "scale": [2.0] * 30, "fit_csv": "data/x.csv"}}
    raw["probability"] = {"output": "malignant_probability", "kind": "probability", "probability_of": "benign"}
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(raw), encoding="utf-8")

    loaded = ModelMetadata.load(path)

    assert loaded.held_out is None
    assert loaded.preprocessing.standardize is not None
    assert loaded.preprocessing.standardize.scale == [2.0] * 30
    assert loaded.probability.probability_of == "benign"


def test_committed_metadata_says_how_to_score(committed: ModelMetadata) -> None:
    """Given the committed metadata (written by the import code that `make model` goes through)
    When its scoring sections are read
    Then there is no preprocessing (the model normalises inside) and P(malignant) is the output
    `malignant_probability` as it is, and the source SavedModel is named."""
    assert committed.preprocessing.standardize is None
    assert committed.probability.output == "malignant_probability"
    assert committed.probability.kind == "probability"
    assert committed.probability.probability_of == "malignant"
    assert committed.model_extra is not None
    assert committed.model_extra["source"]["saved_model"] == "model/saved_model"
    assert committed.model_extra["reference"]["parity"]["max_abs_diff"] <= 1e-5
