"""The model's metadata file (``model/metadata.json``), parsed and validated once."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from scoring.errors import ModelLoadError


class Feature(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str = Field(min_length=1)
    column: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")


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
    held_out: HeldOut
    held_out_indices: list[int] = Field(default_factory=list)

    @field_validator("labels")
    @classmethod
    def _binary_labels(cls, value: dict[str, str]) -> dict[str, str]:
        if set(value) != {"0", "1"}:
            raise ValueError("labels must map exactly the classes '0' and '1'")
        return value

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
