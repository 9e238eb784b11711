"""Text -> numbers (StreamSets' Field Type Converter), with a specific reason for every cell that fails.

Where a row is converted: ``convert_features``. A row is scored only if all of its features are finite
numbers that fit in float32. Other rows are rejected with the first bad column and why; the value itself is
never put in the reason (it goes only to the rejects table's raw text).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
NON_FINITE = r"(?i)^[+-]?(nan|inf|infinity)$"
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class RowProblem:
    index: int  # row index within the chunk
    column: str
    reason: str


@dataclass
class ConvertedFeatures:
    """``values`` holds every row (NaN where a cell failed); ``ok`` marks the rows that can be scored."""

    # [n, n_features], exact parse of the text (what is stored). Column-major: each feature is one contiguous
    # column, so filling it and handing it to pandas (whose float block is [n_features, n]) copy nothing.
    values: npt.NDArray[np.float64]
    ok: npt.NDArray[np.bool_]
    blank: npt.NDArray[np.bool_]  # rows whose every field is empty: skipped, not rejected
    problems: list[RowProblem]

    @property
    def all_ok(self) -> bool:
        return bool(self.ok.all())

    @cached_property
    def good_values(self) -> npt.NDArray[np.float64]:
        """The scoreable rows' values, [n_ok, n_features], still column-major (no copy when every row is good)."""
        if self.all_ok:
            return self.values
        return np.compress(self.ok, self.values.T, axis=1).T

    def model_input(self) -> npt.NDArray[np.float32]:
        """The scoreable rows as the model's float32 [n_ok, n_features] batch (row-major, as the model reads it)."""
        return np.ascontiguousarray(self.good_values, dtype=np.float32)


def convert_features(table: pa.Table, features: list[str], *, decimal_comma: bool = False) -> ConvertedFeatures:
    n = table.num_rows
    values = np.empty((n, len(features)), dtype=np.float64, order="F")
    first_problem: dict[int, RowProblem] = {}
    slow: list[int] = []

    # Fast path: a clean column (the usual case) casts straight to float64. Arrow's cast accepts what NUMBER
    # accepts plus nan/inf spellings, which the range check catches; anything else goes the careful way.
    for j, name in enumerate(features):
        column = table.column(name)
        if not decimal_comma:
            try:
                parsed = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                parsed = None
            if parsed is not None and bool((np.abs(parsed) <= FLOAT32_MAX).all()):
                values[:, j] = parsed
                continue
        slow.append(j)

    # Blank rows (every field empty) can only exist when some feature column needed the careful path.
    blank = _blank_rows(table) if slow else np.zeros(n, dtype=bool)
    for j in slow:
        name = features[j]
        text = pc.utf8_trim_whitespace(table.column(name))
        if decimal_comma:
            text = pc.replace_substring(text, ",", ".")
        is_number = pc.match_substring_regex(text, NUMBER).to_numpy(zero_copy_only=False)
        parsed = pc.cast(pc.if_else(is_number, text, "nan"), pa.float64()).to_numpy(zero_copy_only=False)
        values[:, j] = parsed
        bad = ~is_number | ~(np.abs(parsed) <= FLOAT32_MAX)
        if not bad.any():
            continue
        empty = pc.equal(text, "").to_numpy(zero_copy_only=False)
        non_finite = pc.match_substring_regex(text, NON_FINITE).to_numpy(zero_copy_only=False)
        for flat in np.flatnonzero(bad & ~blank):
            i = int(flat)
            if i in first_problem:  # slow columns go in feature order: the first bad column is reported
                continue
            if empty[i]:
                reason = f"missing value in column {name!r}"
            elif non_finite[i]:
                reason = f"non-finite value (NaN or infinity) in column {name!r}"
            elif is_number[i]:
                reason = f"value out of range (beyond float32) in column {name!r}"
            else:
                reason = f"non-numeric value in column {name!r}"
            first_problem[i] = RowProblem(index=i, column=name, reason=reason)

    ok = np.ones(n, dtype=bool)
    ok[list(first_problem)] = False
    ok &= ~blank
    return ConvertedFeatures(
        values=values, ok=ok, blank=blank, problems=[first_problem[i] for i in sorted(first_problem)]
    )


def _blank_rows(table: pa.Table) -> npt.NDArray[np.bool_]:
    blank = np.ones(table.num_rows, dtype=bool)
    for column in table.columns:
        blank &= pc.equal(pc.utf8_trim_whitespace(column), "").to_numpy(zero_copy_only=False)
    return blank
