"""One file's monitoring: fed chunk by chunk with the rows that load, it gives the file's monitoring row.

Drift is tested on a systematic sample of the file's rows: every row while the file has at most SAMPLE_CAP, then
every 2nd, 4th, ... row (the stride doubles whenever the sample would pass SAMPLE_CAP), so a file of any length is
tested on SAMPLE_CAP / 2 to SAMPLE_CAP rows spread evenly through it. The threshold is set by the rows tested.
Monitoring never costs a load its rows: an error inside it (a bug, a profile it cannot use) ends the file's
monitoring, and its row says so (``DRIFT_DETAIL.monitoring_failed``, every verdict NULL); the rows load as ever.

Past a few thousand rows the reference's own size bounds what a KS test can see (drift.py), so testing more rows
would cost time and find nothing more. The accuracy estimate and the predicted malignant share use every row.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from monitoring.accuracy import AccuracyEstimate
from monitoring.drift import TEST_LEVEL, FeatureDrift, ks_distance, ks_threshold
from scoring.metadata import MonitoringProfile

SAMPLE_CAP = 20_000


@dataclass(frozen=True)
class LoadMonitoring:
    """One load's monitoring row (the MONITORING_TABLE columns the pipeline fills; the warehouse adds lineage)."""

    rows_scored: int
    drift_detected: bool | None  # None: not tested (no rows, or no reference profile)
    drift_score: float | None  # the largest feature score (distance / threshold): >= 1 is drift
    drifted_features: str | None  # output columns, comma-separated, in the model's feature order; None: none
    estimated_accuracy: float | None  # None: no rows, or no calibration (the import had no labelled rows)
    estimated_accuracy_low: float | None
    estimated_accuracy_high: float | None
    predicted_malignant_share: float | None
    reference_malignant_share: float | None
    detail: dict[str, Any] = field(default_factory=dict)

    def columns(self) -> dict[str, Any]:
        """Column name -> value, ``DRIFT_DETAIL`` as JSON text."""
        return {
            "ROWS_SCORED": self.rows_scored,
            "DRIFT_DETECTED": self.drift_detected,
            "DRIFT_SCORE": self.drift_score,
            "DRIFTED_FEATURES": self.drifted_features,
            "ESTIMATED_ACCURACY": self.estimated_accuracy,
            "ESTIMATED_ACCURACY_LOW": self.estimated_accuracy_low,
            "ESTIMATED_ACCURACY_HIGH": self.estimated_accuracy_high,
            "PREDICTED_MALIGNANT_SHARE": self.predicted_malignant_share,
            "REFERENCE_MALIGNANT_SHARE": self.reference_malignant_share,
            "DRIFT_DETAIL": json.dumps(self.detail, sort_keys=True),
        }

    @classmethod
    def nothing_scored(cls, why: str) -> LoadMonitoring:
        return cls(0, None, None, None, None, None, None, None, None, {"not_tested": why})

    @property
    def failed(self) -> str | None:
        """Why monitoring itself failed on this file (None: it did not)."""
        return self.detail.get("monitoring_failed")


class SystematicSample:
    """Every ``stride``-th row of a stream of [n, k] blocks, the stride doubling to stay within ``cap`` rows."""

    def __init__(self, cap: int = SAMPLE_CAP) -> None:
        if cap < 2:
            raise ValueError("the sample needs a cap of at least 2 rows")
        self.cap = cap
        self.stride = 1
        self.seen = 0
        self._blocks: list[npt.NDArray[np.float64]] = []
        self._kept = 0

    def add(self, rows: npt.NDArray[np.floating]) -> None:
        n = rows.shape[0]
        # The stride is chosen before anything is copied: only the rows kept are ever copied.
        while self._kept + len(range((-self.seen) % self.stride, n, self.stride)) > self.cap:
            # Kept rows sit at 0, s, 2s, ...: every other one sits at a multiple of 2s.
            kept = self.rows()[::2] if self._kept else np.empty((0, 0))
            self._blocks, self._kept, self.stride = ([kept] if self._kept else []), kept.shape[0], self.stride * 2
        start = (-self.seen) % self.stride  # the first row of this block whose place in the stream is a multiple
        self.seen += n
        if start < n:
            block = np.array(rows[start :: self.stride], dtype=np.float64)  # a copy: the caller's chunk is freed
            self._blocks.append(block)
            self._kept += block.shape[0]

    def rows(self) -> npt.NDArray[np.float64]:
        if len(self._blocks) != 1:
            self._blocks = [np.concatenate(self._blocks) if self._blocks else np.empty((0, 0))]
        return self._blocks[0]


class FileMonitor:
    """Follows one file's loaded rows; ``result`` is its monitoring row. ``reset`` starts over (a file read again)."""

    def __init__(self, profile: MonitoringProfile | None, columns: list[str], sample_cap: int = SAMPLE_CAP) -> None:
        if profile is not None and len(columns) != len(profile.features):
            raise ValueError(f"{len(columns)} output columns for {len(profile.features)} reference features")
        self.profile = profile
        self.columns = list(columns)
        self.sample_cap = sample_cap
        self.reset()

    def reset(self) -> None:
        self.failure: str | None = None
        self.rows = 0
        self.malignant = 0
        self.sample = SystematicSample(self.sample_cap)
        calibration = self.profile.calibration if self.profile is not None else None
        self.accuracy = AccuracyEstimate(calibration) if calibration is not None else None

    def add(
        self,
        values: npt.NDArray[np.floating],
        probability: npt.NDArray[np.floating],
        classification: npt.NDArray[np.integer],
    ) -> None:
        """The rows that load from one chunk: their features [n, k], P(malignant) and class (1 malignant)."""
        self.rows += int(probability.shape[0])  # counted even when monitoring has failed: they loaded
        if self.failure is not None:
            return
        try:
            self._add(values, probability, classification)
        except Exception as exc:  # never the load's problem (module docstring)
            self.failure = _failure(exc)

    def _add(
        self,
        values: npt.NDArray[np.floating],
        probability: npt.NDArray[np.floating],
        classification: npt.NDArray[np.integer],
    ) -> None:
        if int(probability.shape[0]) == 0:
            return
        malignant = np.asarray(classification) == 1
        self.malignant += int(np.count_nonzero(malignant))
        if self.profile is not None:
            self.sample.add(values)
        if self.accuracy is not None:
            self.accuracy.add(probability, malignant)

    def drift(self) -> list[FeatureDrift]:
        """Per feature, the file's distance from the reference and its threshold (empty without a profile)."""
        if self.profile is None or self.rows == 0:
            return []
        sample = self.sample.rows()
        tested, k = sample.shape[0], len(self.profile.features)
        threshold = ks_threshold(tested, self.profile.rows, TEST_LEVEL / k)
        out = []
        for j, (column, reference) in enumerate(zip(self.columns, self.profile.features, strict=True)):
            values = np.sort(sample[:, j])
            distance = ks_distance(values, np.asarray(reference.points), np.asarray(reference.cdf))
            out.append(FeatureDrift(column, distance, threshold, float(np.median(values)), reference.median))
        return out

    def result(self) -> LoadMonitoring:
        """The file's monitoring row; a failure inside monitoring gives a row that says so, never an error."""
        if self.failure is None:
            try:
                return self._result()
            except Exception as exc:  # never the load's problem (module docstring)
                self.failure = _failure(exc)
        return LoadMonitoring(
            self.rows, None, None, None, None, None, None, None, None, {"monitoring_failed": self.failure}
        )

    def _result(self) -> LoadMonitoring:
        if self.rows == 0:
            return LoadMonitoring.nothing_scored("no row of the file was scored")
        share = self.malignant / self.rows
        profile = self.profile
        if profile is None:
            return LoadMonitoring(
                self.rows, None, None, None, None, None, None, share, None,
                {"not_tested": "the model's metadata.json has no reference profile: import the model again"},
            )  # fmt: skip
        features = self.drift()
        drifted = [f.column for f in features if f.drifted]
        score = max(f.score for f in features)
        detail: dict[str, Any] = {
            "rows_tested": int(self.sample.rows().shape[0]),
            "reference_rows": profile.rows,
            "test_level": TEST_LEVEL,
            "features": {f.column: f.as_json() for f in features},
        }
        estimate = self.accuracy.result() if self.accuracy is not None else None
        if estimate is None:
            detail["accuracy_not_estimated"] = "the model was imported without labelled rows: drift only"
        low_high = (None, None) if estimate is None else (_round(estimate[1]), _round(estimate[2]))
        return LoadMonitoring(
            rows_scored=self.rows,
            drift_detected=bool(drifted),
            drift_score=_round(score),
            drifted_features=",".join(drifted) or None,
            estimated_accuracy=None if estimate is None else _round(estimate[0]),
            estimated_accuracy_low=low_high[0],
            estimated_accuracy_high=low_high[1],
            predicted_malignant_share=_round(share),
            reference_malignant_share=_round(profile.predicted_malignant_share),
            detail=detail,
        )


def _failure(exc: BaseException) -> str:
    """What went wrong, by type only: an exception's text might quote a measurement."""
    return f"{type(exc).__name__} in monitoring; the file's rows loaded, its monitoring did not run"


def _round(value: float) -> float:
    """Three decimals: what the verdicts need, and short enough never to read as a measurement in a log line."""
    return round(value, 3) if math.isfinite(value) else value
