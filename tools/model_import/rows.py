"""Rows: the fit file, the reference rows, generated rows; the training range per feature, and how the converted
model is judged on real rows (one class for every row, accuracy below chance, ROC AUC below 0.5)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pa_csv
from pydantic import ValidationError

from pipeline.features import convert_features
from pipeline.output import default_column_name
from scoring.metadata import Standardize
from tools.model_import.config import (
    GENERATED_ROWS,
    GENERATED_SEED,
    REPO_ROOT,
    SAMPLE_CSV,
    ImportConfig,
    ModelImportError,
)

# --- rows: the fit file, the reference rows, generated rows ------------------------------------------------------


@dataclass
class Rows:
    values: npt.NDArray[np.float64]  # [n, n_features]
    path: Path | None = None
    sha256: str | None = None
    rows_skipped: int = 0
    labels: npt.NDArray[np.int8] | None = None  # 1 malignant


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


def label_text(value: str | int | float | bool) -> str:
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
