"""A label-free estimate of the model's accuracy on a file (confidence-based performance estimation).

On labelled reference rows the import fits P(malignant | p) = sigmoid(slope * logit(p) + intercept) (Platt
scaling, ``fit_calibration``). On a file, each row the model calls malignant is right with probability q (the
calibrated probability), each row it calls benign with 1 - q; the expected accuracy is their mean. That holds
while the relation between the model's probability and the truth is the reference's (a covariate shift: other
patients, the same disease), not when the disease itself changes; drift says when the inputs changed.

The 95 % interval adds two variances: the file's own (each row right or wrong: sum of c (1 - c) / n^2) and the
calibration's (the fit's covariance, carried through by the delta method).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from scoring.metadata import Calibration

Z_95 = 1.959963984540054
_EPS = 1e-7  # probabilities are clipped to [EPS, 1 - EPS] before the logit (float32 gives exact 0 and 1)
PRIOR_PRECISION = 0.01  # a weak pull of (slope, intercept) towards (1, 0): the fit exists with separable labels


def logit(p: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    out: npt.NDArray[np.float64] = np.log(q) - np.log1p(-q)
    return out


def _sigmoid(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = 0.5 * (1.0 + np.tanh(0.5 * x))
    return out


def fit_calibration(
    probability: npt.NDArray[np.floating], malignant: npt.NDArray[np.bool_], rows_from: str
) -> Calibration:
    """Platt scaling of the model's P(malignant) on labelled rows (maximum a posteriori, Newton's method)."""
    z = logit(probability)
    y = np.asarray(malignant, dtype=np.float64)
    if z.shape != y.shape or z.size == 0:
        raise ValueError("the calibration needs one label per probability, and at least one row")
    design = np.column_stack([z, np.ones_like(z)])
    prior_mean = np.array([1.0, 0.0])
    precision = PRIOR_PRECISION * np.eye(2)
    theta = prior_mean.copy()
    for _ in range(100):
        q = _sigmoid(design @ theta)
        gradient = design.T @ (y - q) - precision @ (theta - prior_mean)
        hessian = (design * (q * (1 - q))[:, None]).T @ design + precision
        step = np.linalg.solve(hessian, gradient)
        theta = theta + step
        if float(np.max(np.abs(step))) < 1e-10:
            break
    q = _sigmoid(design @ theta)
    covariance = np.linalg.inv((design * (q * (1 - q))[:, None]).T @ design + precision)
    return Calibration(
        slope=float(theta[0]),
        intercept=float(theta[1]),
        covariance=covariance.tolist(),
        rows=int(y.size),
        malignant=int(y.sum()),
        rows_from=rows_from,
    )


@dataclass
class AccuracyEstimate:
    """Sums over a file's scored rows, chunk by chunk; ``result`` gives the estimate and its interval."""

    calibration: Calibration
    rows: int = 0
    correct: float = 0.0  # sum of c, each row's probability of being right
    variance: float = 0.0  # sum of c (1 - c)
    gradient: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(2))  # sum of dc/d(slope, intercept)

    def add(self, probability: npt.NDArray[np.floating], malignant: npt.NDArray[np.bool_]) -> None:
        if probability.shape[0] == 0:
            return
        z = logit(probability)
        q = _sigmoid(self.calibration.slope * z + self.calibration.intercept)
        c = np.where(malignant, q, 1.0 - q)
        dq = q * (1.0 - q)
        sign = np.where(malignant, 1.0, -1.0)
        self.rows += int(probability.shape[0])
        self.correct += float(c.sum())
        self.variance += float((c * (1.0 - c)).sum())
        self.gradient += np.array([float((sign * dq * z).sum()), float((sign * dq).sum())])

    def result(self) -> tuple[float, float, float] | None:
        """(estimate, low, high) of the file's accuracy, or None without rows."""
        if self.rows == 0:
            return None
        n = self.rows
        estimate = self.correct / n
        g = self.gradient / n
        calibration_var = float(g @ np.asarray(self.calibration.covariance) @ g)
        sd = math.sqrt(max(self.variance / n**2 + max(calibration_var, 0.0), 0.0))
        return estimate, max(0.0, estimate - Z_95 * sd), min(1.0, estimate + Z_95 * sd)
