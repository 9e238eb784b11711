"""The import config: exactly the keys of ``ImportConfig``, checked before anything is read."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.output import default_column_name
from scoring.metadata import CLASS_LABELS, Domain

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CSV = REPO_ROOT / "data" / "breast_cancer.csv"
PARITY_TOLERANCE = 1e-5
SOFTMAX_SUM_TOLERANCE = 1e-4
GENERATED_ROWS = 512
GENERATED_SEED = 20261129
TFLITE_FILE = "model.tflite"
LABELS = {"0": "benign", "1": "malignant"}  # CLASSIFICATION 0/1 -> CONDITION: the StreamSets rule


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
