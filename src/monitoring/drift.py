"""File-level drift: per feature, a two-sample Kolmogorov-Smirnov test of the file against the reference.

The statistic is the largest gap between the file's empirical CDF and the reference's, evaluated at the reference
points stored with the model (every distinct reference value, or its percentiles for a large reference). That is a
lower bound of the exact KS distance, so the test errs towards silence, never towards false alarms.

The threshold is the two-sample test's, at the file's row count ``n`` and the reference's ``m``: with
``n_e = n m / (n + m)``, a feature drifts when ``D * (sqrt(n_e) + 0.12 + 0.11 / sqrt(n_e)) > lambda``, where
``lambda`` is the Kolmogorov distribution's upper ``alpha / k`` quantile (Stephens' small-sample form of the
asymptotic test). ``k`` is the number of features tested at once (Bonferroni): the chance that a file drawn from
the reference distribution raises any alarm is at most ``alpha`` at every size. ``alpha`` is TEST_LEVEL (0.5 %),
half the goal FALSE_ALARM_RATE (1 %), so that the approximations cannot spend the whole budget. The
two-sample form also covers the reference's own sampling error: a reference of a few hundred rows cannot tell
apart distributions closer than about 2 / sqrt(m), however large the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

FALSE_ALARM_RATE = 0.01  # the goal: a file drawn from the reference distribution alarms at most this often
# The level the test is run at: half the goal, the other half left for what the threshold approximates (Stephens'
# small-sample form, discrete data, and a reference that is itself a sample: measured in docs/performance.md).
TEST_LEVEL = FALSE_ALARM_RATE / 2


@lru_cache(maxsize=64)
def kolmogorov_quantile(alpha: float) -> float:
    """The lambda with P(K > lambda) = alpha for the Kolmogorov distribution (0 < alpha < 1)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")

    def tail(lam: float) -> float:
        j = np.arange(1, 101, dtype=np.float64)
        return float(2.0 * np.sum((-1.0) ** (j - 1) * np.exp(-2.0 * j**2 * lam**2)))

    low, high = 0.2, 10.0
    for _ in range(100):  # tail() decreases in lambda
        mid = (low + high) / 2
        low, high = (mid, high) if tail(mid) > alpha else (low, mid)
    return (low + high) / 2


def ks_threshold(n: int, m: int, alpha: float) -> float:
    """The KS distance above which a file of ``n`` rows differs from a reference of ``m`` rows at level ``alpha``
    (> 1 when no distance can: too few rows to tell)."""
    if n <= 0 or m <= 0:
        return math.inf
    effective = n * m / (n + m)
    root = math.sqrt(effective)
    return kolmogorov_quantile(alpha) / (root + 0.12 + 0.11 / root)


def ks_distance(
    sorted_values: npt.NDArray[np.float64], points: npt.NDArray[np.float64], cdf: npt.NDArray[np.float64]
) -> float:
    """max |F_file(x) - F_ref(x)| over the reference points x (``sorted_values``: the file's, ascending)."""
    n = sorted_values.shape[0]
    if n == 0:
        return 0.0
    file_cdf = np.searchsorted(sorted_values, points, side="right") / n
    return float(np.max(np.abs(file_cdf - cdf)))


@dataclass(frozen=True)
class FeatureDrift:
    column: str
    distance: float  # the KS distance
    threshold: float  # at this file's row count
    median: float  # the file's
    reference_median: float

    @property
    def score(self) -> float:
        """The distance as a multiple of its threshold: >= 1 is drift."""
        return self.distance / self.threshold if math.isfinite(self.threshold) else 0.0

    @property
    def drifted(self) -> bool:
        return self.score > 1.0

    @property
    def median_ratio(self) -> float | None:
        """The file's median over the reference's (0.1: a length in centimetres instead of millimetres)."""
        if self.reference_median == 0 or not math.isfinite(self.median / self.reference_median):
            return None
        return self.median / self.reference_median

    def as_json(self) -> dict[str, float | bool | None]:
        """The feature's detail in DRIFT_DETAIL. Coarsely rounded, and never a median itself: a small file's
        median is one of its measurements, and the statement that stores it may be logged (the connector's DEBUG
        log binds values into the text)."""
        ratio = self.median_ratio
        return {
            "ks_distance": round(self.distance, 3),
            "threshold": round(self.threshold, 3) if math.isfinite(self.threshold) else None,
            "score": round(self.score, 2),
            "drifted": self.drifted,
            "median_ratio": None if ratio is None else round(ratio, 2),
        }
