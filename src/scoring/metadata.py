"""The model's metadata file (``model/metadata.json``), parsed and validated once.

Besides naming the .tflite and its signature, the metadata says how to score with it, whatever the model's own
conventions: the preprocessing to apply in front of it (``preprocessing``) and which output, read how, is
P(malignant) (``probability``). ``tools/commands/import_model.py`` writes it; the scorer follows it.

Each feature may also carry its valid ``domain`` (a value outside it is impossible: the row is rejected) and its
``training_range`` (min, max and the 0.5th / 99.5th percentiles of the data the model was trained or imported
with: a value far beyond it is flagged). ``pipeline/plausibility.py`` applies both; a metadata.json without them
(written before they existed) loads and checks nothing.

``monitoring`` is the reference profile that per-file monitoring compares each load with (``monitoring/``): each
feature's reference distribution, the share of reference rows the model calls malignant, and, when the import was
given labelled rows, a calibration of the model's probability. Without it nothing is monitored.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scoring.errors import ModelLoadError


def _finite(value: float | None, what: str) -> None:
    if value is not None and not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number")


class Domain(BaseModel):
    """The values a feature can physically take, bounds included; None: unbounded on that side."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Domain:
        _finite(self.min, "domain min")
        _finite(self.max, "domain max")
        if self.min is not None and self.max is not None and not self.min < self.max:
            raise ValueError(f"domain min {self.min} must be below its max {self.max}")
        return self


class TrainingRange(BaseModel):
    """Where a feature's values lay in the data the model was trained (or imported) with."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    min: float
    max: float
    p0_5: float
    p99_5: float

    @model_validator(mode="after")
    def _ordered(self) -> TrainingRange:
        for what in ("min", "max", "p0_5", "p99_5"):
            _finite(getattr(self, what), f"training_range {what}")
        if not self.min <= self.p0_5 <= self.p99_5 <= self.max:
            raise ValueError("training_range must satisfy min <= p0_5 <= p99_5 <= max")
        return self


class Feature(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str = Field(min_length=1)
    column: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")
    domain: Domain = Domain()
    training_range: TrainingRange | None = None

    @model_validator(mode="after")
    def _training_inside_domain(self) -> Feature:
        low, high, seen = self.domain.min, self.domain.max, self.training_range
        if seen is not None and ((low is not None and seen.min < low) or (high is not None and seen.max > high)):
            raise ValueError(f"feature {self.name!r}: its training_range lies outside its domain")
        return self


class TensorSpec(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str
    dtype: str
    shape: list[int | None]


class Signature(BaseModel):
    model_config = ConfigDict(frozen=True)
    key: str
    input: TensorSpec
    outputs: dict[str, str]


class HeldOut(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")
    accuracy: float
    precision: float
    recall: float


CLASS_LABELS = ("benign", "malignant")


class Standardize(BaseModel):
    """``(x - mean) / scale`` per feature, in float32, in front of the model (the scaler a model was trained
    behind but does not contain)."""

    model_config = ConfigDict(frozen=True, extra="allow")
    mean: list[float] = Field(min_length=1)
    scale: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _finite_positive(self) -> Standardize:
        if len(self.mean) != len(self.scale):
            raise ValueError(f"standardize has {len(self.mean)} means but {len(self.scale)} scales")
        if not all(math.isfinite(v) for v in self.mean):
            raise ValueError("standardize.mean must be finite numbers")
        if not all(math.isfinite(v) and v > 0 for v in self.scale):
            raise ValueError("standardize.scale must be finite numbers > 0")
        return self


class Preprocessing(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")
    standardize: Standardize | None = None

    def apply(self, batch: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The model's input for a float32 [N, n_features] batch (the batch itself when there is nothing to do).

        The scorer and the import's parity check both call this, so the SavedModel and the .tflite are compared
        on exactly the input the function will feed."""
        if self.standardize is None:
            return batch
        mean = np.asarray(self.standardize.mean, dtype=np.float32)
        scale = np.asarray(self.standardize.scale, dtype=np.float32)
        out: npt.NDArray[np.float32] = batch - mean  # a new array: the caller's batch is left as it was
        out /= scale
        return out


class ProbabilityOutput(BaseModel):
    """Which model output gives P(malignant), and how.

    ``kind`` ``probability``: a [N] or [N, 1] output holding the probability of ``probability_of``.
    ``kind`` ``classes``: a [N, 2] output holding one probability per class, in the order ``classes``.
    The defaults describe the project's own model (output ``malignant_probability``, P(malignant)).
    """

    model_config = ConfigDict(frozen=True, extra="allow")
    output: str = "malignant_probability"
    kind: Literal["probability", "classes"] = "probability"
    probability_of: Literal["benign", "malignant"] = "malignant"
    classes: list[Literal["benign", "malignant"]] | None = None

    @model_validator(mode="after")
    def _classes_match_kind(self) -> ProbabilityOutput:
        if self.kind == "classes" and (self.classes is None or sorted(self.classes) != list(CLASS_LABELS)):
            raise ValueError("a 'classes' output needs classes listing 'benign' and 'malignant' once each")
        if self.kind == "probability" and self.classes is not None:
            raise ValueError("classes is only for a 'classes' ([N, 2]) output")
        return self

    def malignant_probability(self, raw: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """P(malignant) [N] from the output tensor as the model returned it."""
        rows = raw.shape[0]
        if self.kind == "classes":
            assert self.classes is not None  # checked at validation
            out: npt.NDArray[np.float32] = raw.reshape(rows, len(self.classes))[:, self.classes.index("malignant")]
            return np.ascontiguousarray(out, dtype=np.float32)
        probability = raw.reshape(rows).astype(np.float32, copy=False)
        if self.probability_of == "benign":
            return np.float32(1.0) - probability
        return probability


class FeatureReference(BaseModel):
    """One feature's reference distribution: ``points`` (sorted reference values: every distinct one, or, for a
    large reference, its percentiles, min and max included) and ``cdf`` (the share of reference rows <= each)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    points: list[float] = Field(min_length=1)
    cdf: list[float] = Field(min_length=1)
    median: float

    @model_validator(mode="after")
    def _a_distribution(self) -> FeatureReference:
        points, cdf = np.asarray(self.points, dtype=np.float64), np.asarray(self.cdf, dtype=np.float64)
        if points.shape != cdf.shape:
            raise ValueError(f"{points.size} points but {cdf.size} cdf values")
        if not (np.isfinite(points).all() and np.isfinite(cdf).all() and math.isfinite(self.median)):
            raise ValueError("points, cdf and median must be finite numbers")
        if np.any(np.diff(points) <= 0) or np.any(np.diff(cdf) <= 0):
            raise ValueError("points and cdf must be strictly increasing")
        if not (cdf[0] > 0.0 and abs(cdf[-1] - 1.0) < 1e-9):
            raise ValueError("cdf must lie in (0, 1] and end at 1")
        return self


class Calibration(BaseModel):
    """P(malignant | the model's probability p), fitted on labelled reference rows: ``sigmoid(slope * logit(p) +
    intercept)`` (Platt scaling), with the fit's 2x2 covariance of (slope, intercept) for the estimate's interval."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    method: Literal["platt"] = "platt"
    slope: float
    intercept: float
    covariance: list[list[float]]
    rows: int = Field(gt=0)
    malignant: int = Field(ge=0)
    rows_from: str

    @model_validator(mode="after")
    def _well_formed(self) -> Calibration:
        cov = np.asarray(self.covariance, dtype=np.float64)
        if cov.shape != (2, 2) or not np.isfinite(cov).all() or not (math.isfinite(self.slope + self.intercept)):
            raise ValueError("slope, intercept and a finite 2x2 covariance are needed")
        return self


class MonitoringProfile(BaseModel):
    """What per-file monitoring compares a load with (``monitoring/``), written by the import."""

    model_config = ConfigDict(frozen=True, extra="allow")
    rows: int = Field(gt=0)  # reference rows the distributions come from
    rows_from: str
    features: list[FeatureReference] = Field(min_length=1)  # in the model's feature order
    predicted_malignant_share: float = Field(ge=0.0, le=1.0)
    calibration: Calibration | None = None  # None: no labelled rows, no accuracy estimate (drift only)


class ModelMetadata(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    model_version: str = Field(min_length=1)
    tflite_file: str
    tflite_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    signature: Signature
    features: list[Feature] = Field(min_length=1)
    outputs: dict[str, str]
    decision_threshold: float = Field(gt=0.0, lt=1.0)
    labels: dict[str, str]
    held_out: HeldOut | None = None  # the project's own model: metrics on its held-out split
    held_out_indices: list[int] = Field(default_factory=list)
    preprocessing: Preprocessing = Preprocessing()
    probability: ProbabilityOutput = ProbabilityOutput()
    monitoring: MonitoringProfile | None = None

    @field_validator("labels")
    @classmethod
    def _binary_labels(cls, value: dict[str, str]) -> dict[str, str]:
        if set(value) != {"0", "1"}:
            raise ValueError("labels must map exactly the classes '0' and '1'")
        return value

    @model_validator(mode="after")
    def _scoring_fits_the_signature(self) -> ModelMetadata:
        output = self.probability.output  # whether the model has it is checked against the model, by Scorer
        if output in self.signature.outputs and self.signature.outputs[output] != "float32":
            raise ValueError(f"probability.output {output!r} is {self.signature.outputs[output]}, not float32")
        standardize = self.preprocessing.standardize
        if standardize is not None and len(standardize.mean) != len(self.features):
            raise ValueError(
                f"preprocessing.standardize has {len(standardize.mean)} values for {len(self.features)} features"
            )
        if self.monitoring is not None and len(self.monitoring.features) != len(self.features):
            raise ValueError(
                f"monitoring has {len(self.monitoring.features)} feature references for {len(self.features)} features"
            )
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def n_features(self) -> int:
        return len(self.features)

    @classmethod
    def load(cls, path: Path) -> ModelMetadata:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelLoadError(f"cannot read model metadata {path}: {exc}") from exc
        try:
            metadata = cls.model_validate(raw)
        except ValidationError as exc:
            raise ModelLoadError(f"model metadata {path} is invalid: {exc}") from exc
        if metadata.signature.input.shape != [None, metadata.n_features]:
            raise ModelLoadError(
                f"model metadata {path}: input shape {metadata.signature.input.shape} "
                f"does not match its {metadata.n_features} features"
            )
        return metadata
