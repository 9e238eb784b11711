"""Text -> numbers (StreamSets' Field Type Converter), with a specific reason for every cell that fails.

Where a row is converted: ``convert_features``. A row is scored only if all of its features are finite
numbers that fit in float32. Other rows are rejected with the first bad column and why; the value itself is
never put in the reason (it goes only to the rejects table's raw text).

Decimal marks are decided from the data (``decimal_mark``), never from the delimiter alone:

* a number whose one ``.`` or ``,`` cannot be a thousands separator (not exactly three digits after it, or
  nothing, ``0`` or more than three digits before it, or an exponent: ``17.99``, ``17,99``, ``0,123``,
  ``1234,5``, ``.5``) is read with that separator as its decimal mark, in any file;
* the file's decimal mark is the one more of such numbers in its first MiB use (``.`` or ``,``), or, when
  none there tell (a first record longer than a MiB), in its first chunk of records; it is undecided when
  none tell, or as many of each;
* a number shaped like a thousands group (one separator between 1-3 digits, not starting with 0, and exactly
  three: ``2,019``, ``2.019``) is read as a decimal only when that separator is the file's decimal mark; else
  the row is rejected as ambiguous, never guessed;
* a number with more than one separator (``1,234,567``, ``1.234,5``) is rejected: thousands separators are not
  read.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.markers import MISSING_VALUE_MARKERS

NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"  # a decimal point, or none
NUMBER_COMMA = r"^[+-]?(\d+,?\d*|,\d+)([eE][+-]?\d+)?$"  # a decimal comma, or none
# One separator between 1-3 digits (no leading 0) and exactly three: a decimal mark or a thousands separator.
GROUP_SHAPED = r"^[+-]?[1-9]\d{0,2}[.,]\d{3}$"
GROUPED = r"^[+-]?\d{1,3}([.,]\d{3})+([.,]\d*)?$"  # digit groups: 1,234,567 or 1.234,5 or 1,234.5
NON_FINITE = r"(?i)^[+-]?(nan|inf|infinity)$"
MARKERS = pa.array(sorted(MISSING_VALUE_MARKERS), pa.string())  # NA, n/a, null ...: missing, not non-numeric
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


def decimal_mark_counts(table: pa.Table, columns: list[str]) -> tuple[int, int]:
    """How many cells of ``columns`` are numbers with a decimal point, and with a decimal comma, that cannot be
    thousands separators (see the module docstring)."""
    point = comma = 0
    for name in columns:
        if name not in table.column_names:
            continue
        text = pc.utf8_trim_whitespace(table.column(name))
        unambiguous = pc.invert(pc.match_substring_regex(text, GROUP_SHAPED))
        point += _count(
            pc.and_(pc.and_(pc.match_substring_regex(text, NUMBER), pc.match_substring(text, ".")), unambiguous)
        )
        comma += _count(
            pc.and_(pc.and_(pc.match_substring_regex(text, NUMBER_COMMA), pc.match_substring(text, ",")), unambiguous)
        )
    return point, comma


def decimal_mark(point: int, comma: int) -> str | None:
    """The decimal mark more of a file's telling numbers use; None when none tell, or as many of each."""
    if point == comma:
        return None
    return "." if point > comma else ","


def _count(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.sum(pc.cast(mask, pa.int64())).as_py() or 0)


def convert_features(table: pa.Table, features: list[str], *, decimal_mark: str | None = ".") -> ConvertedFeatures:
    """Parse ``features`` of ``table`` (text) as float64; ``decimal_mark`` is the file's (see ``decimal_mark``)."""
    n = table.num_rows
    values = np.empty((n, len(features)), dtype=np.float64, order="F")
    first_problem: dict[int, RowProblem] = {}
    slow: list[int] = []

    # Fast path: a clean column (the usual case) casts straight to float64. Arrow's cast accepts what NUMBER
    # accepts plus nan/inf spellings, which the range check catches; anything else goes the careful way. It reads
    # 2.019 as 2.019, which is right only when the file's decimal mark is the point.
    for j, name in enumerate(features):
        column = table.column(name)
        if decimal_mark == ".":
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
        # At most one separator, used as a decimal mark; an ambiguous one only when it is the file's mark.
        with_comma = pc.match_substring(text, ",")
        single = pc.or_(pc.match_substring_regex(text, NUMBER), pc.match_substring_regex(text, NUMBER_COMMA))
        shaped = pc.match_substring_regex(text, GROUP_SHAPED)
        if decimal_mark == ".":
            ambiguous = pc.and_(shaped, with_comma)
        elif decimal_mark == ",":
            ambiguous = pc.and_(shaped, pc.invert(with_comma))
        else:
            ambiguous = shaped
        number = pc.and_(single, pc.invert(ambiguous))
        is_number = number.to_numpy(zero_copy_only=False)
        decimal = pc.replace_substring(text, ",", ".")
        parsed = pc.cast(pc.if_else(number, decimal, "nan"), pa.float64()).to_numpy(zero_copy_only=False)
        values[:, j] = parsed
        bad = ~is_number | ~(np.abs(parsed) <= FLOAT32_MAX)
        if not bad.any():
            continue
        empty = pc.equal(text, "").to_numpy(zero_copy_only=False)
        marked = pc.is_in(pc.utf8_lower(text), value_set=MARKERS).to_numpy(zero_copy_only=False)
        non_finite = pc.match_substring_regex(text, NON_FINITE).to_numpy(zero_copy_only=False)
        unclear = ambiguous.to_numpy(zero_copy_only=False)
        grouped = pc.match_substring_regex(text, GROUPED).to_numpy(zero_copy_only=False)
        for flat in np.flatnonzero(bad & ~blank):
            i = int(flat)
            if i in first_problem:  # slow columns go in feature order: the first bad column is reported
                continue
            if empty[i]:
                reason = f"missing value in column {name!r}"
            elif non_finite[i]:
                reason = f"non-finite value (NaN or infinity) in column {name!r}"
            elif marked[i]:
                reason = f"missing value in column {name!r} (a missing-value marker such as NA, N/A or null)"
            elif is_number[i]:
                reason = f"value out of range (beyond float32) in column {name!r}"
            elif unclear[i]:
                reason = (
                    f"ambiguous number in column {name!r}: its ',' or '.' before three digits may be a decimal or "
                    f"a thousands separator, and {_mark_text(decimal_mark)}"
                )
            elif grouped[i]:
                reason = f"thousands separators in column {name!r}: write the number without digit grouping"
            else:
                reason = f"non-numeric value in column {name!r}"
            first_problem[i] = RowProblem(index=i, column=name, reason=reason)

    ok = np.ones(n, dtype=bool)
    ok[list(first_problem)] = False
    ok &= ~blank
    return ConvertedFeatures(
        values=values, ok=ok, blank=blank, problems=[first_problem[i] for i in sorted(first_problem)]
    )


def _mark_text(mark: str | None) -> str:
    if mark is None:
        return "the file shows no decimal mark of its own"
    return f"the file's decimal mark is {mark!r}"


def _blank_rows(table: pa.Table) -> npt.NDArray[np.bool_]:
    blank = np.ones(table.num_rows, dtype=bool)
    for column in table.columns:
        blank &= pc.equal(pc.utf8_trim_whitespace(column), "").to_numpy(zero_copy_only=False)
    return blank
