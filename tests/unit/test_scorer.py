"""Unit tests for scoring.Scorer and scoring.interpreter: chunked invocation, input validation, load checks and
the interpreter import fallback. Uses the committed model/ artifacts; needs neither TensorFlow nor scikit-learn."""

from __future__ import annotations

import json
import math
import shutil
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from scoring import InvalidFeaturesError, ModelLoadError, Scorer
from scoring.interpreter import interpreter_class
from tests.unit.metadata_edits import set_field

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO_ROOT / "model"
N_FEATURES = 30
SENTINEL = 1234.5678  # every valid cell of a bad batch: a message echoing row data would contain "1234"


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.load(MODEL_DIR)


@pytest.fixture(scope="module")
def sample_rows() -> npt.NDArray[np.float64]:
    """The 569 rows of the committed sample CSV (values are text there, as an export; parsed here)."""
    return np.loadtxt(REPO_ROOT / "data" / "breast_cancer.csv", delimiter=",", skiprows=1, usecols=range(1, 31))


def _batch(rows: int = 4) -> npt.NDArray[np.float64]:
    return np.full((rows, N_FEATURES), SENTINEL, dtype=np.float64)


def _with(row: int, col: int, value: float) -> npt.NDArray[np.float64]:
    batch = _batch()
    batch[row, col] = value
    return batch


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """A copy of the committed model.tflite and metadata.json that a test may alter."""
    for name in ("model.tflite", "metadata.json"):
        shutil.copy2(MODEL_DIR / name, tmp_path / name)
    return tmp_path


def _edit_metadata(model_dir: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    path = model_dir / "metadata.json"
    meta = json.loads(path.read_text(encoding="utf-8"))
    edit(meta)
    path.write_text(json.dumps(meta), encoding="utf-8")


# ---------------------------------------------------------------------------------------------------------------
# One interpreter invocation per chunk
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_rows", "max_batch_rows", "expected_chunks"),
    [
        (569, 7, [7] * 81 + [2]),
        (569, 100, [100] * 5 + [69]),
        (569, 568, [568, 1]),
        (569, 569, [569]),
        (569, None, [569]),  # the default (16,384)
        (14, 7, [7, 7]),
        (1, 7, [1]),
        (100_000, None, [16_384] * 6 + [1_696]),
    ],
)
def test_one_invoke_per_chunk(
    n_rows: int, max_batch_rows: int | None, expected_chunks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a scorer whose interpreter's invoke() and set_tensor() are spied on
    When N rows are scored with max_batch_rows = k
    Then invoke() runs ceil(N / k) times, never once a row, on consecutive chunks of at most k rows."""
    kwargs = {} if max_batch_rows is None else {"max_batch_rows": max_batch_rows}
    scorer = Scorer.load(MODEL_DIR, **kwargs)
    interpreter = scorer._interpreter
    invokes: list[int] = []
    chunk_rows: list[int] = []
    real_invoke, real_set_tensor = interpreter.invoke, interpreter.set_tensor
    monkeypatch.setattr(interpreter, "invoke", lambda: (invokes.append(1), real_invoke())[1])
    monkeypatch.setattr(
        interpreter,
        "set_tensor",
        lambda index, value: (chunk_rows.append(value.shape[0]), real_set_tensor(index, value))[1],
    )

    scores = scorer.score(np.ones((n_rows, N_FEATURES), dtype=np.float32))

    assert len(invokes) == math.ceil(n_rows / scorer.max_batch_rows) == len(expected_chunks)
    assert chunk_rows == expected_chunks
    assert len(scores) == n_rows
    if n_rows > 1:
        assert len(invokes) < n_rows


def test_raw_outputs_is_one_invoke(scorer: Scorer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a spied interpreter
    When raw_outputs() is asked for a batch of 50 rows
    Then the interpreter is invoked once and every output has one value a row."""
    calls: list[int] = []
    real_invoke = scorer._interpreter.invoke
    monkeypatch.setattr(scorer._interpreter, "invoke", lambda: (calls.append(1), real_invoke())[1])

    outputs = scorer.raw_outputs(np.ones((50, N_FEATURES), dtype=np.float32))

    assert calls == [1]
    assert {name: value.shape for name, value in outputs.items()} == {
        "malignant_probability": (50,),
        "classification": (50,),
    }


# ---------------------------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------------------------


def test_scores_types_and_alignment(scorer: Scorer, sample_rows: npt.NDArray[np.float64]) -> None:
    """Given the 569 sample rows
    When they are scored
    Then there is one float32 probability in [0, 1], one int8 class (1 = probability >= threshold) and one
    'benign'/'malignant' label per row, and both classes occur."""
    scores = scorer.score(sample_rows)

    assert len(scores) == 569
    assert scores.malignant_probability.dtype == np.float32
    assert scores.classification.dtype == np.int8
    assert scores.label.shape == (569,)
    assert np.all((scores.malignant_probability >= 0) & (scores.malignant_probability <= 1))
    np.testing.assert_array_equal(scores.classification, scores.malignant_probability >= 0.5)
    np.testing.assert_array_equal(scores.label, np.where(scores.classification == 1, "malignant", "benign"))
    assert set(scores.label.tolist()) == {"benign", "malignant"}


@pytest.mark.parametrize("threshold", [0.1, 0.5, 0.9])
def test_custom_threshold_sets_the_class(threshold: float, sample_rows: npt.NDArray[np.float64]) -> None:
    """Given a scorer built with a non-default threshold
    When the sample is scored
    Then class 1 / 'malignant' is exactly the rows whose probability reaches that threshold."""
    scorer = Scorer.load(MODEL_DIR, threshold=threshold)

    scores = scorer.score(sample_rows)

    np.testing.assert_array_equal(scores.classification == 1, scores.malignant_probability >= threshold)
    np.testing.assert_array_equal(scores.label == "malignant", scores.malignant_probability >= threshold)


def test_a_checked_batch_scores_as_the_validated_one(scorer: Scorer, sample_rows: npt.NDArray[np.float64]) -> None:
    """Given the sample as validate returns it (a challenger's view of the champion's checked batch)
    When it is scored without a second scan
    Then the scores are those of score itself, row for row."""
    batch = scorer.validate(sample_rows)

    checked, scored = scorer.score_checked(batch), scorer.score(sample_rows)

    np.testing.assert_array_equal(checked.malignant_probability, scored.malignant_probability)
    np.testing.assert_array_equal(checked.classification, scored.classification)
    np.testing.assert_array_equal(checked.label, scored.label)


@pytest.mark.parametrize(
    "batch",
    [
        np.ones((4, N_FEATURES), dtype=np.float64),  # not float32
        np.ones((4, N_FEATURES - 1), dtype=np.float32),  # a column short
        np.ones((0, N_FEATURES), dtype=np.float32),  # no row
        np.ones((N_FEATURES, 4), dtype=np.float32).T,  # not C-contiguous
        np.ones(N_FEATURES, dtype=np.float32),  # 1-D
    ],
    ids=["float64", "29-columns", "empty", "column-major", "1-d"],
)
def test_a_checked_batch_of_the_wrong_shape_or_type_is_refused(scorer: Scorer, batch: np.ndarray) -> None:
    """Given a batch that validate could not have returned / When it is scored as checked / Then it is refused."""
    with pytest.raises(InvalidFeaturesError, match="C-contiguous float32"):
        scorer.score_checked(batch)


def test_a_label_is_derived_from_the_class_and_an_unscored_row_has_none(scorer: Scorer) -> None:
    """Given probabilities including unusable ones / When they are classified / Then each label is its class's
    name from the metadata, and a row without a class has no label."""
    scores = scorer.classify(np.array([0.9, 0.1, np.nan, 1.5, 0.5], dtype=np.float32))

    assert scores.label.tolist() == ["malignant", "benign", None, None, "malignant"]
    assert scores.only(np.array([False, True, True, False, False])).label.tolist() == ["benign", None]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": 1.0}, "threshold"),
        ({"threshold": -0.5}, "threshold"),
        ({"threshold": 1.5}, "threshold"),
        ({"max_batch_rows": 0}, "max_batch_rows"),
        ({"max_batch_rows": -7}, "max_batch_rows"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict[str, Any], message: str) -> None:
    """Given a threshold outside (0, 1) or max_batch_rows < 1
    When the scorer is built
    Then it refuses with a ValueError naming the argument."""
    with pytest.raises(ValueError, match=message):
        Scorer.load(MODEL_DIR, **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------------

BAD_INPUTS: list[Any] = [
    # id, batch, fragments the message must contain, strings it must not contain (besides the sentinel)
    pytest.param(_with(2, 3, np.nan), ["non-finite", "NaN", "row 2", "'mean area'"], [], id="nan"),
    pytest.param(_with(1, 0, np.inf), ["non-finite", "inf", "row 1", "'mean radius'"], [], id="+inf"),
    pytest.param(_with(0, 29, -np.inf), ["non-finite", "row 0", "'worst fractal dimension'"], ["-inf"], id="-inf"),
    pytest.param(
        _with(3, 5, 1e39), ["float32 range", "row 3", "'mean compactness'"], ["1e+39", "1e39", "e+38"], id="1e39"
    ),
    pytest.param(_with(3, 5, -1e39), ["float32 range", "row 3", "'mean compactness'"], ["1e+39", "1e39"], id="-1e39"),
    pytest.param(
        np.where(np.isin(np.arange(4), [1, 3])[:, None] & (np.arange(30) >= 28), np.nan, _batch()),
        ["4 non-finite value(s)", "in 2 row(s)", "first at row 1", "'worst symmetry'"],
        [],
        id="nan-in-two-rows",
    ),
    pytest.param(np.full((4, 29), SENTINEL), ["30 columns", "got 29"], [], id="29-columns"),
    pytest.param(np.full((4, 31), SENTINEL), ["30 columns", "got 31"], [], id="31-columns"),
    pytest.param(np.full(30, SENTINEL), ["2-D", "got 1-D"], [], id="1-D"),
    pytest.param(np.full((2, 30, 1), SENTINEL), ["2-D", "got 3-D"], [], id="3-D"),
    pytest.param(np.float64(SENTINEL), ["2-D", "got 0-D"], [], id="scalar"),
    pytest.param(np.empty((0, 30)), ["empty", "0 rows"], [], id="empty"),
    pytest.param([], ["2-D"], [], id="empty-list"),
    pytest.param(np.full((4, 30), str(SENTINEL)), ["real numbers", "dtype"], [], id="str"),
    pytest.param(np.full((4, 30), SENTINEL, dtype=object), ["real numbers", "dtype object"], [], id="object"),
    pytest.param(np.ones((4, 30), dtype=bool), ["real numbers", "dtype bool"], [], id="bool"),
    pytest.param(np.full((4, 30), SENTINEL, dtype=complex), ["real numbers", "complex"], [], id="complex"),
    pytest.param(np.full((4, 30), np.datetime64("2024-01-01")), ["real numbers", "datetime64"], [], id="datetime64"),
    pytest.param(
        np.full((4, 30), np.timedelta64(1234, "s")),
        ["real numbers", "timedelta64"],
        [],
        id="timedelta64",
    ),
    pytest.param(
        [[SENTINEL] * 30, [SENTINEL] * 29],
        ["columns"],
        [],
        id="ragged-rows",
    ),
]


@pytest.mark.parametrize(("batch", "must_contain", "must_not_contain"), BAD_INPUTS)
def test_bad_input_is_a_clear_error(
    batch: Any, must_contain: list[str], must_not_contain: list[str], scorer: Scorer
) -> None:
    """Given a batch that is not a finite real [N >= 1, 30] array
    When it is scored
    Then InvalidFeaturesError says what is wrong (column name, row, 'empty', 'columns', dtype) and never echoes
    the measurement values (the valid cells hold a sentinel that must not appear)."""
    with pytest.raises(InvalidFeaturesError) as excinfo:
        scorer.score(batch)

    message = str(excinfo.value)
    for fragment in must_contain:
        assert fragment in message
    for forbidden in [*must_not_contain, "1234", "5678"]:
        assert forbidden not in message


@pytest.mark.parametrize(
    "batch",
    [
        pytest.param(_with(2, 3, np.nan), id="nan"),
        pytest.param(np.full((4, 29), SENTINEL), id="29-columns"),
        pytest.param(np.empty((0, 30)), id="empty"),
    ],
)
def test_validate_and_raw_outputs_refuse_what_score_refuses(batch: Any, scorer: Scorer) -> None:
    """Given a bad batch
    When it goes to validate() or raw_outputs() rather than score()
    Then the same InvalidFeaturesError is raised (no path reaches the interpreter with bad data)."""
    with pytest.raises(InvalidFeaturesError):
        scorer.validate(batch)
    with pytest.raises(InvalidFeaturesError):
        scorer.raw_outputs(batch)


def test_bad_input_is_a_value_error(scorer: Scorer) -> None:
    """Given an empty batch
    When it is scored
    Then the error is also a ValueError, for callers that catch the builtin."""
    with pytest.raises(ValueError, match="empty"):
        scorer.score(np.empty((0, 30)))


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda a: a.tolist(), id="list-of-lists"),
        pytest.param(lambda a: a.astype(np.float32), id="float32"),
        pytest.param(lambda a: a.astype(np.float16), id="float16"),
        pytest.param(np.asfortranarray, id="fortran-order"),
        pytest.param(lambda a: np.repeat(a, 2, axis=1)[:, ::2], id="strided-view"),
        pytest.param(lambda a: np.rint(a).astype(np.int64), id="int64"),
    ],
)
def test_valid_inputs_become_float32_c_contiguous(convert: Callable[[Any], Any], scorer: Scorer) -> None:
    """Given valid numbers in another container, dtype or memory layout
    When they are validated and scored
    Then validate() gives a C-contiguous float32 [N, 30] array of the same values, and scoring it equals scoring
    that float32 array directly."""
    base = np.linspace(0.01, 2000.0, 5 * N_FEATURES).reshape(5, N_FEATURES)
    given = convert(base)
    expected = np.asarray(given, dtype=np.float32)

    validated = scorer.validate(given)

    assert validated.dtype == np.float32
    assert validated.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(validated, expected)
    np.testing.assert_array_equal(
        scorer.score(given).malignant_probability, scorer.score(expected).malignant_probability
    )


# ---------------------------------------------------------------------------------------------------------------
# Load checks
# ---------------------------------------------------------------------------------------------------------------


def _resize_features(n: int) -> Callable[[dict[str, Any]], None]:
    """Metadata describing an n-feature model (features list and input shape agree with each other; no reference
    profile, which would describe the 30 features)."""

    def edit(meta: dict[str, Any]) -> None:
        features = meta["features"]
        meta["features"] = (features + [{"name": f"extra {i}", "column": f"EXTRA_{i}"} for i in range(n)])[:n]
        meta["signature"]["input"]["shape"] = [None, n]
        meta["monitoring"] = None

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(set_field("signature.key", "serve"), "no signature 'serve'", id="signature-key"),
        pytest.param(set_field("signature.input.name", "x"), "model inputs ['features']", id="input-name"),
        pytest.param(set_field("signature.input.dtype", "int32"), "expected int32", id="input-dtype-int32"),
        pytest.param(set_field("signature.input.dtype", "float64"), "expected float64", id="input-dtype-unknown"),
        pytest.param(set_field("signature.input.shape", [1, 30]), "input shape [1, 30]", id="input-fixed-batch"),
        pytest.param(set_field("signature.input.shape", [None, 31]), "30 features", id="shape-vs-feature-list"),
        pytest.param(_resize_features(31), "expected float32[None, 31]", id="31-features"),
        pytest.param(_resize_features(29), "expected float32[None, 29]", id="29-features"),
        pytest.param(
            set_field("signature.outputs", {"probability": "float32", "classification": "int32"}),
            "model outputs",
            id="output-renamed",
        ),
        pytest.param(
            set_field("signature.outputs", {"malignant_probability": "float32"}), "model outputs", id="output-missing"
        ),
        pytest.param(
            set_field(
                "signature.outputs",
                {"malignant_probability": "float32", "classification": "int32", "condition": "string"},
            ),
            "model outputs",
            id="output-extra",
        ),
        pytest.param(
            set_field("signature.outputs.classification", "float32"), "'classification' is int32", id="output-dtype"
        ),
        pytest.param(set_field("tflite_sha256", "0" * 64), "sha256", id="sha256-in-metadata"),
        pytest.param(set_field("tflite_file", "missing.tflite"), "cannot read model file", id="tflite-file-name"),
        pytest.param(set_field("labels", {"0": "benign"}), "labels", id="labels"),
    ],
)
def test_metadata_that_does_not_match_the_model_is_a_load_error(
    edit: Callable[[dict[str, Any]], None], message: str, model_copy: Path
) -> None:
    """Given the committed model next to a metadata.json altered in one respect
    When Scorer.load() reads them
    Then it raises ModelLoadError naming the mismatch, instead of producing scores."""
    _edit_metadata(model_copy, edit)

    with pytest.raises(ModelLoadError) as excinfo:
        Scorer.load(model_copy)

    assert message in str(excinfo.value)


@pytest.mark.parametrize(
    ("alter", "message"),
    [
        pytest.param(lambda b: b + b"\0", "does not match metadata", id="byte-appended"),
        pytest.param(lambda b: b[:-1], "does not match metadata", id="truncated"),
        pytest.param(lambda b: b[:1000] + bytes([b[1000] ^ 1]) + b[1001:], "does not match metadata", id="bit-flip"),
    ],
)
def test_tflite_whose_sha256_differs_is_a_load_error(
    alter: Callable[[bytes], bytes], message: str, model_copy: Path
) -> None:
    """Given a model.tflite altered after metadata.json recorded its sha256
    When Scorer.load() reads them
    Then it raises ModelLoadError about the sha256 before any interpreter sees the file."""
    path = model_copy / "model.tflite"
    path.write_bytes(alter(path.read_bytes()))

    with pytest.raises(ModelLoadError, match="sha256") as excinfo:
        Scorer.load(model_copy)

    assert message in str(excinfo.value)


def test_a_file_that_is_not_a_model_is_a_load_error(model_copy: Path) -> None:
    """Given a model.tflite that is not a flatbuffer, with metadata recording its (matching) sha256
    When Scorer.load() reads them
    Then the interpreter's refusal comes out as ModelLoadError."""
    import hashlib

    garbage = b"this is not a TFLite flatbuffer" * 10
    (model_copy / "model.tflite").write_bytes(garbage)
    _edit_metadata(model_copy, set_field("tflite_sha256", hashlib.sha256(garbage).hexdigest()))

    with pytest.raises(ModelLoadError, match="cannot load the model"):
        Scorer.load(model_copy)


@pytest.mark.parametrize(
    ("missing", "message"),
    [("model.tflite", "cannot read model file"), ("metadata.json", "cannot read model metadata")],
)
def test_a_missing_file_is_a_load_error(missing: str, message: str, model_copy: Path) -> None:
    """Given a model directory without one of its two files
    When Scorer.load() reads it
    Then it raises ModelLoadError saying which file it could not read."""
    (model_copy / missing).unlink()

    with pytest.raises(ModelLoadError, match=message):
        Scorer.load(model_copy)


def test_unaltered_copy_loads(model_copy: Path, scorer: Scorer) -> None:
    """Given an unaltered copy of the committed files (the control for the load-error tests above)
    When Scorer.load() reads it
    Then it loads and scores exactly as the committed model does."""
    copy = Scorer.load(model_copy)
    batch = np.linspace(0.01, 2000.0, 3 * N_FEATURES).reshape(3, N_FEATURES)

    assert copy.model_version == scorer.model_version
    np.testing.assert_array_equal(copy.score(batch).malignant_probability, scorer.score(batch).malignant_probability)


def test_model_dir_from_environment(monkeypatch: pytest.MonkeyPatch, model_copy: Path) -> None:
    """Given MODEL_DIR pointing at a model copy whose tflite was altered
    When Scorer.load() is called without a directory
    Then it reads MODEL_DIR (and so refuses the altered file), not the repository's model/."""
    (model_copy / "model.tflite").write_bytes(b"altered")
    monkeypatch.setenv("MODEL_DIR", str(model_copy))

    with pytest.raises(ModelLoadError, match="sha256"):
        Scorer.load()


# ---------------------------------------------------------------------------------------------------------------
# Interpreter import
# ---------------------------------------------------------------------------------------------------------------


class FakeInterpreter:
    """Stands in for tflite_runtime's Interpreter in the import tests."""


def _install(monkeypatch: pytest.MonkeyPatch, *, litert: bool, tflite_runtime: type | None) -> None:
    """Make ai_edge_litert unimportable (litert=False) and/or provide a fake tflite_runtime exposing a class."""
    if not litert:
        monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
        monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    if tflite_runtime is None:
        monkeypatch.setitem(sys.modules, "tflite_runtime", None)
        monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    else:
        package = types.ModuleType("tflite_runtime")
        module = types.ModuleType("tflite_runtime.interpreter")
        module.Interpreter = tflite_runtime  # type: ignore[attr-defined]
        package.interpreter = module  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "tflite_runtime", package)
        monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", module)


@pytest.mark.parametrize(
    ("litert", "tflite_runtime", "expected_package"),
    [
        pytest.param(True, None, "ai-edge-litert", id="litert-only"),
        pytest.param(True, FakeInterpreter, "ai-edge-litert", id="both-prefers-litert"),
        pytest.param(False, FakeInterpreter, "tflite-runtime", id="falls-back-to-tflite-runtime"),
    ],
)
def test_interpreter_class_choice(
    litert: bool, tflite_runtime: type | None, expected_package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given which interpreter packages are importable
    When interpreter_class() is called
    Then it returns ai_edge_litert's Interpreter when it can, else tflite_runtime's, with the package's name."""
    from ai_edge_litert.interpreter import Interpreter as LiteRtInterpreter

    _install(monkeypatch, litert=litert, tflite_runtime=tflite_runtime)

    cls, package = interpreter_class()

    assert package == expected_package
    assert cls is (LiteRtInterpreter if expected_package == "ai-edge-litert" else FakeInterpreter)


def test_no_interpreter_package_is_a_clear_load_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given neither ai_edge_litert nor tflite_runtime importable
    When interpreter_class() is called, or a Scorer is loaded
    Then ModelLoadError says no interpreter is installed and names both packages."""
    _install(monkeypatch, litert=False, tflite_runtime=None)

    with pytest.raises(ModelLoadError) as excinfo:
        interpreter_class()
    with pytest.raises(ModelLoadError, match="no TFLite interpreter is installed"):
        Scorer.load(MODEL_DIR)

    message = str(excinfo.value)
    assert "no TFLite interpreter is installed" in message
    assert "ai-edge-litert" in message
    assert "tflite-runtime" in message


def test_scorer_runs_on_the_tflite_runtime_fallback(monkeypatch: pytest.MonkeyPatch, scorer: Scorer) -> None:
    """Given ai_edge_litert unimportable and a tflite_runtime whose Interpreter has the same API
    When a Scorer is loaded and scores a batch
    Then it reports tflite-runtime and scores as the LiteRT scorer does."""
    from ai_edge_litert.interpreter import Interpreter as SameApiInterpreter

    _install(monkeypatch, litert=False, tflite_runtime=SameApiInterpreter)
    batch = np.linspace(0.01, 2000.0, 3 * N_FEATURES).reshape(3, N_FEATURES)

    fallback = Scorer.load(MODEL_DIR)

    assert fallback.interpreter_package == "tflite-runtime"
    assert scorer.interpreter_package == "ai-edge-litert"
    np.testing.assert_array_equal(
        fallback.score(batch).malignant_probability, scorer.score(batch).malignant_probability
    )


# ---------------------------------------------------------------------------------------------------------------
# The metadata drives the preprocessing and the reading of P(malignant)
# ---------------------------------------------------------------------------------------------------------------


def test_standardize_in_metadata_feeds_the_model_standardised_rows(
    model_copy: Path, scorer: Scorer, sample_rows: npt.NDArray[np.float64]
) -> None:
    """Given the committed model with a standardisation in its metadata
    When the sample rows are scored
    Then the model was fed (x - mean) / scale, computed in float32 on the whole batch: the scores equal the plain
    model's scores of rows standardised beforehand, and differ from the plain model's scores of the raw rows."""
    rows = sample_rows.astype(np.float32)
    mean = rows.mean(axis=0, dtype=np.float64)
    scale = rows.std(axis=0, dtype=np.float64) * 0.5
    _edit_metadata(
        model_copy, set_field("preprocessing", {"standardize": {"mean": mean.tolist(), "scale": scale.tolist()}})
    )
    standardising = Scorer.load(model_copy, max_batch_rows=100)

    scores = standardising.score(rows)

    expected = scorer.score((rows - mean.astype(np.float32)) / scale.astype(np.float32))
    np.testing.assert_array_equal(scores.malignant_probability, expected.malignant_probability)
    assert not np.array_equal(scores.classification, scorer.score(rows).classification)


def test_probability_of_benign_is_flipped_to_malignant(
    model_copy: Path, scorer: Scorer, sample_rows: npt.NDArray[np.float64]
) -> None:
    """Given the committed model whose metadata says its output is P(benign)
    When the sample rows are scored
    Then MALIGNANT_PROBABILITY is 1 - the output, and the class and label follow it (the StreamSets rule)."""
    _edit_metadata(
        model_copy, set_field("probability", {"output": "malignant_probability", "probability_of": "benign"})
    )
    flipped = Scorer.load(model_copy)

    scores = flipped.score(sample_rows)

    plain = scorer.score(sample_rows).malignant_probability
    np.testing.assert_array_equal(scores.malignant_probability, np.float32(1.0) - plain)
    np.testing.assert_array_equal(scores.classification, (scores.malignant_probability >= 0.5).astype(np.int8))
    assert set(scores.label[scores.classification == 1]) == {"malignant"}


@pytest.mark.parametrize(
    ("classes", "column"),
    [
        pytest.param(["benign", "malignant"], 1, id="benign-first"),
        pytest.param(["malignant", "benign"], 0, id="malignant-first"),
    ],
)
def test_a_two_class_output_is_read_by_its_class_order(classes: list[str], column: int) -> None:
    """Given a [N, 2] softmax output and the order of its classes
    When P(malignant) is read from it
    Then it is the column the order names as malignant."""
    from scoring.metadata import ProbabilityOutput

    raw = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]], dtype=np.float32)
    reading = ProbabilityOutput(output="probabilities", kind="classes", classes=classes)  # type: ignore[arg-type]

    np.testing.assert_array_equal(reading.malignant_probability(raw), raw[:, column])


def test_a_probability_output_that_is_not_in_the_model_is_a_load_error(model_copy: Path) -> None:
    """Given metadata whose probability.output names an output the model does not have
    When Scorer.load() reads it
    Then ModelLoadError names it and the outputs there are."""
    _edit_metadata(model_copy, set_field("probability", {"output": "outputs"}))

    with pytest.raises(
        ModelLoadError,
        match=r"probability.output 'outputs' is not among the model's outputs "
        r"\['classification', 'malignant_probability'\]",
    ):
        Scorer.load(model_copy)
