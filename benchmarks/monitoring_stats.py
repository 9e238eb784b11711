"""benchmarks/bench_monitoring.py's statistical part: the data, the files drawn from it, and what per-file monitoring
(``src/monitoring/``) makes of them: false alarms, detection, and the label-free accuracy estimate.

Every file goes through ``monitoring.FileMonitor`` (fed in ``CHUNK_ROWS`` chunks, as the pipeline feeds it) and
the profile comes from ``monitoring.profile.build_profile``: the same code the import and the function run.
"""

from __future__ import annotations

import csv
import math
import zlib
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from monitoring import FileMonitor, LoadMonitoring
from monitoring.profile import build_profile
from pipeline.settings import Settings
from scoring import Scorer
from scoring.metadata import MonitoringProfile

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE = REPO_ROOT / "data" / "breast_cancer.csv"
LABELLED = REPO_ROOT / "data" / "breast_cancer_labelled.csv"
LABEL_COLUMN, MALIGNANT = "diagnosis", "malignant"
# model/train.py's split (``split``): recomputed here with the same call, since importing model/train.py loads
# TensorFlow and Keras; checked against the metadata's held_out_indices.
TRAIN_SPLIT_SEED, TRAIN_TEST_SIZE = 42, 0.2
CHUNK_ROWS = int(Settings.model_fields["chunk_rows"].default)
FALSE_ALARM_GOAL = 0.01

Floats = npt.NDArray[np.float64]
Indices = npt.NDArray[np.intp]


def wilson(successes: int, trials: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(successes: int, trials: int) -> dict[str, Any]:
    low, high = wilson(successes, trials)
    return {
        "count": successes,
        "files": trials,
        "rate": successes / trials if trials else 0.0,
        "low": low,
        "high": high,
    }


def monitor_file(
    profile: MonitoringProfile,
    columns: list[str],
    values: Floats,
    probability: npt.NDArray[np.float32],
    classification: npt.NDArray[np.integer[Any]],
) -> LoadMonitoring:
    """One file through FileMonitor, ``CHUNK_ROWS`` rows at a time (the pipeline's chunks)."""
    monitor = FileMonitor(profile, columns)
    for start in range(0, values.shape[0], CHUNK_ROWS):
        end = start + CHUNK_ROWS
        monitor.add(values[start:end], probability[start:end], classification[start:end])
    return monitor.result()


@dataclass(frozen=True)
class Data:
    """The 569 sample rows as the function reads them, their truth, model/train.py's split, the project model's
    scores, and the reference profile built from them as the import builds it."""

    names: list[str]  # the model's features, in its order
    columns: list[str]  # their output columns (MEAN_RADIUS, ...)
    x: Floats  # [569, 30], data/breast_cancer.csv
    malignant: npt.NDArray[np.bool_]  # data/breast_cancer_labelled.csv: diagnosis == malignant
    train: Indices  # model/train.py's training rows: the reference
    held_out: Indices
    probability: npt.NDArray[np.float32]  # the project model's P(malignant) on each row (Scorer, the .tflite)
    classification: npt.NDArray[np.int8]
    profile: MonitoringProfile  # reference: the training rows; calibration: the labelled sample
    shipped: MonitoringProfile | None  # model/metadata.json's own (the import's, from its reference_csv)
    model_version: str

    @property
    def model_accuracy(self) -> float:
        return float(np.mean((self.classification == 1) == self.malignant))


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        header, *rows = list(csv.reader(fh))
    return header, rows


def load_data(model_dir: Path | None = None) -> Data:
    from sklearn.model_selection import train_test_split

    scorer = Scorer.load(model_dir)
    meta = scorer.metadata
    header, rows = _read_csv(SAMPLE)
    labelled_header, labelled = _read_csv(LABELLED)
    if labelled_header != [*header, LABEL_COLUMN] or [r[:-1] for r in labelled] != rows:
        raise SystemExit(f"{LABELLED} is not {SAMPLE} with a {LABEL_COLUMN} column")
    names = meta.feature_names
    at = [header.index(n) for n in names]
    x = np.array([[float(r[j]) for j in at] for r in rows], dtype=np.float64)
    malignant = np.array([r[-1] == MALIGNANT for r in labelled])
    y = malignant.astype(np.int32)  # model/train.py's target: 1 = malignant
    train, held_out = train_test_split(
        np.arange(len(y)), test_size=TRAIN_TEST_SIZE, stratify=y, random_state=TRAIN_SPLIT_SEED
    )
    train, held_out = np.sort(train), np.sort(held_out)
    if meta.held_out_indices and held_out.tolist() != meta.held_out_indices:
        raise SystemExit("the recomputed split is not model/train.py's (metadata held_out_indices differ)")
    scores = scorer.score(x.astype(np.float32))
    probability, classification = scores.malignant_probability, scores.classification
    profile = build_profile(
        x[train],
        f"the {len(train)} training rows of model/train.py's split",
        classification[train] == 1,
        (probability, malignant, f"the {len(x)} rows of data/breast_cancer_labelled.csv ({LABEL_COLUMN})"),
    )
    return Data(
        names=names,
        columns=[f.column for f in meta.features],
        x=x,
        malignant=malignant,
        train=train,
        held_out=held_out,
        probability=probability,
        classification=classification,
        profile=profile,
        shipped=meta.monitoring,
        model_version=scorer.model_version,
    )


# -- 1 and 2: false alarms and detection -------------------------------------------------------------------------

JITTER = 0.05  # the smoothed population: a real row plus Gaussian jitter of 5 % of each feature's sd (make_files')


@dataclass(frozen=True)
class File:
    values: Floats  # column-major float64, as the pipeline's converted chunks
    probability: npt.NDArray[np.float32]
    classification: npt.NDArray[np.int8]
    profile: MonitoringProfile


@dataclass(frozen=True)
class Scenario:
    """Files of a kind (``draw``: one file of ``size`` rows); ``target``: the column an alteration changes (None:
    nothing changed, any alarm is a false one)."""

    name: str
    title: str
    draw: Callable[[np.random.Generator, int], File]
    target: str | None = None


def scenarios(data: Data) -> list[Scenario]:
    """The four null scenarios (1.) and the two alterations (2.)."""
    radius, texture = data.names.index("mean radius"), data.names.index("mean texture")
    shift = 0.5 * float(np.std(data.x[data.train, texture]))
    everything = np.arange(len(data.x))
    spread = data.x.std(axis=0) * JITTER

    def resampled(pool: Indices, profile: MonitoringProfile, alter: Callable[[Floats], None] | None = None) -> Any:
        def draw(rng: np.random.Generator, size: int) -> File:
            rows = pool[rng.integers(0, len(pool), size)]
            values = np.asfortranarray(data.x[rows])
            if alter is not None:
                alter(values)
            return File(values, data.probability[rows], data.classification[rows], profile)

        return draw

    def smoothed(rng: np.random.Generator, size: int) -> tuple[Floats, Indices]:
        rows = rng.integers(0, len(data.x), size)
        return np.maximum(data.x[rows] + rng.normal(0.0, 1.0, (size, len(spread))) * spread, 0.0), rows

    def independent(rng: np.random.Generator, size: int) -> File:
        """A fresh reference of the training rows' size and a file, drawn independently from one population."""
        reference, ref_rows = smoothed(rng, len(data.train))
        profile = build_profile(reference, "smoothed population", data.classification[ref_rows] == 1, None)
        values, rows = smoothed(rng, size)
        return File(np.asfortranarray(values), data.probability[rows], data.classification[rows], profile)

    def unit_error(values: Floats) -> None:
        values[:, radius] /= 10.0

    def texture_shift(values: Floats) -> None:
        values[:, texture] += shift

    out = [
        Scenario(
            "null_sample", "files resampled from the whole sample (569 rows)", resampled(everything, data.profile)
        ),
        Scenario("null_reference", "files resampled from the reference rows", resampled(data.train, data.profile)),
    ]
    if data.shipped is not None:
        out.append(
            Scenario(
                "null_shipped",
                f"the shipped profile ({data.shipped.rows} rows), files resampled from the sample",
                resampled(everything, data.shipped),
            )
        )
    out += [
        Scenario("null_independent", "reference and file drawn independently (smoothed sample)", independent),
        Scenario(
            "unit_error",
            "unit error: mean radius / 10",
            resampled(everything, data.profile, unit_error),
            data.columns[radius],
        ),
        Scenario(
            "shift",
            f"mean texture + 0.5 sd (+{shift:.2f})",
            resampled(everything, data.profile, texture_shift),
            data.columns[texture],
        ),
    ]
    return out


def drift_rates(
    data: Data, sizes: Iterable[int], files_for: Callable[[int], int], seed: int, only: Collection[str]
) -> dict[str, dict[int, dict[str, Any]]]:
    """For each scenario named in ``only`` and each file size: the share of files with drift detected (and, for an
    alteration, with its column named, and with another column named), each with its Wilson interval."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for scenario in scenarios(data):
        if scenario.name not in only:
            continue
        out[scenario.name] = {}
        for size in sizes:
            rng = np.random.default_rng([seed, 1, zlib.crc32(scenario.name.encode()), size])  # same files alone
            files = files_for(size)
            alarms = named = others = 0
            scores = []
            for _ in range(files):
                f = scenario.draw(rng, size)
                found = monitor_file(f.profile, data.columns, f.values, f.probability, f.classification)
                listed = set((found.drifted_features or "").split(",")) - {""}
                alarms += bool(found.drift_detected)
                named += scenario.target in listed
                others += bool(listed - {scenario.target})
                scores.append(found.drift_score or 0.0)
            out[scenario.name][size] = {
                "title": scenario.title,
                "detected": rate(alarms, files),
                "target": scenario.target,
                "target_named": rate(named, files) if scenario.target else None,
                "other_named": rate(others, files),
                "drift_score_median": float(np.median(scores)),
                "drift_score_p99": float(np.quantile(scores, 0.99)),
            }
    return out


# -- 3: the accuracy estimate, the project's model ---------------------------------------------------------------


@dataclass
class Estimates:
    """Files' true accuracy, estimate and interval; ``kind`` indexes ``kinds``; ``split`` which split they came from."""

    kinds: list[str]
    truth: list[float]
    estimate: list[float]
    low: list[float]
    high: list[float]
    kind: list[int]
    split: list[int]
    drift: list[bool]
    oracle: list[float]  # the estimate with a calibration fitted on the files' own pool's labels (when given)

    @classmethod
    def empty(cls, kinds: list[str]) -> Estimates:
        return cls(kinds, [], [], [], [], [], [], [], [])

    def add(self, kind: int, split: int, truth: float, found: LoadMonitoring, oracle: float | None = None) -> None:
        if found.estimated_accuracy is None or found.estimated_accuracy_low is None:
            raise RuntimeError("the profile has a calibration, but no accuracy was estimated")
        self.truth.append(truth)
        self.estimate.append(found.estimated_accuracy)
        self.low.append(found.estimated_accuracy_low)
        self.high.append(float(found.estimated_accuracy_high or 1.0))
        self.kind.append(kind)
        self.split.append(split)
        self.drift.append(bool(found.drift_detected))
        if oracle is not None:
            self.oracle.append(oracle)

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        return {
            k: np.asarray(getattr(self, k))
            for k in ("truth", "estimate", "low", "high", "kind", "split", "drift", "oracle")
        }

    def summary(self) -> dict[str, Any]:
        a = self.arrays()
        error = np.abs(a["estimate"] - a["truth"])
        covered = (a["low"] <= a["truth"]) & (a["truth"] <= a["high"])
        by_kind = {}
        for k, name in enumerate(self.kinds):
            m = a["kind"] == k
            by_kind[name] = {
                "files": int(m.sum()),
                "truth_mean": float(a["truth"][m].mean()),
                "truth_sd": float(a["truth"][m].std()),
                "estimate_mean": float(a["estimate"][m].mean()),
                "low_mean": float(a["low"][m].mean()),
                "high_mean": float(a["high"][m].mean()),
                "mae": float(error[m].mean()),
                "bias": float((a["estimate"] - a["truth"])[m].mean()),
                "coverage": float(covered[m].mean()),
                "drift_detected": float(a["drift"][m].mean()),
            }
            if len(self.oracle) == len(self.truth):
                by_kind[name]["oracle_mae"] = float(np.abs(a["oracle"] - a["truth"])[m].mean())
        return {
            "files": len(self.truth),
            "mae": float(error.mean()),
            "coverage": float(covered.mean()),
            "by_kind": by_kind,
        }


def project_accuracy(data: Data, files: int, seed: int, rows: int = 300) -> Estimates:
    """The project model's estimate against the truth on ``rows``-row files resampled from: the whole sample,
    the largest tumours (mean area above its 70th percentile), and the 114 held-out rows it never trained on."""
    area = data.x[:, data.names.index("mean area")]
    pools = {
        "whole sample (569 rows)": np.arange(len(data.x)),
        "largest tumours (mean area > 70th pct)": np.flatnonzero(area > np.quantile(area, 0.7)),
        "held-out rows (114, never trained on)": data.held_out,
    }
    correct = (data.classification == 1) == data.malignant
    out = Estimates.empty(list(pools))
    for k, pool in enumerate(pools.values()):
        rng = np.random.default_rng([seed, 3, k])
        for _ in range(files):
            r = pool[rng.integers(0, len(pool), rows)]
            found = monitor_file(
                data.profile, data.columns, np.asfortranarray(data.x[r]), data.probability[r], data.classification[r]
            )
            out.add(k, 0, float(correct[r].mean()), found)
    return out


def spearman(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def rank_agreement(estimates: Estimates) -> dict[str, Any]:
    """Spearman's rank correlation of estimate and truth: over files within each split, over all files, and over
    the file types' means within each split (1.0: the types are ranked as the truth ranks them)."""
    a = estimates.arrays()
    splits = sorted(set(estimates.split))
    by_split, by_kind_mean = [], []
    for s in splits:
        m = a["split"] == s
        by_split.append(spearman(a["estimate"][m], a["truth"][m]))
        kinds = sorted(set(a["kind"][m].tolist()))
        truth_means = [a["truth"][m & (a["kind"] == k)].mean() for k in kinds]
        estimate_means = [a["estimate"][m & (a["kind"] == k)].mean() for k in kinds]
        by_kind_mean.append(spearman(np.array(estimate_means), np.array(truth_means)))
    return {
        "files_pooled": spearman(a["estimate"], a["truth"]),
        "files_within_split": by_split,
        "type_means_within_split": by_kind_mean,
        "splits_with_types_ranked_as_truth": int(sum(r > 1 - 1e-9 for r in by_kind_mean)),
        "splits": len(splits),
    }


def split_maes(estimates: Estimates) -> list[float]:
    a = estimates.arrays()
    return [float(np.abs(a["estimate"] - a["truth"])[a["split"] == s].mean()) for s in sorted(set(estimates.split))]
