"""`make import-model` (tools/commands/import_model.py) on SavedModels of every flavour, built at test time.

The good flavours import and score like the models themselves; every bad model and bad config is refused with
an error naming what is there, and nothing is written. The command is run in-process through its ``main``
(the function the Makefile's recipe calls), so TensorFlow is imported once; tests/integration/
test_imported_models.py runs it as a separate process and serves the result through the handler.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scoring import Scorer
from tests.model import saved_models
from tests.model.conftest import MODEL_DIR, REPO_ROOT, SAMPLE_CSV, Dataset
from tests.model.saved_models import GOOD, Built
from tools.commands import import_model

pytestmark = pytest.mark.slow

KNOWN_ANSWER_TOLERANCE = 1e-4  # the model's own P(malignant), its preprocessing done in float64 numpy
MIN_ACCURACY = 0.95


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Built]:
    return lambda name: saved_models.build(name, tmp_path_factory)


def run(saved_model: Path, config: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The import command, as `make import-model SAVED_MODEL=... CONFIG=... OUT=...` runs it."""
    code = import_model.main(["--saved-model", str(saved_model), "--config", str(config), "--out", str(out)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def imported(models: Callable[[str], Built], tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Built, Path]]:
    """Given each good flavour imported with its config (once per module)."""
    result = {}
    for name in GOOD:
        built = models(name)
        tmp = tmp_path_factory.mktemp(f"import_{name}")
        code = import_model.main(
            ["--saved-model", str(built.path), "--config", str(built.write_config(tmp)), "--out", str(tmp / "out")]
        )
        assert code == 0, name
        result[name] = (built, tmp / "out")
    return result


@pytest.mark.parametrize("name", GOOD)
def test_imported_model_scores_like_the_model_itself(
    name: str, imported: dict[str, tuple[Built, Path]], dataset: Dataset
) -> None:
    """When the imported .tflite scores the 569 sample rows through Scorer (as the function does)
    Then P(malignant) is the model's own answer (computed in its framework, with its conventions: P(benign)
    flipped, the softmax column picked, the scaler applied) within 1e-4, and accuracy against scikit-learn's
    truth is >= 0.95."""
    built, out = imported[name]
    scorer = Scorer.load(out)
    x = (
        dataset.x
        if scorer.n_features == 30
        else dataset.x[:, [dataset.feature_names.index(f) for f in scorer.metadata.feature_names]]
    )

    scores = scorer.score(x)

    assert built.malignant_probability is not None
    diff = np.abs(scores.malignant_probability.astype(np.float64) - built.malignant_probability)
    assert float(diff.max()) <= KNOWN_ANSWER_TOLERANCE
    clear = np.abs(built.malignant_probability - 0.5) > KNOWN_ANSWER_TOLERANCE
    np.testing.assert_array_equal(scores.classification[clear], (built.malignant_probability[clear] >= 0.5))
    assert float((scores.classification == dataset.malignant).mean()) >= MIN_ACCURACY


@pytest.mark.parametrize(
    ("name", "input_tensor", "output_tensor", "method", "probability", "standardize"),
    [
        (
            "tf1_article",
            "inputs:0",
            "classifications:0",
            "tensorflow/serving/classify",
            {"probability_of": "benign"},
            "fit_csv",
        ),
        ("keras_export", None, None, "tensorflow/serving/predict", {"probability_of": "malignant"}, None),
        ("module_softmax", None, None, "tensorflow/serving/predict", {"classes": ["malignant", "benign"]}, "mean"),
        ("ten_features", None, None, "tensorflow/serving/predict", {"probability_of": "malignant"}, "fit_csv"),
    ],
)
def test_metadata_says_where_the_model_came_from(
    name: str,
    input_tensor: str | None,
    output_tensor: str | None,
    method: str,
    probability: dict[str, Any],
    standardize: str | None,
    imported: dict[str, tuple[Built, Path]],
) -> None:
    """When an imported model's metadata is read
    Then it names the source SavedModel by sha256 (and fingerprint when it has one), its tags, signature, method
    and tensors, the preprocessing, how P(malignant) is read, the threshold, the parity measured, the tool versions
    and a model version made of the content hashes."""
    built, out = imported[name]
    meta = Scorer.load(out).metadata
    extra = meta.model_extra or {}
    source = extra["source"]

    assert source["sha256"] == import_model.directory_sha256(built.path)
    assert (source["fingerprint"] is not None) == (built.path / "fingerprint.pb").is_file()
    assert source["tags"] == ["serve"] and source["signature"] == "serving_default"
    assert source["method_name"] == method
    if input_tensor is not None:
        assert (source["input"]["tensor"], source["output"]["tensor"]) == (input_tensor, output_tensor)
    assert meta.probability.model_dump(include=set(probability)) == probability
    if standardize is None:
        assert meta.preprocessing.standardize is None
    else:
        assert meta.preprocessing.standardize is not None
        assert len(meta.preprocessing.standardize.mean) == meta.n_features
        assert (meta.preprocessing.standardize.model_extra or {}).get("fit_csv") == (
            "data/breast_cancer.csv" if standardize == "fit_csv" else None
        )
    assert meta.decision_threshold == 0.5
    assert extra["reference"]["parity"]["max_abs_diff"] <= import_model.PARITY_TOLERANCE
    assert {"tensorflow", "keras", "ai-edge-litert", "python"} <= set(extra["tools"])
    assert meta.model_version.startswith(f"imported+{meta.tflite_sha256[:12]}.")
    # and each feature's training range comes from the real rows the import was given (the fit_csv), else none
    if standardize == "fit_csv":
        assert extra["training_data"] == {"rows": 569, "from": "standardize.fit_csv data/breast_cancer.csv"}
        sample = import_model.read_rows(SAMPLE_CSV, meta.feature_names, what="sample").values
        assert [(f.training_range.min, f.training_range.max) for f in meta.features if f.training_range] == list(
            zip(sample.min(axis=0), sample.max(axis=0), strict=True)
        )
    else:
        assert extra["training_data"] is None
        assert all(f.training_range is None for f in meta.features)
    assert all(f.domain.min is None and f.domain.max is None for f in meta.features)  # no domain configured


def test_a_tf1_classify_signature_with_a_string_output_imports(
    models: Callable[[str], Built], dataset: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given a TF1 classify signature with outputs `scores` ([N, 2] softmax) and `classes` (strings)
    When it is imported with output "scores" and its class order
    Then it imports (the string output rides along, never read) and scores the model's own P(malignant)."""
    built = models("tf1_classify")

    code, out, err = run(built.path, built.write_config(tmp_path), tmp_path / "out", capsys)

    assert code == 0, err
    assert json.loads(out)["probability"] == {"output": "scores", "kind": "classes", "classes": ["malignant", "benign"]}
    scorer = Scorer.load(tmp_path / "out")
    assert scorer.metadata.signature.outputs == {"classes": "bytes", "scores": "float32"}
    assert built.malignant_probability is not None
    scores = scorer.score(dataset.x).malignant_probability
    assert float(np.max(np.abs(scores - built.malignant_probability))) <= KNOWN_ANSWER_TOLERANCE


def test_the_article_model_uses_reference_variables(models: Callable[[str], Built]) -> None:
    """Given the TF1 flavour
    Then its graph holds TF1 reference variables (VariableV2), not resource variables: the case that cannot be
    re-wrapped in a tf.function, so the importer must convert the signature as it is."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((models("tf1_article").path / "saved_model.pb").read_bytes())
    ops = {node.op for node in proto.meta_graphs[0].graph_def.node}

    assert "VariableV2" in ops
    assert "VarHandleOp" not in ops


def test_labelled_reference_rows_give_metrics(
    models: Callable[[str], Built], dataset: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given the sample rows with a diagnosis column (M / B) as reference_csv, label_column and
    label_malignant_value, and a model_version chosen by the user
    When the TF1 model is imported
    Then parity was checked on those 569 rows, the metadata records accuracy, precision and recall on them (as
    computed here from the written .tflite), and the model version is the user's."""
    built = models("tf1_article")
    labelled = _labelled_csv(tmp_path / "labelled.csv", dataset.malignant)
    config = built.write_config(
        tmp_path,
        reference_csv=str(labelled),
        label_column="diagnosis",
        label_malignant_value="M",
        model_version="article-1.0",
    )

    code, _, err = run(built.path, config, tmp_path / "out", capsys)

    assert code == 0, err
    scorer = Scorer.load(tmp_path / "out")
    reference = (scorer.metadata.model_extra or {})["reference"]
    predicted = scorer.score(dataset.x).classification
    assert reference["parity"]["rows"] == 569
    assert reference["metrics"]["rows"] == 569
    assert reference["metrics"]["accuracy"] == round(float((predicted == dataset.malignant).mean()), 6)
    assert reference["metrics"]["recall"] == round(float(predicted[dataset.malignant == 1].mean()), 6)
    assert scorer.model_version == "article-1.0"
    # And the reference profile monitoring compares each load with: the 569 rows, the share the model calls
    # malignant on them, and a calibration fitted on their labels (the accuracy estimate's)
    profile = scorer.metadata.monitoring
    assert profile is not None and profile.rows == 569 and len(profile.features) == scorer.metadata.n_features
    assert profile.predicted_malignant_share == pytest.approx(float(predicted.mean()))
    assert profile.calibration is not None and profile.calibration.rows == 569
    assert profile.calibration.malignant == int(dataset.malignant.sum())


def _labelled_csv(path: Path, malignant: np.ndarray) -> Path:
    """The sample CSV with a diagnosis column (M / B) from scikit-learn's truth."""
    with SAMPLE_CSV.open(encoding="utf-8") as src, path.open("w", newline="", encoding="utf-8") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        writer.writerow([*next(reader), "diagnosis"])
        for row, is_malignant in zip(reader, malignant, strict=True):
            writer.writerow([*row, "M" if is_malignant else "B"])
    return path


# --- refusals: a model that converts right and answers wrong -------------------------------------------------

LABELLED = {"label_column": "diagnosis", "label_malignant_value": "M"}
WRONG_ANSWERS = [
    # (id, model, config changes (reference_csv is the labelled sample when labelled), labelled, what is said)
    ("probability-of-forgotten", "tf1_article", {"probability_of": ...}, True, ["below chance", "ROC AUC"]),
    ("probability-of-forgotten-unlabelled", "tf1_article", {"probability_of": ...}, False, None),
    ("scaler-forgotten", "tf1_article", {"standardize": ...}, True, ["every one of the 569 rows", "below chance"]),
    ("scaler-forgotten-unlabelled-reference", "tf1_article", {"standardize": ...}, False, ["every one of the 569"]),
    ("scaler-forgotten-no-reference", "tf1_article", {"standardize": ...}, None, ["every one of the 569 rows"]),
    ("softmax-classes-swapped", "module_softmax", {"output_classes": ["benign", "malignant"]}, True, ["ROC AUC"]),
    ("keras-labels-inverted", "keras_export", {"probability_of": "benign"}, True, ["below chance", "ROC AUC"]),
]


def _wrong_answer_config(
    built: Built, tmp_path: Path, changes: dict[str, Any], labelled: bool | None, dataset: Dataset, **more: Any
) -> Path:
    reference: dict[str, Any] = {}
    if labelled is not None:  # None: no reference_csv at all
        reference["reference_csv"] = str(_labelled_csv(tmp_path / "labelled.csv", dataset.malignant))
        reference |= LABELLED if labelled else {}
    return built.write_config(tmp_path, **changes, **reference, **more)


@pytest.mark.parametrize(
    ("model", "changes", "labelled", "said"), [pytest.param(*case[1:], id=case[0]) for case in WRONG_ANSWERS]
)
def test_a_model_that_scores_real_rows_wrong_is_refused_and_nothing_is_written(
    model: str,
    changes: dict[str, Any],
    labelled: bool | None,
    said: list[str] | None,
    models: Callable[[str], Built],
    dataset: Dataset,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Given a good model imported with a config mistake that parity cannot see (the .tflite scores exactly as the
    SavedModel does, and both are wrong): probability_of forgotten (P(benign) read as P(malignant)), the scaler
    forgotten (every row one class), a softmax's classes swapped; with labelled reference rows, unlabelled ones, or
    none (the sample export's real rows are judged)
    When it is imported
    Then it is refused (exit 2) saying why (below chance, ROC AUC below 0.5: inverted, one class for every row) and
    how to accept it anyway, and nothing is written. Without labels, an inverted probability cannot be seen: it
    imports (the case is here so that the boundary is known)."""
    built = models(model)
    config = _wrong_answer_config(built, tmp_path, changes, labelled, dataset)

    code, out, err = run(built.path, config, tmp_path / "out", capsys)

    if said is None:
        assert code == 0, err
        return
    assert code == 2, out + err
    assert "scores the real rows" in err and "wrong" in err
    for words in said:
        assert words in err, err
    assert '"accept_poor_reference_performance": true' in err
    assert out == ""
    assert not (tmp_path / "out").exists()


def test_a_model_that_scores_real_rows_wrong_imports_when_the_config_accepts_it(
    models: Callable[[str], Built], dataset: Dataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given the TF1 model with probability_of forgotten, labelled reference rows, and
    "accept_poor_reference_performance": true
    When it is imported
    Then it is written (exit 0) with a warning on stderr, and metadata.json records that it was accepted, what was
    wrong, and the accuracy, majority share and ROC AUC measured (accuracy below the share, AUC below 0.5)."""
    built = models("tf1_article")
    config = _wrong_answer_config(
        built, tmp_path, {"probability_of": ...}, True, dataset, accept_poor_reference_performance=True
    )

    code, out, err = run(built.path, config, tmp_path / "out", capsys)

    assert code == 0, err
    assert "warning" in err and "accept_poor_reference_performance" in err
    performance = (Scorer.load(tmp_path / "out").metadata.model_extra or {})["reference"]["performance"]
    assert performance["accept_poor_reference_performance"] is True
    assert performance["problems"]
    assert performance["accuracy"] < performance["majority_class_share"]
    assert performance["roc_auc"] < 0.5
    assert json.loads(out)["performance"] == performance


@pytest.mark.parametrize("name", GOOD)
def test_good_models_pass_the_real_rows_check(
    name: str, imported: dict[str, tuple[Built, Path]], dataset: Dataset
) -> None:
    """Given each good flavour imported with its own config
    Then its metadata records the real rows it was judged on, both classes predicted, no problem, and the
    acceptance key unused."""
    _, out = imported[name]
    performance = (Scorer.load(out).metadata.model_extra or {})["reference"]["performance"]

    assert performance["rows"] == len(dataset.malignant)
    assert performance["predicted_malignant"] > 0 and performance["predicted_benign"] > 0
    assert performance["problems"] == []
    assert performance["accept_poor_reference_performance"] is False
    # And with real rows but no labels it gets a reference profile for drift, and no calibration (it says so)
    metadata = Scorer.load(out).metadata
    if (metadata.model_extra or {}).get("training_data"):
        assert metadata.monitoring is not None and metadata.monitoring.calibration is None
    else:
        assert metadata.monitoring is None


@pytest.mark.parametrize(
    ("labels", "probability", "auc"),
    [
        pytest.param([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 1.0, id="separated"),
        pytest.param([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1], 0.0, id="inverted"),
        pytest.param([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], 0.5, id="all-tied"),
        pytest.param([0, 1, 1], [0.2, 0.2, 0.7], 0.75, id="one-tie"),
    ],
)
def test_roc_auc_is_the_chance_a_malignant_row_scores_above_a_benign_one(
    labels: list[int], probability: list[float], auc: float
) -> None:
    assert import_model.roc_auc(np.array(labels, np.int8), np.array(probability)) == pytest.approx(auc)


# --- refusals: bad models and bad configs ---------------------------------------------------------------------


def _csv_without(column: str, path: Path) -> str:
    with SAMPLE_CSV.open(encoding="utf-8") as src, path.open("w", newline="", encoding="utf-8") as dst:
        rows = list(csv.reader(src))
        j = rows[0].index(column)
        csv.writer(dst).writerows([r[:j] + r[j + 1 :] for r in rows])
    return str(path)


def _csv_with_constant(column: str, path: Path, *, add: str | None = None) -> str:
    """The sample CSV with ``column`` set to 1.0 on every row (and, with ``add``, an empty column of that name)."""
    with SAMPLE_CSV.open(encoding="utf-8") as src, path.open("w", newline="", encoding="utf-8") as dst:
        rows = list(csv.reader(src))
        j = rows[0].index(column)
        extra = [] if add is None else [add]
        body = [[*r[:j], "1.0", *r[j + 1 :], *([""] if add else [])] for r in rows[1:]]
        csv.writer(dst).writerows([[*rows[0], *extra], *body])
    return str(path)


FEATURES_30 = saved_models.data().features
BAD = [
    # (id, model, config changes (a callable gets tmp_path), the message's telling part)
    (
        "tag-not-there",
        "tf1_article",
        {"tags": ["train"]},
        "no meta graph tagged ['train']; its tag sets are [['serve']]",
    ),
    (
        "signature-not-there",
        "tf1_article",
        {"signature": "predict"},
        "no signature 'predict'; its signatures are ['serving_default']",
    ),
    ("input-key-not-there", "tf1_article", {"input": "x"}, "no input 'x'; its inputs are ['inputs']"),
    ("output-key-not-there", "tf1_article", {"output": "scores"}, "no output 'scores'; its outputs are ['outputs']"),
    ("input-int32", "int_input", {}, "input 'x' (serving_default_x:0) is int32"),
    ("input-rank-3", "rank3_input", {}, "input 'x' is rank 3 [None, 30, 1]: it must be rank 2"),
    ("input-width-unknown", "unknown_width", {}, "input 'x' has no fixed width ([None, None])"),
    (
        "width-30-vs-29-features",
        "tf1_article",
        {"features": FEATURES_30[:29]},
        "'inputs' is 30 wide but the config lists 29 features",
    ),
    (
        "width-30-vs-10-features",
        "tf1_article",
        {"features": saved_models.TEN_FEATURES},
        "30 wide but the config lists 10",
    ),
    ("probability-outside-0-1", "logits", {}, "output 'p' is not a probability: it ranges over"),
    (
        "op-litert-cannot-run",
        "unsupported_op",
        {},
        "LiteRT cannot run this model: the TFLite conversion failed (Custom ops: Erfinv)",
    ),
    (
        "keras-in-module-scores-garbage",
        "keras_in_module",
        {},
        "does not score like the SavedModel: the .tflite gives NaN",
    ),
    ("unknown-config-key", "tf1_article", {"scaler": "standard"}, "scaler: Extra inputs are not permitted"),
    ("no-features", "tf1_article", {"features": ...}, "features: Field required"),
    (
        "feature-twice",
        "tf1_article",
        {"features": [*FEATURES_30[:29], "mean radius"]},
        "features are listed twice: ['mean radius']",
    ),
    (
        "features-same-column",
        "tf1_article",
        {"features": [*FEATURES_30[:29], "Mean-Radius"]},
        "features 'mean radius' and 'Mean-Radius' would both be the column MEAN_RADIUS",
    ),
    (
        "softmax-with-probability-of",
        "module_softmax",
        {"probability_of": "benign"},
        '"probability_of" is for a [N] or [N, 1] output',
    ),
    (
        "standardize-29-means",
        "tf1_article",
        {"standardize": {"mean": [0.0] * 29, "scale": [1.0] * 29}},
        "standardize.mean has 29 values for 30 features",
    ),
    (
        "standardize-scale-0",
        "tf1_article",
        {"standardize": {"mean": [0.0] * 30, "scale": [0.0] * 30}},
        "scale must be finite numbers > 0",
    ),
    (
        "standardize-both",
        "tf1_article",
        {"standardize": {"mean": [0.0] * 30, "scale": [1.0] * 30, "fit_csv": "x.csv"}},
        'give either "mean" and "scale", or "fit_csv"',
    ),
    ("standardize-mean-alone", "tf1_article", {"standardize": {"mean": [0.0] * 30}}, '"mean" and "scale" go together'),
    (
        "fit-csv-missing-column",
        "tf1_article",
        lambda tmp: {"standardize": {"fit_csv": _csv_without("worst symmetry", tmp / "f.csv")}},
        "has no column(s) ['worst symmetry']; its columns are ['sample_id', 'mean radius'",
    ),
    (
        "fit-csv-constant-column",
        "tf1_article",
        lambda tmp: {"standardize": {"fit_csv": _csv_with_constant("mean area", tmp / "f.csv")}},
        "column(s) ['mean area'] are constant",
    ),
    (
        "fit-csv-not-there",
        "tf1_article",
        {"standardize": {"fit_csv": "/nonexistent/fit.csv"}},
        "cannot read standardize.fit_csv /nonexistent/fit.csv",
    ),
    (
        "reference-csv-missing-column",
        "tf1_article",
        lambda tmp: {"reference_csv": _csv_without("mean radius", tmp / "r.csv")},
        "r.csv has no column(s) ['mean radius']; its columns are",
    ),
    (
        "output-classes-on-a-probability",
        "tf1_article",
        {"output_classes": ["benign", "malignant"]},
        '"output_classes" is for a [N, 2] output',
    ),
    (
        "softmax-without-output-classes",
        "module_softmax",
        {"output_classes": ...},
        "output 'probabilities' is [None, 2], one probability per class: give \"output_classes\"",
    ),
    (
        "output-classes-not-the-labels",
        "module_softmax",
        {"output_classes": ["benign", "cancer"]},
        'must list "benign" and "malignant" once each',
    ),
    (
        "probability-of-unknown",
        "tf1_article",
        {"probability_of": "cancer"},
        "probability_of: Input should be 'malignant' or 'benign'",
    ),
    ("threshold-1", "tf1_article", {"threshold": 1.0}, "threshold: Input should be less than 1"),
    (
        "label-column-alone",
        "tf1_article",
        {"reference_csv": str(SAMPLE_CSV), "label_column": "diagnosis"},
        '"label_column" and "label_malignant_value" go together',
    ),
    (
        "label-column-empty",
        "tf1_article",
        lambda tmp: {
            "reference_csv": _csv_with_constant("mean area", tmp / "r.csv", add="diagnosis"),
            "label_column": "diagnosis",
            "label_malignant_value": "M",
        },
        "label_column 'diagnosis' is empty on 569 row(s)",
    ),
    (
        "domain-excludes-the-reference-rows",
        "tf1_article",
        {"reference_csv": str(SAMPLE_CSV), "domain": {"all": {"min": 0}, "features": {"mean area": {"max": 2000}}}},
        "of the training rows (reference_csv data/breast_cancer.csv) have 'mean area' above the domain max 2000",
    ),
    (
        "domain-names-an-unknown-feature",
        "tf1_article",
        {"domain": {"features": {"mean radius (mm)": {"min": 0}}}},
        "domain.features names ['mean radius (mm)'], which are not among the features",
    ),
    (
        "label-column-not-in-reference",
        "tf1_article",
        {"reference_csv": str(SAMPLE_CSV), "label_column": "diagnosis", "label_malignant_value": "M"},
        "has no column(s) ['diagnosis']",
    ),
]


@pytest.mark.parametrize(("model", "changes", "message"), [pytest.param(*case[1:], id=case[0]) for case in BAD])
def test_bad_model_or_config_is_refused_and_nothing_is_written(
    model: str,
    changes: dict[str, Any] | Callable[[Path], dict[str, Any]],
    message: str,
    models: Callable[[str], Built],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Given a model, or a config, that cannot give a .tflite scoring P(malignant) right
    When it is imported
    Then the command exits 2 with an error naming what is wrong and what is there, and writes nothing."""
    built = models(model)
    config = built.write_config(tmp_path, **(changes(tmp_path) if callable(changes) else changes))

    code, out, err = run(built.path, config, tmp_path / "out", capsys)

    assert code == 2
    assert message in err, err
    assert out == ""
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda d: d, "has no saved_model.pb (it holds [])", id="empty-directory"),
        pytest.param(lambda d: d / "missing", "is not a directory", id="no-directory"),
        pytest.param(
            lambda d: (d / "saved_model.pb").write_bytes(b"\xff\xff\xff not a protobuf") and d,
            "is not a SavedModel protobuf",
            id="garbage-saved-model-pb",
        ),
        pytest.param(
            lambda d: (d / "model.tflite").write_bytes(b"TFL3") and d,
            "has no saved_model.pb (it holds ['model.tflite'])",
            id="a-tflite-instead",
        ),
    ],
)
def test_not_a_saved_model_is_refused(
    make: Callable[[Path], Path], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given a path that is not a SavedModel directory
    When it is imported
    Then the command says it is not a SavedModel and what is there, and writes nothing."""
    given = tmp_path / "given"
    given.mkdir()
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"features": FEATURES_30}), encoding="utf-8")

    code, _, err = run(make(given), config, tmp_path / "out", capsys)

    assert code == 2
    assert "not a SavedModel" in err and message in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("{not json", "cannot read config", id="not-json"),
        pytest.param("[1, 2]", "(top level)", id="a-list"),
    ],
)
def test_unreadable_config_is_refused(
    text: str, message: str, models: Callable[[str], Built], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given a config file that is not a JSON object
    When it is imported
    Then the command says so and writes nothing."""
    config = tmp_path / "c.json"
    config.write_text(text, encoding="utf-8")

    code, _, err = run(models("tf1_article").path, config, tmp_path / "out", capsys)

    assert code == 2 and message in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("features", "standardize", "low", "high", "source"),
    [
        pytest.param(
            ["mean radius", "worst area"],
            None,
            [6.981, 185.2],
            [28.11, 4254.0],
            "min..max of data/breast_cancer.csv",
            id="sample-csv",
        ),
        pytest.param(
            ["mean radius", "worst area"],
            {"mean": [1.0, 2.0], "scale": [0.5, 1.0]},
            [6.981, 185.2],
            [28.11, 4254.0],
            "min..max of data/breast_cancer.csv",
            id="sample-csv-before-mean-scale",
        ),
        pytest.param(
            ["a", "b"], {"mean": [1.0, 2.0], "scale": [0.5, 1.0]}, [0.0, 0.0], [2.0, 4.0], "mean +/- 2", id="mean-scale"
        ),
    ],
)
def test_generated_check_rows_stay_in_plausible_ranges(
    features: list[str], standardize: dict[str, Any] | None, low: list[float], high: list[float], source: str
) -> None:
    """Given a config with no reference_csv and no fit_csv
    When the check rows are generated
    Then each feature ranges over the sample export's measured min..max when it holds the feature, else over
    mean +/- 2 scale, and the rows include both ends."""
    config = import_model.parse_config({"features": features, "standardize": standardize})
    given, _ = import_model.resolve_standardize(config)

    lo, hi, shown = import_model.plausible_ranges(config, given, None)
    rows = import_model.generated_rows(lo, hi)

    np.testing.assert_allclose(lo, low)
    np.testing.assert_allclose(hi, high)
    assert source in shown
    assert (rows >= lo).all() and (rows <= hi).all()
    np.testing.assert_array_equal(rows.min(axis=0), lo)
    np.testing.assert_array_equal(rows.max(axis=0), hi)


def test_no_way_to_find_plausible_rows_is_refused() -> None:
    """Given features the sample export does not hold, no standardize and no reference_csv
    When the check rows are sought
    Then the import says to give reference_csv or standardize."""
    config = import_model.parse_config({"features": ["a", "b"]})

    with pytest.raises(import_model.ModelImportError, match="no rows to check parity on: give reference_csv"):
        import_model.plausible_ranges(config, None, None)


def test_a_parity_gap_above_1e_5_is_refused(
    models: Callable[[str], Built], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a SavedModel whose answers differ from the converted model's by about 2e-5 (TensorFlow's output
    shifted; the exact gap depends on the model trained at test time and on float32 rounding, so no digits are
    asserted)
    When it is imported
    Then the parity check refuses it (exit 2), naming a gap above the 1e-5 tolerance, the check rows and the worst
    row, and writes nothing."""
    built = models("keras_export")
    real = import_model.saved_model_output
    monkeypatch.setattr(
        import_model,
        "saved_model_output",
        lambda *a: np.clip(real(*a), 0.0, 1.0 - 2e-5) + np.float32(2e-5),
    )

    code, out, err = run(built.path, built.write_config(tmp_path), tmp_path / "out", capsys)

    assert code == 2
    assert out == ""
    found = re.search(
        r"does not score like the SavedModel: max \|P\(malignant\) tflite - SavedModel\| = (\S+) > (\S+) on ", err
    )
    assert found is not None, err
    gap, tolerance = float(found.group(1)), float(found.group(2))
    assert tolerance == import_model.PARITY_TOLERANCE
    assert gap > tolerance
    assert "rows generated in the min..max of data/breast_cancer.csv" in err
    assert re.search(r"\(worst: check row \d+\)", err), err
    assert not (tmp_path / "out").exists()


def test_a_refused_import_leaves_the_served_model_as_it_was(
    models: Callable[[str], Built], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Given OUT already holding a working model
    When a bad model is imported into it
    Then both files are byte-identical afterwards and still load together."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("model.tflite", "metadata.json"):
        shutil.copy2(MODEL_DIR / name, out / name)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    built = models("keras_in_module")

    code, _, _ = run(built.path, built.write_config(tmp_path), out, capsys)

    assert code == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    Scorer.load(out)


def test_make_import_model_runs_this_command() -> None:
    """Given the Makefile
    When `make -n import-model SAVED_MODEL=... CONFIG=... OUT=...` shows its recipe (without running it)
    Then the recipe runs `python -m tools.commands.import_model` with the three paths, and `make -n demo MODEL_DIR=...`
    hands MODEL_DIR (made absolute) to the demo."""
    shown = subprocess.run(
        ["make", "-n", "import-model", "SAVED_MODEL=sm dir", "CONFIG=c.json", "OUT=o"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    demo = subprocess.run(
        ["make", "-n", "demo", "MODEL_DIR=some/model"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout

    assert '-m tools.commands.import_model --saved-model "sm dir" --config "c.json" --out "o"' in shown
    assert f'MODEL_DIR="{REPO_ROOT}/some/model"' in demo
