"""Implausible inputs: impossible values rejected, values far outside the training data flagged.

A classifier's verdict on a tumour with a negative radius, or with a mean area a hundred times any it was trained
on, is not a diagnosis. After a chunk's text is converted (``pipeline/features.py``) and before it is scored,
each scoreable row's features are checked against the model's metadata (``scoring/metadata.py``):

* **outside the feature's valid domain** (below ``domain.min`` or above ``domain.max``; the bounds themselves are
  valid): the row is rejected, its reason naming the column and the rule, e.g.
  ``value below the valid minimum 0 in column 'mean radius'``. Whatever ``OUT_OF_RANGE`` says.
* **inside the domain but far beyond the training range**: further below ``training_range.min``, or above
  ``training_range.max``, than ``OUT_OF_RANGE_MARGIN`` times the range (max - min). With ``OUT_OF_RANGE=flag``
  the row loads and is scored, and ``OUT_OF_RANGE_FEATURES`` lists its output columns (comma-separated, in the
  model's feature order); with ``reject`` it is rejected naming the first such column; with ``off`` it loads
  like any other row. A value exactly at the bound is not flagged. A feature without a training range is never
  flagged.

Neither a reason nor anything logged holds the value: the raw text goes only to the rejects table.

The check is vectorised over the chunk's column-major float block (one contiguous array per feature): per
feature, one ``min`` and one ``max`` reduction; only a feature whose extremes cross a bound is looked at row by
row (with boolean masks), and only rows that cross one become Python objects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from pipeline.features import ConvertedFeatures, RowProblem
from pipeline.settings import OutOfRange, Settings
from scoring.metadata import ModelMetadata


def _bound(value: float) -> str:
    """A bound as written in a reason: ``0``, ``1e+06``, ``0.25`` (the model's number, never the row's)."""
    return format(value, ".15g")


@dataclass(frozen=True)
class CheckedFeatures:
    """A chunk after the check: ``converted`` with the impossible (and, for ``reject``, the far out-of-range)
    rows turned into problems, and the flags of the rows that are still scoreable."""

    converted: ConvertedFeatures
    flags: pa.Array | None  # string per scoreable row (NULL: none), aligned with converted.good_values; None: none
    rows_flagged: int

    def flag_column(self) -> pa.Array:
        """``OUT_OF_RANGE_FEATURES`` for the scoreable rows (all NULL when none is flagged)."""
        if self.flags is not None:
            return self.flags
        return pa.nulls(int(np.count_nonzero(self.converted.ok)), pa.string())


class PlausibilityCheck:
    """The bounds of one model under one setting, built once per container; ``check`` runs per chunk."""

    def __init__(self, metadata: ModelMetadata, columns: list[str], mode: OutOfRange, margin: float) -> None:
        """``columns``: each feature's output column (after ``COLUMN_RENAMES``), in the model's feature order."""
        if len(columns) != metadata.n_features:
            raise ValueError(f"{len(columns)} output columns for {metadata.n_features} features")
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"the margin must be a finite number >= 0, got {margin}")
        self.names = metadata.feature_names
        self.columns = list(columns)
        self.mode = mode
        self.margin = margin
        n = metadata.n_features
        self.domain_min = np.full(n, -np.inf)
        self.domain_max = np.full(n, np.inf)
        self.flag_below = np.full(n, -np.inf)  # flagged when value < flag_below[j]
        self.flag_above = np.full(n, np.inf)  # flagged when value > flag_above[j]
        for j, feature in enumerate(metadata.features):
            if feature.domain.min is not None:
                self.domain_min[j] = feature.domain.min
            if feature.domain.max is not None:
                self.domain_max[j] = feature.domain.max
            seen = feature.training_range
            if seen is not None and mode is not OutOfRange.OFF:
                self.flag_below[j], self.flag_above[j] = flag_bounds(seen.min, seen.max, margin)
        # A column whose values all lie in [low, high] needs no closer look.
        self._low = np.maximum(self.domain_min, self.flag_below)
        self._high = np.minimum(self.domain_max, self.flag_above)

    @property
    def active(self) -> bool:
        """Whether any bound applies (a model without domain or training range checks nothing)."""
        return bool(np.isfinite(self._low).any() or np.isfinite(self._high).any())

    def check(self, converted: ConvertedFeatures) -> CheckedFeatures:
        values = converted.values
        ok = converted.ok
        suspect = [j for j in range(values.shape[1]) if self._crosses(values[:, j], j)]
        if not suspect:  # the usual case: every value of the chunk is plausible
            return CheckedFeatures(converted, None, 0)
        ok = ok.copy()
        problems = list(converted.problems)

        # 1. Impossible values: rejected, naming the first such column of the row (features in model order).
        for j in suspect:
            column = values[:, j]
            for bound, below in ((self.domain_min[j], True), (self.domain_max[j], False)):
                if not np.isfinite(bound):
                    continue
                bad = (column < bound) if below else (column > bound)
                bad &= ok
                if bad.any():
                    rule = "below the valid minimum" if below else "above the valid maximum"
                    reason = f"value {rule} {_bound(bound)} in column {self.names[j]!r}"
                    problems.extend(RowProblem(int(i), self.names[j], reason) for i in np.flatnonzero(bad))
                    ok &= ~bad

        # 2. Far beyond the training range (among the rows still scoreable).
        far = {j: ((values[:, j] < self.flag_below[j]) | (values[:, j] > self.flag_above[j])) & ok for j in suspect}
        far = {j: mask for j, mask in far.items() if mask.any()}
        flags: pa.Array | None = None
        rows_flagged = 0
        if far and self.mode is OutOfRange.REJECT:
            for j, mask in far.items():  # in feature order: a row is rejected for its first such column
                mask &= ok
                reason = (
                    f"value beyond the training range by more than OUT_OF_RANGE_MARGIN ({_bound(self.margin)} of "
                    f"the range) in column {self.names[j]!r}"
                )
                problems.extend(RowProblem(int(i), self.names[j], reason) for i in np.flatnonzero(mask))
                ok &= ~mask
        elif far:
            flags, rows_flagged = self._flags(far, ok)

        problems.sort(key=lambda p: p.index)
        checked = ConvertedFeatures(values=values, ok=ok, blank=converted.blank, problems=problems)
        return CheckedFeatures(checked, flags, rows_flagged)

    def _crosses(self, column: npt.NDArray[np.float64], j: int) -> bool:
        """Whether any value of the column lies outside [low, high] (NaN, from a failed cell, counts as maybe)."""
        if not (np.isfinite(self._low[j]) or np.isfinite(self._high[j])) or column.size == 0:
            return False
        return not (column.min() >= self._low[j] and column.max() <= self._high[j])

    def _flags(self, far: dict[int, npt.NDArray[np.bool_]], ok: npt.NDArray[np.bool_]) -> tuple[pa.Array | None, int]:
        """The flag text of each scoreable row, from the per-feature masks of the flagged ones."""
        features = sorted(far)
        flagged = np.zeros(ok.shape[0], dtype=bool)
        for j in features:
            flagged |= far[j]
        rows = np.flatnonzero(flagged)  # all scoreable: each mask is already ANDed with ok
        if rows.size == 0:
            return None, 0
        # One text per distinct combination of flagged features (few), as an Arrow dictionary over the scoreable
        # rows: no Python object per row.
        combos, inverse = _combinations(np.stack([far[j][rows] for j in features], axis=1))
        texts = pa.array([",".join(self.columns[features[k]] for k in np.flatnonzero(c)) for c in combos], pa.string())
        position = np.cumsum(ok) - 1  # each scoreable row's index among the scoreable rows
        indices = np.zeros(int(position[-1]) + 1, dtype=np.int32)
        unflagged = np.ones(indices.shape[0], dtype=bool)
        indices[position[rows]] = inverse.reshape(-1)
        unflagged[position[rows]] = False
        flags = pa.DictionaryArray.from_arrays(pa.array(indices, mask=unflagged), texts).cast(pa.string())
        return flags, int(rows.size)


def _combinations(which: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.intp]]:
    """The distinct rows of a boolean [m, f] array, and each row's index among them (as ``np.unique(axis=0)``)."""
    if which.shape[1] > 64:
        combos, inverse = np.unique(which, axis=0, return_inverse=True)
        return combos, inverse
    # Up to 64 features: one integer code a row (its flagged features' bits), whose unique is a plain fast sort.
    weights = np.left_shift(np.uint64(1), np.arange(which.shape[1], dtype=np.uint64))
    codes = (which * weights).sum(axis=1, dtype=np.uint64)
    unique, inverse = np.unique(codes, return_inverse=True)
    return (unique[:, None] & weights) != 0, inverse


def flag_bounds(low: float, high: float, margin: float) -> tuple[float, float]:
    """The values beyond which a feature seen over [low, high] in training is flagged: low - margin * (high - low)
    and high + margin * (high - low), in float64 (a value equal to a bound is not flagged)."""
    spread = margin * (high - low)
    return low - spread, high + spread


def plausibility_check(metadata: ModelMetadata, settings: Settings) -> PlausibilityCheck:
    """The check for a model under the function's settings (flags name the output columns, after COLUMN_RENAMES)."""
    columns = [settings.column_renames.get(f.name, f.column) for f in metadata.features]
    return PlausibilityCheck(metadata, columns, settings.out_of_range, settings.out_of_range_margin)
