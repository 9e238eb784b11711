"""Batched TFLite scoring.

One interpreter per container (build it at init, reuse it across invocations). A batch of N rows
is scored by resizing the input tensor to [N, n_features] and invoking once; very large batches are cut
into chunks of ``max_batch_rows`` so the interpreter's arena stays bounded. Never one call a row.

The metadata says what goes in front of the model (``preprocessing``: e.g. standardisation, applied to the
whole chunk as float32 array arithmetic) and which output, read how, is P(malignant) (``probability``), so a
model that outputs P(benign) or a [N, 2] softmax still yields P(malignant).
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring.errors import InvalidFeaturesError, ModelLoadError
from scoring.interpreter import interpreter_class
from scoring.metadata import ModelMetadata

DEFAULT_MAX_BATCH_ROWS = 16_384  # fastest in benchmarks/bench_scoring.py sweep; 2.2 MB of tensors
_NUMPY_DTYPES = {
    "float32": np.float32,
    "int32": np.int32,
    "int64": np.int64,
    "bool": np.bool_,
    "bytes": np.bytes_,  # a string output, e.g. the "classes" of a TF1 classify signature (never read)
}


NO_CLASS = -1  # the classification of a row the model gave no probability for (see Scores.scored)


def usable_probability(probability: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Per row: whether the probability is finite and within [0, 1] (NaN, infinities and 1.5 are not)."""
    p = np.asarray(probability)
    with np.errstate(invalid="ignore"):
        return np.asarray(np.isfinite(p) & (p >= 0.0) & (p <= 1.0), dtype=bool)


@dataclass(frozen=True)
class Scores:
    """Scores for a batch, aligned with its rows.

    A row is scored only when the model gave it a finite probability within [0, 1] (``scored``). Finite float32
    inputs can still make a model return NaN or infinity (3e38 overflows inside it), and an imported model may
    return anything: such a row has no class (``NO_CLASS``, label None), and must never be published as one.
    """

    malignant_probability: npt.NDArray[np.float32]
    classification: npt.NDArray[np.int8]  # 1 malignant, 0 benign, NO_CLASS when not scored
    names: tuple[str, str] = ("benign", "malignant")  # the labels of class 0 and class 1 (metadata.json's)

    @cached_property
    def label(self) -> npt.NDArray[np.object_]:
        """Per row: the label of its class ('malignant' / 'benign'), None when not scored.

        Derived on first use, never stored beside the classification: the pipeline writes ``CONDITION`` from the
        classification itself, and building 200,000 Python string references per chunk held the GIL for as long
        as a challenger's whole scoring could hide (benchmarks/challenger_cost.py)."""
        label = np.array(self.names, dtype=object)[np.clip(self.classification, 0, 1)]
        label[self.classification == NO_CLASS] = None
        return label

    def __len__(self) -> int:
        return int(self.malignant_probability.shape[0])

    @property
    def scored(self) -> npt.NDArray[np.bool_]:
        """Per row: whether its probability is finite and within [0, 1], i.e. whether its label can be trusted.

        Computed from the probabilities themselves, so it holds for any Scores, a fake scorer's too.
        """
        return usable_probability(self.malignant_probability)

    def only(self, rows: npt.NDArray[np.bool_]) -> Scores:
        """The scores of the rows ``rows`` marks, in order."""
        return Scores(self.malignant_probability[rows], self.classification[rows], self.names)


def default_model_dir() -> Path:
    """``$MODEL_DIR`` if set, else ``model/`` at the repository root (or next to the packages in the artifact)."""
    if env := os.environ.get("MODEL_DIR"):
        return Path(env)
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "model", here.parent.parent / "model"):
        if (candidate / "metadata.json").is_file():
            return candidate
    return here.parent / "model"


class Scorer:
    """Scores float32 feature batches with the project's TFLite model."""

    def __init__(
        self,
        model_content: bytes,
        metadata: ModelMetadata,
        *,
        threshold: float | None = None,
        max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
        num_threads: int | None = None,
    ) -> None:
        digest = hashlib.sha256(model_content).hexdigest()
        if digest != metadata.tflite_sha256:
            raise ModelLoadError(
                f"model file sha256 {digest[:12]}… does not match metadata {metadata.tflite_sha256[:12]}… "
                f"(model_version {metadata.model_version}): the .tflite and metadata.json are from different builds"
            )
        if max_batch_rows < 1:
            raise ValueError("max_batch_rows must be >= 1")
        self.metadata = metadata
        self.threshold = metadata.decision_threshold if threshold is None else float(threshold)
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        self.max_batch_rows = max_batch_rows
        self._names = (metadata.labels["0"], metadata.labels["1"])
        self._lock = threading.Lock()  # an interpreter is not thread-safe

        cls, self.interpreter_package = interpreter_class()
        try:
            self._interpreter = cls(model_content=model_content, num_threads=num_threads)
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"the TFLite interpreter cannot load the model: {exc}") from exc
        self._input_index, self._output_indices = self._check_signature()
        self._probability_output = metadata.probability.output
        self._allocated_rows = 0

    @classmethod
    def load(cls, model_dir: Path | None = None, **kwargs: Any) -> Scorer:
        model_dir = model_dir or default_model_dir()
        metadata = ModelMetadata.load(model_dir / "metadata.json")
        try:
            content = (model_dir / metadata.tflite_file).read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"cannot read model file: {exc}") from exc
        return cls(content, metadata, **kwargs)

    @property
    def model_version(self) -> str:
        return self.metadata.model_version

    @property
    def n_features(self) -> int:
        return self.metadata.n_features

    def _check_signature(self) -> tuple[int, dict[str, int]]:
        """Compare the model's signature with the metadata; any difference is a load error."""
        expected = self.metadata.signature
        signatures = self._interpreter.get_signature_list()
        if expected.key not in signatures:
            raise ModelLoadError(f"model has no signature {expected.key!r} (has {sorted(signatures)})")
        runner = self._interpreter.get_signature_runner(expected.key)
        inputs = runner.get_input_details()
        outputs = runner.get_output_details()
        if list(inputs) != [expected.input.name]:
            raise ModelLoadError(f"model inputs {list(inputs)} != expected [{expected.input.name!r}]")
        spec = inputs[expected.input.name]
        shape = [None if d == -1 else int(d) for d in spec["shape_signature"]]
        if shape != expected.input.shape or spec["dtype"] != _NUMPY_DTYPES.get(expected.input.dtype):
            raise ModelLoadError(
                f"model input {expected.input.name!r} is {spec['dtype'].__name__}{shape}, "
                f"expected {expected.input.dtype}{expected.input.shape}"
            )
        if set(outputs) != set(expected.outputs):
            raise ModelLoadError(f"model outputs {sorted(outputs)} != expected {sorted(expected.outputs)}")
        for name, dtype in expected.outputs.items():
            if outputs[name]["dtype"] != _NUMPY_DTYPES.get(dtype):
                raise ModelLoadError(f"model output {name!r} is {outputs[name]['dtype'].__name__}, expected {dtype}")
        if self.metadata.probability.output not in outputs:
            raise ModelLoadError(
                f"metadata's probability.output {self.metadata.probability.output!r} is not among the model's "
                f"outputs {sorted(outputs)}"
            )
        return int(spec["index"]), {name: int(d["index"]) for name, d in outputs.items()}

    def validate(self, features: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Return ``features`` as a C-contiguous float32 [N, n_features] array, or raise InvalidFeaturesError."""
        try:
            array = np.asarray(features)
        except ValueError as exc:  # ragged rows
            raise InvalidFeaturesError(
                f"features must be a rectangular [N, {self.n_features}] array: rows have different numbers of columns"
            ) from exc
        if array.ndim != 2:
            raise InvalidFeaturesError(f"features must be a 2-D [N, {self.n_features}] array, got {array.ndim}-D")
        if array.shape[1] != self.n_features:
            raise InvalidFeaturesError(f"features must have {self.n_features} columns, got {array.shape[1]}")
        if array.shape[0] == 0:
            raise InvalidFeaturesError("features batch is empty (0 rows)")
        if array.dtype.kind not in "fiu":  # refuses bool, complex, timedelta, datetime, str, object
            raise InvalidFeaturesError(f"features must be real numbers, got dtype {array.dtype}")
        with np.errstate(over="ignore"):  # values beyond float32 become inf and are reported just below
            array = np.ascontiguousarray(array, dtype=np.float32)
        finite = np.isfinite(array)
        if not finite.all():
            rows, cols = np.nonzero(~finite)
            names = self.metadata.feature_names
            raise InvalidFeaturesError(
                f"{len(rows)} non-finite value(s) (NaN, inf or out of float32 range) in {len(np.unique(rows))} row(s); "
                f"first at row {int(rows[0])}, column {names[int(cols[0])]!r}"
            )
        return array

    def score(self, features: npt.ArrayLike) -> Scores:
        """Score a batch: one interpreter invocation per chunk of at most ``max_batch_rows`` rows."""
        return self._score(self.validate(features))

    def score_checked(self, batch: npt.NDArray[np.float32]) -> Scores:
        """Score a batch another scorer's ``validate`` already returned (a challenger scoring the champion's
        features), without scanning it again: only its shape and type are checked.

        For a caller that uses the result only once the batch has passed ``validate``: a non-finite value that
        reached the model unchecked could come out as a finite probability. Scanning again cost a challenger most
        of what its own thread saves (benchmarks/challenger_cost.py)."""
        if not (
            isinstance(batch, np.ndarray)
            and batch.dtype == np.float32
            and batch.ndim == 2
            and batch.shape[0] > 0
            and batch.shape[1] == self.n_features
            and batch.flags.c_contiguous
        ):
            raise InvalidFeaturesError(
                f"a checked batch is a C-contiguous float32 [N, {self.n_features}] array of at least one row"
            )
        return self._score(batch)

    def _score(self, batch: npt.NDArray[np.float32]) -> Scores:
        n = batch.shape[0]
        probability = np.empty(n, dtype=np.float32)
        with self._lock:
            for start in range(0, n, self.max_batch_rows):
                chunk = batch[start : start + self.max_batch_rows]
                probability[start : start + chunk.shape[0]] = self._invoke(chunk)
        return self.classify(probability)

    def classify(self, probability: npt.NDArray[np.float32]) -> Scores:
        """Label probabilities at the threshold; a row without a probability in [0, 1] gets no class, no label."""
        unscored = ~usable_probability(probability)
        with np.errstate(invalid="ignore"):
            classification = (probability >= self.threshold).astype(np.int8)
        if unscored.any():
            classification[unscored] = NO_CLASS
        return Scores(probability, classification, self._names)

    def _invoke(self, chunk: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        rows = chunk.shape[0]
        if rows != self._allocated_rows:
            self._interpreter.resize_tensor_input(self._input_index, [rows, self.n_features], strict=True)
            self._interpreter.allocate_tensors()
            self._allocated_rows = rows
        self._interpreter.set_tensor(self._input_index, self.metadata.preprocessing.apply(chunk))
        self._interpreter.invoke()
        out: npt.NDArray[np.float32] = self._interpreter.get_tensor(self._output_indices[self._probability_output])
        return self.metadata.probability.malignant_probability(out)

    def raw_outputs(self, features: npt.ArrayLike) -> dict[str, np.ndarray]:
        """Every model output for one batch (preprocessed as for scoring), as the model computed it (for parity
        checks and diagnostics)."""
        batch = self.validate(features)
        with self._lock:
            self._invoke(batch)
            return {name: self._interpreter.get_tensor(i).copy() for name, i in self._output_indices.items()}
