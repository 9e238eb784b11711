"""`make import-model`: a user's SavedModel -> the ``model.tflite`` + ``metadata.json`` the function loads.

    make import-model SAVED_MODEL=<dir> CONFIG=<file.json> [OUT=<dir>]

Development-only (it imports TensorFlow; build/build_artifact.py ships src/ and the two model files, never
tools/). ``make model`` goes through ``import_model`` too, so there is one conversion path.

What it does, in order, and nothing is written unless every step passes:

1. reads the config (exactly the keys in ``ImportConfig``) and the SavedModel's own ``saved_model.pb``: the
   tag set, the signature, the input and output keys must be there (the error names the ones that are), the
   input must be float32 ``[None, len(features)]``;
2. works out the preprocessing (``standardize``: given mean/scale, or the population mean and standard
   deviation of the features in ``fit_csv``);
3. converts with ``TFLiteConverter.from_saved_model(dir, signature_keys=[signature], tags=tags)`` (builtin ops
   only: LiteRT in Lambda has no Flex delegate), and loads the result through the function's own ``Scorer``;
4. scores the check rows (``reference_csv``, or generated rows inside the features' plausible ranges) both
   ways, with the same preprocessing: the SavedModel run by TensorFlow and the .tflite run by ``Scorer``. The
   output must be a probability (in [0, 1]; a [N, 2] output's rows summing to 1), and P(malignant) must agree
   to ``PARITY_TOLERANCE``;
5. judges the converted model on real rows (the ``reference_csv`` rows, else the ``fit_csv`` rows, else the
   sample export's when it holds the features): it is refused when it labels every row one class, and, with
   labels, when its accuracy is below the majority class's share (worse than chance) or its ROC AUC is below 0.5
   (the probability is inverted), unless the config says ``"accept_poor_reference_performance": true`` (recorded
   in the metadata, with what was wrong);
6. writes ``model.tflite`` then ``metadata.json`` (with provenance: the SavedModel's fingerprint and sha256,
   tags, signature and tensor names, the preprocessing, the probability mapping, the threshold, the reference
   metrics when labelled rows were given, the tool versions and the model version).

Each feature's metadata also carries its valid ``domain`` (from the config's ``domain``: a ``min`` and/or ``max``
for ``all`` features, or per feature under ``features``; a feature's own bound wins) and its ``training_range``
(min, max, 0.5th and 99.5th percentiles) over the data the model was trained with: the rows ``make model`` trained
on, else the ``reference_csv`` rows, else the ``standardize.fit_csv`` rows (none: no training range, nothing is
flagged). Training rows outside the domain are refused: the domain or the data is wrong.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pa_csv
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.features import convert_features
from pipeline.output import default_column_name
from scoring import ModelLoadError, ModelMetadata, Scorer, ScoringError
from scoring.metadata import CLASS_LABELS, Domain, Preprocessing, ProbabilityOutput, Standardize
from tools.commands.score import NATIVE_NOISE, native_stderr_without

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CSV = REPO_ROOT / "data" / "breast_cancer.csv"
PARITY_TOLERANCE = 1e-5
SOFTMAX_SUM_TOLERANCE = 1e-4
GENERATED_ROWS = 512
GENERATED_SEED = 20261129
TFLITE_FILE = "model.tflite"
LABELS = {"0": "benign", "1": "malignant"}  # CLASSIFICATION 0/1 -> CONDITION: the StreamSets rule
_DTYPE_NAMES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 6: "int8", 7: "string", 9: "int64", 10: "bool"}
_DTYPE_NAMES |= {19: "float16", 14: "bfloat16"}


class ModelImportError(Exception):
    """The model or the config cannot give a .tflite that scores right; nothing was written."""


class StandardizeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    mean: list[float] | None = None
    scale: list[float] | None = None
    fit_csv: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> StandardizeConfig:
        given = self.mean is not None or self.scale is not None
        if given == (self.fit_csv is not None):
            raise ValueError('give either "mean" and "scale", or "fit_csv"')
        if given and (self.mean is None or self.scale is None):
            raise ValueError('"mean" and "scale" go together')
        return self


class DomainConfig(BaseModel):
    """The valid domain: ``all`` bounds every feature, ``features`` one feature (its bounds win over ``all``'s)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    all: Domain | None = None
    features: dict[str, Domain] = Field(default_factory=dict)


class ImportConfig(BaseModel):
    """The import config (JSON). Unknown keys are refused, so a misspelt key never silently means its default."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tags: list[str] = Field(default_factory=lambda: ["serve"], min_length=1)
    signature: str = "serving_default"
    input: str | None = None
    output: str | None = None
    features: list[str] = Field(min_length=1)
    standardize: StandardizeConfig | None = None
    probability_of: Literal["malignant", "benign"] = "malignant"
    output_classes: list[str] | None = None
    threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    reference_csv: Path | None = None
    label_column: str | None = None
    label_malignant_value: str | int | float | bool | None = None
    model_version: str | None = Field(default=None, min_length=1, max_length=128)
    domain: DomainConfig | None = None
    # A model that scores real rows worse than chance, inverted, or as one class is refused unless this says so.
    accept_poor_reference_performance: bool = False

    @field_validator("features")
    @classmethod
    def _unique_features(cls, value: list[str]) -> list[str]:
        duplicates = sorted({f for f in value if value.count(f) > 1})
        if duplicates:
            raise ValueError(f"features are listed twice: {duplicates}")
        unsafe = [f for f in value if not default_column_name(f)]
        if unsafe:
            raise ValueError(f"features {unsafe} have no usable column name")
        columns: dict[str, str] = {}
        for name in value:
            if (column := default_column_name(name)) in columns:
                raise ValueError(f"features {columns[column]!r} and {name!r} would both be the column {column}")
            columns[column] = name
        return value

    @field_validator("output_classes")
    @classmethod
    def _two_labels(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and sorted(value) != list(CLASS_LABELS):
            raise ValueError(f'must list "benign" and "malignant" once each, in the output\'s order; got {value}')
        return value

    @model_validator(mode="after")
    def _labels_together(self) -> ImportConfig:
        if (self.label_column is None) != (self.label_malignant_value is None):
            raise ValueError('"label_column" and "label_malignant_value" go together')
        if self.label_column is not None and self.reference_csv is None:
            raise ValueError('"label_column" needs "reference_csv" (the labelled rows)')
        if self.domain is not None:
            unknown = sorted(set(self.domain.features) - set(self.features))
            if unknown:
                raise ValueError(f"domain.features names {unknown}, which are not among the features")
            for name in self.features:
                self.feature_domain(name)  # raises when a feature's merged bounds cross
        return self

    def feature_domain(self, name: str) -> Domain:
        """A feature's valid domain: its own bounds, else those given for all features."""
        if self.domain is None:
            return Domain()
        common = self.domain.all or Domain()
        own = self.domain.features.get(name, Domain())
        low = own.min if own.min is not None else common.min
        high = own.max if own.max is not None else common.max
        try:
            return Domain(min=low, max=high)
        except ValidationError as exc:
            raise ValueError(f"domain of {name!r}: min {low} must be below max {high}") from exc


def load_config(path: Path) -> ImportConfig:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelImportError(f"cannot read config {path}: {exc}") from exc
    return parse_config(raw, source=str(path))


def parse_config(raw: Any, *, source: str = "config") -> ImportConfig:
    try:
        return ImportConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise ModelImportError(f"{source} is invalid: {problems}") from exc


# --- the SavedModel, read from its own protobuf (no TensorFlow graph is built for this) -------------------------


@dataclass(frozen=True)
class TensorInfo:
    key: str
    name: str  # the graph tensor, e.g. inputs:0
    dtype: str
    shape: list[int | None] | None  # None: unknown rank


@dataclass(frozen=True)
class SignatureInfo:
    tags: list[str]
    key: str
    method_name: str
    input: TensorInfo
    output: TensorInfo
    all_outputs: dict[str, TensorInfo]


def _tensor_info(key: str, info: Any) -> TensorInfo:
    dtype = _DTYPE_NAMES.get(int(info.dtype), f"dtype#{int(info.dtype)}")
    shape = None
    if info.HasField("tensor_shape") and not info.tensor_shape.unknown_rank:
        shape = [None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim]
    return TensorInfo(key=key, name=str(info.name), dtype=dtype, shape=shape)


def _pick(kind: str, wanted: str | None, available: list[str]) -> str:
    if wanted is None:
        if len(available) != 1:
            raise ModelImportError(f'the signature has {len(available)} {kind}s {available}: name one as "{kind}"')
        return available[0]
    if wanted not in available:
        raise ModelImportError(f"the signature has no {kind} {wanted!r}; its {kind}s are {available}")
    return wanted


def inspect_saved_model(saved_model: Path, config: ImportConfig) -> SignatureInfo:
    """Check the tags, signature and keys the config names against the SavedModel's saved_model.pb."""
    from tensorflow.core.protobuf import saved_model_pb2

    if not saved_model.is_dir():
        raise ModelImportError(f"not a SavedModel: {saved_model} is not a directory")
    pb = saved_model / "saved_model.pb"
    if not pb.is_file():
        present = sorted(p.name for p in saved_model.iterdir())[:10]
        raise ModelImportError(f"not a SavedModel: {saved_model} has no saved_model.pb (it holds {present})")
    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(pb.read_bytes())
    except Exception as exc:  # protobuf's DecodeError
        raise ModelImportError(f"not a SavedModel: {pb} is not a SavedModel protobuf ({exc})") from exc
    if not proto.meta_graphs:
        raise ModelImportError(f"not a SavedModel: {pb} holds no meta graph")

    tag_sets = [sorted(mg.meta_info_def.tags) for mg in proto.meta_graphs]
    matching = [mg for mg in proto.meta_graphs if sorted(mg.meta_info_def.tags) == sorted(config.tags)]
    if not matching:
        raise ModelImportError(f"the SavedModel has no meta graph tagged {config.tags}; its tag sets are {tag_sets}")
    graph = matching[0]
    signatures = sorted(graph.signature_def)
    if config.signature not in graph.signature_def:
        raise ModelImportError(
            f"the SavedModel (tags {config.tags}) has no signature {config.signature!r}; "
            f"its signatures are {signatures}"
        )
    sig = graph.signature_def[config.signature]
    input_key = _pick("input", config.input, sorted(sig.inputs))
    if len(sig.inputs) != 1:
        others = sorted(set(sig.inputs) - {input_key})
        raise ModelImportError(
            f"the signature needs inputs {others} besides {input_key!r}: only one input is supported"
        )
    output_key = _pick("output", config.output, sorted(sig.outputs))
    inp = _tensor_info(input_key, sig.inputs[input_key])
    outputs = {key: _tensor_info(key, info) for key, info in sig.outputs.items()}
    out = outputs[output_key]

    n = len(config.features)
    if inp.dtype != "float32":
        raise ModelImportError(
            f"input {input_key!r} ({inp.name}) is {inp.dtype}: the function feeds float32 measurements, so the "
            "input must be float32"
        )
    if inp.shape is None or len(inp.shape) != 2:
        shown = "of unknown rank" if inp.shape is None else f"rank {len(inp.shape)} {inp.shape}"
        raise ModelImportError(f"input {input_key!r} is {shown}: it must be rank 2, [None, {n}] (rows x features)")
    if inp.shape[0] is not None:
        raise ModelImportError(f"input {input_key!r} has a fixed batch size {inp.shape[0]}: it must be [None, {n}]")
    if inp.shape[1] is None:
        raise ModelImportError(
            f"input {input_key!r} has no fixed width ([None, None]): export it as [None, {n}], one column a feature"
        )
    if inp.shape[1] != n:
        raise ModelImportError(
            f"input {input_key!r} is {inp.shape[1]} wide but the config lists {n} features: list exactly the "
            "columns the model reads, in its order"
        )
    if out.dtype != "float32":
        raise ModelImportError(f"output {output_key!r} ({out.name}) is {out.dtype}: a probability must be float32")
    return SignatureInfo(
        tags=sorted(config.tags),
        key=config.signature,
        method_name=str(sig.method_name),
        input=inp,
        output=out,
        all_outputs=outputs,
    )


# --- rows: the fit file, the reference rows, generated rows ------------------------------------------------------


@dataclass
class Rows:
    values: npt.NDArray[np.float64]  # [n, n_features]
    path: Path | None = None
    sha256: str | None = None
    rows_skipped: int = 0
    labels: npt.NDArray[np.int8] | None = None  # 1 malignant


def _describe(tensor: TensorInfo) -> dict[str, Any]:
    return {"key": tensor.key, "tensor": tensor.name, "dtype": tensor.dtype, "shape": tensor.shape}


def shown_path(path: Path) -> str:
    """A path as recorded in the metadata: relative to the repository when inside it (no machine's home in it)."""
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_rows(path: Path, features: list[str], *, what: str, label: tuple[str, str] | None = None) -> Rows:
    """The rows of ``path`` whose features are all numbers (others skipped and counted), read with pyarrow."""
    try:
        header = pa_csv.open_csv(path).schema.names
        table = pa_csv.read_csv(
            path, convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()))
        )
    except (OSError, pa.ArrowInvalid) as exc:
        raise ModelImportError(f"cannot read {what} {path}: {exc}") from exc
    needed = [*features, *([label[0]] if label else [])]
    missing = [c for c in needed if c not in header]
    if missing:
        raise ModelImportError(f"{what} {path} has no column(s) {missing}; its columns are {header}")
    converted = convert_features(table, features)
    values = converted.good_values
    if values.shape[0] == 0:
        raise ModelImportError(f"{what} {path} has no row whose features are all numbers")
    rows = Rows(np.ascontiguousarray(values), path, _sha256(path), int((~converted.ok).sum()))
    if label is not None:
        column = [
            None if v is None else v.strip() for v in table.column(label[0]).filter(pa.array(converted.ok)).to_pylist()
        ]
        blank = sum(1 for v in column if not v)
        if blank:
            raise ModelImportError(f"{what} {path}: label_column {label[0]!r} is empty on {blank} row(s)")
        rows.labels = np.array([v == label[1] for v in column], dtype=np.int8)
    return rows


def _label_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def resolve_standardize(config: ImportConfig) -> tuple[Standardize | None, Rows | None]:
    """The standardisation to apply, and the fit file's rows when it came from one."""
    cfg = config.standardize
    if cfg is None:
        return None, None
    n = len(config.features)
    if cfg.fit_csv is not None:
        fit = read_rows(cfg.fit_csv, config.features, what="standardize.fit_csv")
        mean = fit.values.mean(axis=0)
        scale = fit.values.std(axis=0)  # population (ddof=0), as scikit-learn's StandardScaler
        constant = [f for f, s in zip(config.features, scale, strict=True) if not s > 0]
        if constant:
            raise ModelImportError(f"standardize.fit_csv: column(s) {constant} are constant, so cannot be scaled")
        standardize = Standardize(
            mean=[float(v) for v in mean],
            scale=[float(v) for v in scale],
            fit_csv=shown_path(cfg.fit_csv),
            fit_csv_sha256=fit.sha256,
            fit_rows=int(fit.values.shape[0]),
            fit_rows_skipped=fit.rows_skipped,
        )
        return standardize, fit
    assert cfg.mean is not None
    assert cfg.scale is not None
    for name, values in (("mean", cfg.mean), ("scale", cfg.scale)):
        if len(values) != n:
            raise ModelImportError(f"standardize.{name} has {len(values)} values for {n} features")
    try:
        return Standardize(mean=cfg.mean, scale=cfg.scale), None
    except ValidationError as exc:
        raise ModelImportError(f"standardize: {exc.errors()[0]['msg']}") from exc


def plausible_ranges(
    config: ImportConfig, standardize: Standardize | None, fit: Rows | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], str]:
    """Low and high per feature for generated check rows, and where they came from: the fit file's min..max, else
    the sample export's (when it holds the features: measured values), else mean +/- 2 scale."""
    if fit is not None:
        return fit.values.min(axis=0), fit.values.max(axis=0), "rows generated in its min..max"
    if SAMPLE_CSV.is_file() and set(config.features) <= set(pa_csv.open_csv(SAMPLE_CSV).schema.names):
        sample = read_rows(SAMPLE_CSV, config.features, what="the sample CSV")
        low, high = sample.values.min(axis=0), sample.values.max(axis=0)
        return low, high, f"rows generated in the min..max of {shown_path(SAMPLE_CSV)}"
    if standardize is not None:
        mean, scale = np.asarray(standardize.mean), np.asarray(standardize.scale)
        return mean - 2 * scale, mean + 2 * scale, "rows generated in standardize.mean +/- 2 standardize.scale"
    raise ModelImportError(
        "no rows to check parity on: give reference_csv, or standardize (its mean and scale bound the generated "
        f"rows); the sample CSV does not hold the features {config.features}"
    )


def clip_to_domain(
    config: ImportConfig, low: npt.NDArray[np.float64], high: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Generated rows' bounds moved inside the valid domain (mean - 2 scale may be a negative area)."""
    domains = [config.feature_domain(name) for name in config.features]
    floor = np.array([-np.inf if d.min is None else d.min for d in domains])
    ceiling = np.array([np.inf if d.max is None else d.max for d in domains])
    return np.clip(low, floor, ceiling), np.clip(high, floor, ceiling)


def generated_rows(low: npt.NDArray[np.float64], high: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    rng = np.random.default_rng(GENERATED_SEED)
    rows = rng.uniform(low, high, size=(GENERATED_ROWS, low.shape[0]))
    return np.vstack([low, high, (low + high) / 2, rows])


# --- conversion and parity ---------------------------------------------------------------------------------------


def convert(saved_model: Path, info: SignatureInfo) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model), signature_keys=[info.key], tags=set(info.tags)
    )
    try:
        return bytes(converter.convert())
    except Exception as exc:  # ConverterError and friends; the message lists the ops it could not map
        text = str(exc)
        ops = [
            line.strip()
            for line in text.splitlines()
            if line.strip().startswith(("Custom ops:", "Flex ops:", "TF Select ops:"))
        ]
        detail = "; ".join(ops) if ops else text.strip().splitlines()[-1][:500] if text.strip() else type(exc).__name__
        raise ModelImportError(f"LiteRT cannot run this model: the TFLite conversion failed ({detail})") from exc


def saved_model_output(saved_model: Path, info: SignatureInfo, model_input: npt.NDArray[np.float32]) -> np.ndarray:
    """The SavedModel's own output for ``model_input`` (already preprocessed), run by TensorFlow."""
    import tensorflow as tf

    loaded: Any = tf.saved_model.load(str(saved_model), tags=info.tags)
    fn = loaded.signatures[info.key]
    result = fn(**{info.input.key: tf.constant(model_input)})
    return np.asarray(result[info.output.key].numpy())


def probability_output(config: ImportConfig, info: SignatureInfo, raw: np.ndarray) -> ProbabilityOutput:
    """How the output reads as P(malignant), from its shape on the check rows and the config."""
    rows = raw.shape[0]
    key = info.output.key
    shape = [None, *raw.shape[1:]]
    if raw.ndim == 1 or (raw.ndim == 2 and raw.shape[1] == 1):
        if config.output_classes is not None:
            raise ModelImportError(
                f'output {key!r} is {shape}, one probability a row: "output_classes" is for a [N, 2] output; '
                'say whose probability it is with "probability_of"'
            )
        kind: Literal["probability", "classes"] = "probability"
    elif raw.ndim == 2 and raw.shape[1] == 2:
        if config.output_classes is None:
            raise ModelImportError(
                f'output {key!r} is [None, 2], one probability per class: give "output_classes", the label of each '
                'column in order, e.g. ["benign", "malignant"]'
            )
        if "probability_of" in config.model_fields_set:
            raise ModelImportError(
                f'output {key!r} is [None, 2], one probability per class: it is read by "output_classes", '
                '"probability_of" is for a [N] or [N, 1] output'
            )
        kind = "classes"
    else:
        raise ModelImportError(f"output {key!r} is {shape}: it must be [N], [N, 1] (a probability) or [N, 2] (softmax)")
    finite = np.isfinite(raw)
    if not finite.all():
        raise ModelImportError(f"output {key!r} is NaN or infinite on {int((~finite).any(axis=-1).sum())} check row(s)")
    low, high = float(raw.min()), float(raw.max())
    if low < 0.0 or high > 1.0:
        raise ModelImportError(
            f"output {key!r} is not a probability: it ranges over [{low:.4g}, {high:.4g}] on the {rows} check rows, "
            "outside [0, 1] (logits? export the model with its sigmoid or softmax)"
        )
    if kind == "classes":
        worst = float(np.max(np.abs(raw.sum(axis=1) - 1.0)))
        if worst > SOFTMAX_SUM_TOLERANCE:
            raise ModelImportError(f"output {key!r} rows do not sum to 1 (off by up to {worst:.3g}): not a softmax")
        return ProbabilityOutput(output=key, kind="classes", classes=config.output_classes)  # type: ignore[arg-type]
    return ProbabilityOutput(output=key, kind="probability", probability_of=config.probability_of)


def probability_json(probability: ProbabilityOutput) -> dict[str, Any]:
    """How P(malignant) is read, with only the keys that apply to the output's kind."""
    drop = {"probability_of"} if probability.kind == "classes" else {"classes"}
    return probability.model_dump(mode="json", exclude=drop)


def directory_sha256(path: Path) -> str:
    """sha256 over every file of a directory: relative path, size and content, in sorted order."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{file.stat().st_size}\0".encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def fingerprint(saved_model: Path) -> dict[str, Any] | None:
    """The SavedModel's own fingerprint (fingerprint.pb, written by TF >= 2.12), when it has one."""
    if not (saved_model / "fingerprint.pb").is_file():
        return None
    import tensorflow as tf

    fp = tf.saved_model.experimental.read_fingerprint(str(saved_model))
    return {
        "singleprint": fp.singleprint(),
        "saved_model_checksum": int(fp.saved_model_checksum),
        "signature_def_hash": int(fp.signature_def_hash),
    }


def _tool_versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    from scoring.interpreter import interpreter_class

    versions = {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__}
    versions["numpy"] = np.__version__
    versions["pyarrow"] = pa.__version__
    _, package = interpreter_class()
    from importlib.metadata import version

    versions[package] = version(package)
    return versions


@dataclass(frozen=True)
class TrainingRows:
    """The rows a model was trained with, and how to say where they came from in the metadata."""

    values: npt.NDArray[np.float64]  # [n, n_features]
    source: str


def training_rows(
    given: TrainingRows | None, reference: Rows | None, fit: Rows | None, config: ImportConfig
) -> TrainingRows | None:
    """The training data: given by ``make model``, else the reference rows, else the scaler's fit rows."""
    if given is not None:
        return given
    if reference is not None and config.reference_csv is not None:
        return TrainingRows(reference.values, f"reference_csv {shown_path(config.reference_csv)}")
    if fit is not None and config.standardize is not None and config.standardize.fit_csv is not None:
        return TrainingRows(fit.values, f"standardize.fit_csv {shown_path(config.standardize.fit_csv)}")
    return None


def feature_metadata(config: ImportConfig, training: TrainingRows | None) -> list[dict[str, Any]]:
    """Each feature's name, output column, valid domain and training range; refuses training data outside the
    domain (the domain, or the data, is wrong)."""
    features: list[dict[str, Any]] = [
        {"name": name, "column": default_column_name(name), "domain": config.feature_domain(name).model_dump()}
        for name in config.features
    ]
    if training is None:
        return features
    values = training.values
    if values.ndim != 2 or values.shape[1] != len(features) or values.shape[0] == 0:
        raise ModelImportError(f"the training rows ({training.source}) are not [n > 0, {len(features)}]")
    if not np.isfinite(values).all():
        raise ModelImportError(f"the training rows ({training.source}) hold non-finite values")
    low, high = values.min(axis=0), values.max(axis=0)
    p_low, p_high = np.percentile(values, [0.5, 99.5], axis=0)  # linear interpolation, numpy's default
    for j, entry in enumerate(features):
        domain = config.feature_domain(entry["name"])
        below = 0 if domain.min is None else int((values[:, j] < domain.min).sum())
        above = 0 if domain.max is None else int((values[:, j] > domain.max).sum())
        if below or above:
            side = f"below the domain min {domain.min:g}" if below else f"above the domain max {domain.max:g}"
            raise ModelImportError(
                f"{below or above} of the training rows ({training.source}) have {entry['name']!r} {side}: the "
                "domain, or the data, is wrong"
            )
        entry["training_range"] = {
            "min": float(low[j]),
            "max": float(high[j]),
            "p0_5": float(np.clip(p_low[j], low[j], high[j])),
            "p99_5": float(np.clip(p_high[j], low[j], high[j])),
        }
    return features


def roc_auc(labels: npt.NDArray[np.int8], probability: npt.NDArray[np.floating[Any]]) -> float:
    """ROC AUC of P(malignant) against labels (1 malignant): the probability that a malignant row scores above a
    benign one, ties counting half (the Mann-Whitney statistic, average ranks). Needs both classes."""
    p = np.asarray(probability, dtype=np.float64)
    _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average_rank = ends - (counts - 1) / 2.0  # 1-based rank of each distinct value, ties averaged
    ranks = average_rank[inverse]
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


@dataclass(frozen=True)
class RealRows:
    """Real measurements to judge the converted model on, and where they came from."""

    values: npt.NDArray[np.float64]
    source: str
    labels: npt.NDArray[np.int8] | None = None


def real_rows(config: ImportConfig, reference: Rows | None, fit: Rows | None) -> RealRows | None:
    """The rows the model's answers are judged on: the reference rows (with their labels, when given), else the
    fit_csv rows, else the sample export's when it holds the features; None when there are no real rows."""
    if reference is not None and config.reference_csv is not None:
        return RealRows(reference.values, f"reference_csv {shown_path(config.reference_csv)}", reference.labels)
    if fit is not None and config.standardize is not None and config.standardize.fit_csv is not None:
        return RealRows(fit.values, f"standardize.fit_csv {shown_path(config.standardize.fit_csv)}")
    if SAMPLE_CSV.is_file() and set(config.features) <= set(pa_csv.open_csv(SAMPLE_CSV).schema.names):
        sample = read_rows(SAMPLE_CSV, config.features, what="the sample CSV")
        return RealRows(sample.values, shown_path(SAMPLE_CSV))
    return None


def reference_performance(rows: RealRows, scores: Any) -> dict[str, Any]:
    """How the converted model does on real rows, and what is wrong with it (``problems``: empty when nothing).

    Refused by default (a clinical classifier): one class for every row (a forgotten scaler labels every row
    malignant), and with labels, accuracy below the majority class's share (worse than always answering the
    commoner class) or ROC AUC below 0.5 (the probability is inverted: probability_of or output_classes wrong).
    With labels of one class only, accuracy and AUC say nothing about chance, and are not judged."""
    n = int(rows.values.shape[0])
    predicted = np.asarray(scores.classification, dtype=np.int8)
    malignant = int(predicted.sum())
    report: dict[str, Any] = {
        "rows": n,
        "rows_from": rows.source,
        "predicted_malignant": malignant,
        "predicted_benign": n - malignant,
    }
    problems: list[str] = []
    if malignant in (0, n):
        label = "malignant" if malignant else "benign"
        problems.append(
            f"it labels every one of the {n} rows {label}, one class for every row (a forgotten or wrong "
            "standardize? features in the wrong order?)"
        )
    if rows.labels is not None:
        labels = rows.labels
        positives = int(labels.sum())
        accuracy = float((predicted == labels).mean())
        majority = max(positives, n - positives) / n
        report["accuracy"] = round(accuracy, 6)
        report["majority_class_share"] = round(majority, 6)
        if 0 < positives < n:
            auc = roc_auc(labels, scores.malignant_probability)
            report["roc_auc"] = round(auc, 6)
            if accuracy < majority:
                problems.append(
                    f"its accuracy on the labelled rows, {accuracy:.4g}, is below chance (the majority class's "
                    f"share, {majority:.4g})"
                )
            if auc < 0.5:
                problems.append(
                    f"its ROC AUC on the labelled rows is {auc:.4g}, below 0.5: its probability is inverted (is "
                    '"probability_of" or "output_classes" wrong?)'
                )
        else:
            report["not_judged"] = "the labels hold one class only: accuracy and ROC AUC are not compared to chance"
    report["problems"] = problems
    return report


@dataclass
class ImportResult:
    out: Path
    metadata: ModelMetadata
    max_abs_diff: float
    check_rows: int


def metrics(labels: npt.NDArray[np.int8], predicted: npt.NDArray[np.int8]) -> dict[str, float | int]:
    tp = int(((predicted == 1) & (labels == 1)).sum())
    fp = int(((predicted == 1) & (labels == 0)).sum())
    fn = int(((predicted == 0) & (labels == 1)).sum())
    return {
        "rows": int(labels.shape[0]),
        "accuracy": round(float((predicted == labels).mean()), 6),
        "precision": round(tp / (tp + fp), 6) if tp + fp else 0.0,
        "recall": round(tp / (tp + fn), 6) if tp + fn else 0.0,
    }


def import_model(
    saved_model: Path,
    config: ImportConfig,
    out: Path,
    *,
    version_prefix: str = "imported",
    extra_metadata: dict[str, Any] | None = None,
    training: TrainingRows | None = None,
) -> ImportResult:
    """Convert ``saved_model`` per ``config`` into ``out``/model.tflite + metadata.json, or raise ModelImportError
    (and write nothing)."""
    saved_model = Path(saved_model)
    info = inspect_saved_model(saved_model, config)
    standardize, fit = resolve_standardize(config)
    preprocessing = Preprocessing(standardize=standardize)

    label = None
    if config.label_column is not None and config.label_malignant_value is not None:
        label = (config.label_column, _label_text(config.label_malignant_value))
    if config.reference_csv is not None:
        reference = read_rows(config.reference_csv, config.features, what="reference_csv", label=label)
        check_source = f"reference_csv {shown_path(config.reference_csv)}"
        check = reference.values
    else:
        reference = None
        low, high, check_source = plausible_ranges(config, standardize, fit)
        check = generated_rows(*clip_to_domain(config, low, high))
        if fit is not None:  # the fit file's own rows are real ones: check on them too
            check = np.vstack([fit.values, check])
            check_source = f"the {fit.values.shape[0]} rows of standardize.fit_csv and {check_source}"
    check32 = np.ascontiguousarray(check, dtype=np.float32)
    model_input = preprocessing.apply(check32)

    raw = saved_model_output(saved_model, info, model_input)
    probability = probability_output(config, info, raw)
    flatbuffer = convert(saved_model, info)
    tflite_sha = hashlib.sha256(flatbuffer).hexdigest()

    trained_on = training_rows(training, reference, fit, config)
    features = feature_metadata(config, trained_on)
    scoring = {
        "features": config.features,
        "preprocessing": preprocessing.model_dump(mode="json"),
        "probability": probability.model_dump(mode="json"),
        "threshold": config.threshold,
    }
    scoring_sha = hashlib.sha256(json.dumps(scoring, sort_keys=True).encode()).hexdigest()
    model_version = config.model_version or f"{version_prefix}+{tflite_sha[:12]}.{scoring_sha[:8]}"
    source: dict[str, Any] = {
        "saved_model": shown_path(saved_model),
        "sha256": directory_sha256(saved_model),
        "fingerprint": fingerprint(saved_model),
        "tags": info.tags,
        "signature": info.key,
        "method_name": info.method_name,
        "input": _describe(info.input),
        "output": _describe(info.output),
    }
    metadata_dict: dict[str, Any] = {
        "model_version": model_version,
        "tflite_file": TFLITE_FILE,
        "tflite_sha256": tflite_sha,
        "signature": {
            "key": info.key,
            "input": {"name": info.input.key, "dtype": "float32", "shape": [None, len(config.features)]},
            "outputs": {},  # filled from the .tflite below
        },
        "features": features,
        "outputs": {
            "classification": "CLASSIFICATION",
            "condition": "CONDITION",
            "malignant_probability": "MALIGNANT_PROBABILITY",
        },
        "decision_threshold": config.threshold,
        "labels": LABELS,
        "preprocessing": preprocessing.model_dump(mode="json"),
        "probability": probability_json(probability),
        "source": source,
        # Where each feature's training_range comes from (None: no real rows were given, nothing is flagged).
        "training_data": None
        if trained_on is None
        else {"rows": int(trained_on.values.shape[0]), "from": trained_on.source},
        **(extra_metadata or {}),
    }

    # The .tflite as the function will load it: its outputs' dtypes, then the scorer itself.
    from scoring.interpreter import interpreter_class

    cls, _ = interpreter_class()
    try:
        runner = cls(model_content=flatbuffer).get_signature_runner(info.key)
        metadata_dict["signature"]["outputs"] = {
            name: np.dtype(d["dtype"]).name for name, d in runner.get_output_details().items()
        }
        metadata = ModelMetadata.model_validate(metadata_dict)
        scorer = Scorer(flatbuffer, metadata)
        scores = scorer.score(check32)
    except (ValueError, RuntimeError, ScoringError) as exc:
        raise ModelImportError(f"LiteRT cannot run the converted model: {exc}") from exc

    expected = probability.malignant_probability(raw.astype(np.float32))
    diff = np.abs(scores.malignant_probability.astype(np.float64) - expected.astype(np.float64))
    not_finite = int((~np.isfinite(scores.malignant_probability)).sum())
    if not_finite:
        raise ModelImportError(
            f"the converted model does not score like the SavedModel: the .tflite gives NaN or infinity on "
            f"{not_finite} of the {diff.shape[0]} check rows ({check_source}) where the SavedModel gives "
            "probabilities; nothing written"
        )
    max_diff = float(np.max(diff))
    if max_diff > PARITY_TOLERANCE:
        worst = int(np.argmax(diff))
        raise ModelImportError(
            f"the converted model does not score like the SavedModel: max |P(malignant) tflite - SavedModel| = "
            f"{max_diff:.3g} > {PARITY_TOLERANCE:g} on {check_source} (worst: check row {worst}); nothing written"
        )
    parity = {
        "rows": int(check32.shape[0]),
        "rows_from": check_source,
        "max_abs_diff": float(f"{max_diff:.3g}"),
        "tolerance": PARITY_TOLERANCE,
    }
    if reference is not None:
        parity["reference_csv_sha256"] = reference.sha256
        parity["rows_skipped"] = reference.rows_skipped
    report: dict[str, Any] = {"parity": parity}
    if reference is not None and reference.labels is not None:
        report["metrics"] = metrics(reference.labels, scores.classification)
    judged = real_rows(config, reference, fit)
    if judged is not None:
        performance = reference_performance(judged, scorer.score(np.ascontiguousarray(judged.values, np.float32)))
        if performance["problems"] and not config.accept_poor_reference_performance:
            raise ModelImportError(
                f"the converted model scores the real rows ({judged.source}) wrong: "
                + "; ".join(performance["problems"])
                + '; nothing written (to import it anyway, set "accept_poor_reference_performance": true in the '
                "config: it is recorded in metadata.json)"
            )
        performance["accept_poor_reference_performance"] = config.accept_poor_reference_performance
        report["performance"] = performance
    else:
        report["performance"] = {"rows": 0, "rows_from": None, "problems": [], "not_judged": "no real rows"}
    metadata_dict["reference"] = report
    metadata_dict["tools"] = metadata_dict.get("tools") or _tool_versions()
    metadata = ModelMetadata.model_validate(metadata_dict)

    write(out, flatbuffer, metadata_dict)
    try:
        loaded = Scorer.load(out)
    except ModelLoadError as exc:  # pragma: no cover - would mean write() is broken
        raise ModelImportError(f"the written files do not load: {exc}") from exc
    return ImportResult(out, loaded.metadata, max_diff, int(check32.shape[0]))


def write(out: Path, flatbuffer: bytes, metadata: dict[str, Any]) -> None:
    """The .tflite, then the metadata naming it, each written to a temporary file and renamed into place."""
    out.mkdir(parents=True, exist_ok=True)
    for name, content in (
        (TFLITE_FILE, flatbuffer),
        ("metadata.json", (json.dumps(metadata, indent=2) + "\n").encode()),
    ):
        with tempfile.NamedTemporaryFile(dir=out, prefix=f".{name}.", delete=False) as tmp:
            tmp.write(content)
        os.replace(tmp.name, out / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--saved-model", type=Path, required=True, help="the SavedModel directory")
    parser.add_argument("--config", type=Path, required=True, help="the import config (JSON)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "model", help="where model.tflite + metadata.json go")
    args = parser.parse_args(argv)
    # TensorFlow's Python-side warnings say nothing a user can act on here: a TF1 SavedModel logs "Unable to create
    # a python object for variable ... reference variable" for every variable, at every load (ten lines and more).
    # Its errors still show; its C++ side is quiet by TF_CPP_MIN_LOG_LEVEL=2, LiteRT's delegate line is dropped.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        config = load_config(args.config)
        with native_stderr_without(NATIVE_NOISE):
            result = import_model(args.saved_model, config, args.out)
    except ModelImportError as exc:
        print(f"import-model: {exc}", file=sys.stderr)
        return 2
    meta = result.metadata
    summary: dict[str, Any] = {
        "out": str(result.out),
        "model_version": meta.model_version,
        "features": meta.n_features,
        "probability": probability_json(meta.probability),
        "standardize": meta.preprocessing.standardize is not None,
        "parity": (meta.model_extra or {}).get("reference", {}).get("parity"),
    }
    if metrics_ := (meta.model_extra or {}).get("reference", {}).get("metrics"):
        summary["metrics"] = metrics_
    performance = (meta.model_extra or {}).get("reference", {}).get("performance") or {}
    summary["performance"] = performance
    if performance.get("problems"):
        print(
            "import-model: warning: imported although it scores the real rows wrong "
            '("accept_poor_reference_performance": true): ' + "; ".join(performance["problems"]),
            file=sys.stderr,
        )
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
