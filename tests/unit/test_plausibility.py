"""pipeline.plausibility: impossible values rejected, values far beyond the training range flagged.

A three-feature model: ``mean radius`` (domain >= 0, trained on 10..20, so with the margin 0.5 it is flagged below
5 and above 25), ``mean area`` (domain >= 0, trained on 100..1100: flagged above 1600; its low flag bound, -400,
lies below the domain) and ``ratio`` (domain [0, 1], no training range: never flagged).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipeline.features import ConvertedFeatures, RowProblem, convert_features
from pipeline.plausibility import PlausibilityCheck, _combinations, flag_bounds, plausibility_check
from pipeline.settings import OutOfRange, Settings
from scoring.metadata import ModelMetadata

MARGIN = 0.5
COLUMNS = ["MEAN_RADIUS", "MEAN_AREA", "RATIO"]
NAMES = ["mean radius", "mean area", "ratio"]
TYPICAL = [15.0, 600.0, 0.5]  # a row well inside every bound


def _range(low: float, high: float) -> dict[str, float]:
    return {"min": low, "max": high, "p0_5": low, "p99_5": high}


def metadata(**feature_changes: dict[str, Any]) -> ModelMetadata:
    features = [
        {"name": "mean radius", "column": "MEAN_RADIUS", "domain": {"min": 0}, "training_range": _range(10, 20)},
        {"name": "mean area", "column": "MEAN_AREA", "domain": {"min": 0}, "training_range": _range(100, 1100)},
        {"name": "ratio", "column": "RATIO", "domain": {"min": 0, "max": 1}},
    ]
    for feature in features:
        feature.update(feature_changes.get(feature["name"], {}))
    return ModelMetadata.model_validate(
        {
            "model_version": "test",
            "tflite_file": "model.tflite",
            "tflite_sha256": "0" * 64,
            "signature": {"key": "s", "input": {"name": "x", "dtype": "float32", "shape": [None, 3]}, "outputs": {}},
            "features": features,
            "outputs": {},
            "decision_threshold": 0.5,
            "labels": {"0": "benign", "1": "malignant"},
        }
    )


def chunk(rows: list[list[float]]) -> ConvertedFeatures:
    values = np.asfortranarray(np.array(rows, dtype=np.float64).reshape(-1, 3))
    n = values.shape[0]
    return ConvertedFeatures(values=values, ok=np.ones(n, bool), blank=np.zeros(n, bool), problems=[])


def check(
    rows: list[list[float]], mode: OutOfRange = OutOfRange.FLAG, margin: float = MARGIN, columns: list[str] = COLUMNS
) -> tuple[list[str | None], list[RowProblem], list[bool]]:
    """(flags of the loaded rows, problems, ok per row) after the check."""
    checked = PlausibilityCheck(metadata(), columns, mode, margin).check(chunk(rows))
    flags = checked.flag_column().to_pylist()
    assert len(flags) == int(checked.converted.ok.sum())
    assert checked.rows_flagged == sum(f is not None for f in flags)
    return flags, checked.converted.problems, checked.converted.ok.tolist()


def below(x: float) -> float:
    return math.nextafter(x, -math.inf)


def above(x: float) -> float:
    return math.nextafter(x, math.inf)


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        (2, 0.0, None),  # the domain's bounds are valid values
        (2, 1.0, None),
        (2, below(0.0), "value below the valid minimum 0 in column 'ratio'"),
        (2, -0.0, None),
        (2, above(1.0), "value above the valid maximum 1 in column 'ratio'"),
        (0, below(0.0), "value below the valid minimum 0 in column 'mean radius'"),
        (1, -14.2, "value below the valid minimum 0 in column 'mean area'"),
    ],
    ids=["at-min", "at-max", "just-below-min", "minus-zero", "just-above-max", "radius-below-0", "negative-area"],
)
def test_the_edges_of_the_domain(column: int, value: float, reason: str | None) -> None:
    """Given a row whose one value sits at, or just past, an edge of its feature's valid domain
    When it is checked
    Then a value at the edge passes and the next float past it rejects the row, naming the column and the rule
    and never the value."""
    row = list(TYPICAL)
    row[column] = value

    _, problems, ok = check([row])

    if reason is None:
        assert ok == [True] and problems == []
    else:
        assert ok == [False]
        assert problems == [RowProblem(0, NAMES[column], reason)]
        assert repr(value) not in reason


@pytest.mark.parametrize(
    ("column", "value", "flag"),
    [
        (0, 25.0, None),  # exactly max + margin * range: not beyond it
        (0, above(25.0), "MEAN_RADIUS"),
        (0, 5.0, None),  # exactly min - margin * range
        (0, below(5.0), "MEAN_RADIUS"),
        (1, 1600.0, None),
        (1, above(1600.0), "MEAN_AREA"),
        (1, 0.0, None),  # the low flag bound (-400) is below the domain: the domain's edge is all there is
        (0, 1e6, "MEAN_RADIUS"),
        (2, 1.0, None),  # no training range: never flagged
    ],
    ids=[
        "at-high-bound",
        "just-past-high-bound",
        "at-low-bound",
        "just-past-low-bound",
        "area-at-high-bound",
        "area-just-past",
        "area-zero",
        "huge",
        "no-training-range",
    ],
)
def test_the_edges_of_the_margin(column: int, value: float, flag: str | None) -> None:
    """Given a row whose one value sits at, or just past, its feature's flag bound (training min/max -/+ 0.5 of the
    range: 5 and 25 for mean radius, 1600 for mean area)
    When it is checked (OUT_OF_RANGE=flag)
    Then the row loads; a value at the bound is not flagged, the next float past it is."""
    row = list(TYPICAL)
    row[column] = value

    flags, problems, ok = check([row])

    assert ok == [True] and problems == []
    assert flags == [flag]


@pytest.mark.parametrize(
    ("margin", "bounds", "radii", "flags"),
    [
        (0.0, (10.0, 20.0), [10.0, 20.0, below(10.0), above(20.0)], [None, None, "MEAN_RADIUS", "MEAN_RADIUS"]),
        (0.5, (5.0, 25.0), [5.0, 25.0, below(5.0), above(25.0)], [None, None, "MEAN_RADIUS", "MEAN_RADIUS"]),
        (2.0, (-10.0, 40.0), [0.0, 40.0, above(40.0)], [None, None, "MEAN_RADIUS"]),  # below 0: the domain's
    ],
)
def test_the_margin_is_a_fraction_of_the_training_range(
    margin: float, bounds: tuple[float, float], radii: list[float], flags: list[str | None]
) -> None:
    """Given OUT_OF_RANGE_MARGIN = 0, 0.5 or 2 and mean radius trained on 10..20
    When the flag bounds are computed, and radii at and just past them checked
    Then the bounds are min - margin * range and max + margin * range, exactly, and only the radii past them are
    flagged."""
    assert flag_bounds(10.0, 20.0, margin) == bounds

    got, _, ok = check([[r, 600.0, 0.5] for r in radii], margin=margin)

    assert all(ok)
    assert got == flags


ROWS = [
    TYPICAL,  # untouched
    [-14.2, 600, 0.5],  # impossible: negative radius
    [15, 1e6, 0.5],  # huge area
    [30, 2000, 0.5],  # two features far out
    [-1, 1e6, 0.5],  # impossible and far out: the impossibility wins
]


@pytest.mark.parametrize(
    ("mode", "flags", "problems"),
    [
        (
            OutOfRange.FLAG,
            [None, "MEAN_AREA", "MEAN_RADIUS,MEAN_AREA"],
            [(1, "mean radius", "below the valid minimum 0"), (4, "mean radius", "below the valid minimum 0")],
        ),
        (
            OutOfRange.REJECT,
            [None],
            [
                (1, "mean radius", "below the valid minimum 0"),
                (2, "mean area", "beyond the training range by more than OUT_OF_RANGE_MARGIN (0.5 of the range)"),
                (3, "mean radius", "beyond the training range by more than OUT_OF_RANGE_MARGIN (0.5 of the range)"),
                (4, "mean radius", "below the valid minimum 0"),
            ],
        ),
        (
            OutOfRange.OFF,
            [None, None, None],
            [(1, "mean radius", "below the valid minimum 0"), (4, "mean radius", "below the valid minimum 0")],
        ),
    ],
    ids=["flag", "reject", "off"],
)
def test_the_three_settings(mode: OutOfRange, flags: list[str | None], problems: list[tuple[int, str, str]]) -> None:
    """Given rows untouched, impossible, far out in one feature, far out in two, and both impossible and far out
    When they are checked under OUT_OF_RANGE=flag, reject and off
    Then impossible rows are rejected under every setting; far-out rows are flagged (their columns listed in
    feature order), rejected naming their first such column, or loaded as any other row."""
    got_flags, got_problems, ok = check(ROWS, mode)

    assert got_flags == flags
    assert [(p.index, p.column) for p in got_problems] == [(i, c) for i, c, _ in problems]
    for problem, (_, _, rule) in zip(got_problems, problems, strict=True):
        assert rule in problem.reason
        assert problem.reason.endswith(f"in column {problem.column!r}")
    assert sum(ok) == len(flags)


def test_flags_name_the_output_columns_after_renames() -> None:
    """Given COLUMN_RENAMES mapping mean area to AREA_UM2, OUT_OF_RANGE=flag and a margin of 0.1
    When the function's check is built from the settings and a row with an area of 1250 is checked
    Then its flag names the output column AREA_UM2 (1250 is beyond 1100 + 0.1 x 1000, not beyond 1100 + 0.5 x 1000)."""
    settings = Settings.from_env(
        {
            "SNOWFLAKE_SECRET_NAME": "s",
            "SNOWFLAKE_DATABASE": "D",
            "SNOWFLAKE_SCHEMA": "S",
            "COLUMN_RENAMES": '{"mean area": "AREA_UM2"}',
            "OUT_OF_RANGE_MARGIN": "0.1",
        }
    )
    built = plausibility_check(metadata(), settings)

    checked = built.check(chunk([[15, 1250, 0.5]]))

    assert (built.mode, built.margin, built.columns) == (OutOfRange.FLAG, 0.1, ["MEAN_RADIUS", "AREA_UM2", "RATIO"])
    assert checked.flag_column().to_pylist() == ["AREA_UM2"]


def test_rows_already_rejected_are_left_alone() -> None:
    """Given a chunk converted from text where one row has a non-numeric radius and a huge area
    When it is checked
    Then that row keeps its one conversion problem (no second reject, no flag) and the good row loads unflagged."""
    table = pa.table({"mean radius": ["abc", "15"], "mean area": ["1e6", "600"], "ratio": ["0.5", "0.5"]})
    converted = convert_features(table, NAMES)

    checked = PlausibilityCheck(metadata(), COLUMNS, OutOfRange.FLAG, MARGIN).check(converted)

    assert [(p.index, p.column) for p in checked.converted.problems] == [(0, "mean radius")]
    assert checked.converted.problems[0].reason.startswith("non-numeric")
    assert checked.flag_column().to_pylist() == [None]
    assert checked.rows_flagged == 0


def test_a_model_without_domain_or_training_range_checks_nothing() -> None:
    """Given a metadata.json written before these sections existed
    When rows of any value are checked
    Then nothing is rejected or flagged."""
    bare = metadata(**{n: {"domain": {}, "training_range": None} for n in NAMES})
    plain = PlausibilityCheck(bare, COLUMNS, OutOfRange.FLAG, MARGIN)

    checked = plain.check(chunk([[-1, 1e9, 7]]))

    assert not plain.active
    assert checked.converted.ok.tolist() == [True]
    assert checked.flag_column().to_pylist() == [None]


# --- properties ------------------------------------------------------------------------------------------------

LOW, HIGH = [5.0, 0.0, 0.0], [25.0, 1600.0, 1.0]  # the accepted, unflagged interval of each feature


def value_in(j: int) -> st.SearchStrategy[float]:
    return st.floats(min_value=LOW[j], max_value=HIGH[j], allow_nan=False)


in_range_row = st.tuples(value_in(0), value_in(1), value_in(2)).map(list)


@settings(max_examples=300, deadline=None)
@given(st.lists(in_range_row, min_size=1, max_size=50), st.sampled_from(list(OutOfRange)))
def test_an_in_range_row_is_never_flagged(rows: list[list[float]], mode: OutOfRange) -> None:
    """Given rows whose every value lies within its domain and within the margin of its training range
    When they are checked, under any setting
    Then every row loads and none is flagged."""
    flags, problems, ok = check(rows, mode)

    assert all(ok) and problems == []
    assert flags == [None] * len(rows)


@st.composite
def row_beyond_the_margin(draw: Any) -> tuple[list[float], int]:
    """A row in range but for one feature with a training range, beyond its margin (and inside its domain)."""
    row = [draw(value_in(j)) for j in range(3)]
    j = draw(st.sampled_from([0, 1]))
    if j == 0 and draw(st.booleans()):
        row[0] = draw(st.floats(min_value=0.0, max_value=below(5.0)))
    else:
        row[j] = draw(st.floats(min_value=above(HIGH[j]), max_value=3.4e38))
    return row, j


@settings(max_examples=300, deadline=None)
@given(st.lists(in_range_row, max_size=20), row_beyond_the_margin(), st.data())
def test_a_row_beyond_the_margin_is_always_flagged(
    others: list[list[float]], beyond: tuple[list[float], int], data: st.DataObject
) -> None:
    """Given in-range rows and, anywhere among them, one row with a value beyond its feature's margin
    When they are checked (OUT_OF_RANGE=flag)
    Then every row loads, that row's flag is exactly its column, and no other row is flagged."""
    row, j = beyond
    at = data.draw(st.integers(min_value=0, max_value=len(others)))
    rows = [*others[:at], row, *others[at:]]

    flags, problems, ok = check(rows)

    assert all(ok) and problems == []
    assert flags == [None] * at + [COLUMNS[j]] + [None] * (len(rows) - at - 1)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=1, max_value=80).flatmap(
        lambda f: arrays(np.bool_, st.tuples(st.integers(1, 40), st.just(f)))
    )
)
def test_flag_combinations_rebuild_every_row(which: np.ndarray) -> None:
    """Given any boolean [rows, features] array (up to 64 features coded as integers, more the general way)
    When its distinct rows are found
    Then they are distinct, and indexing them by each row's index gives the array back."""
    combos, inverse = _combinations(which)

    assert len({c.tobytes() for c in combos}) == len(combos)
    np.testing.assert_array_equal(combos[inverse.reshape(-1)], which)
