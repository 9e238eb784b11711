"""The reference profile an import stores in metadata.json (``monitoring``): what a file is compared with."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from monitoring.accuracy import fit_calibration
from scoring.metadata import FeatureReference, MonitoringProfile

MAX_POINTS = 101  # a larger reference is kept as its min, its max and the 99 percentiles between


def feature_reference(values: npt.NDArray[np.floating]) -> FeatureReference:
    """One feature's reference distribution from its finite values."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    if x.size == 0 or not np.isfinite(x).all():
        raise ValueError("a reference distribution needs at least one value, all finite")
    distinct = np.unique(x)
    if distinct.size > MAX_POINTS:
        # Actual reference values (inverted_cdf), so each point's cdf is exact: the distance stays a lower bound.
        distinct = np.unique(np.quantile(x, np.linspace(0, 1, MAX_POINTS), method="inverted_cdf"))
    cdf = np.searchsorted(x, distinct, side="right") / x.size
    return FeatureReference(
        points=[float(v) for v in distinct], cdf=[float(c) for c in cdf], median=float(np.median(x))
    )


def build_profile(
    values: npt.NDArray[np.floating],
    rows_from: str,
    predicted_malignant: npt.NDArray[np.bool_],
    calibration_rows: tuple[npt.NDArray[np.floating], npt.NDArray[np.bool_], str] | None,
) -> MonitoringProfile:
    """``values``: the reference rows [m, k]; ``predicted_malignant``: the model's class for each of them;
    ``calibration_rows``: (P(malignant), the true class, where from) of labelled rows, or None (drift only)."""
    if values.ndim != 2 or values.shape[0] == 0 or predicted_malignant.shape[0] != values.shape[0]:
        raise ValueError("the reference needs [m > 0, k] values and one predicted class per row")
    calibration = None
    if calibration_rows is not None:
        probability, truth, source = calibration_rows
        calibration = fit_calibration(probability, truth, source)
    return MonitoringProfile(
        rows=int(values.shape[0]),
        rows_from=rows_from,
        features=[feature_reference(values[:, j]) for j in range(values.shape[1])],
        predicted_malignant_share=float(np.mean(predicted_malignant)),
        calibration=calibration,
    )


def describe(profile: MonitoringProfile) -> dict[str, Any]:
    """What the import prints about the profile."""
    return {
        "reference_rows": profile.rows,
        "rows_from": profile.rows_from,
        "predicted_malignant_share": round(profile.predicted_malignant_share, 4),
        "accuracy_estimate": (
            f"calibrated on {profile.calibration.rows} labelled rows ({profile.calibration.rows_from})"
            if profile.calibration is not None
            else "none: no labelled rows were given (label_column), so files get drift monitoring only"
        ),
    }
