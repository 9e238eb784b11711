"""Text -> float: exact values, and a specific reason (never the value) for each bad cell."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.features import convert_features

FEATURES = ["a", "b"]


def table(rows: list[tuple[str, str]]) -> pa.Table:
    return pa.table({"a": [r[0] for r in rows], "b": [r[1] for r in rows]})


def test_valid_text_parses_exactly() -> None:
    out = convert_features(table([("17.99", "1e-3"), (" -0.5 ", "+.25"), ("1E3", "0")]), FEATURES)
    assert out.ok.tolist() == [True, True, True]
    assert out.values.tolist() == [[17.99, 0.001], [-0.5, 0.25], [1000.0, 0.0]]
    assert out.problems == []


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("", "missing value in column 'a'"),
        ("abc", "non-numeric value in column 'a'"),
        ("NaN", "non-finite value (NaN or infinity) in column 'a'"),
        ("-inf", "non-finite value (NaN or infinity) in column 'a'"),
        ("1e400", "value out of range (beyond float32) in column 'a'"),
        ("1e39", "value out of range (beyond float32) in column 'a'"),
        ("1,5", "non-numeric value in column 'a'"),
        ("0x10", "non-numeric value in column 'a'"),
    ],
)
def test_each_bad_cell_gets_its_reason_without_its_value(cell: str, reason: str) -> None:
    out = convert_features(table([(cell, "1"), ("2", "3")]), FEATURES)
    assert out.ok.tolist() == [False, True]
    # the exact reason: it names the column and the kind of problem, and never carries the cell's text
    assert [(p.index, p.column, p.reason) for p in out.problems] == [(0, "a", reason)]


def test_decimal_commas_are_accepted_when_the_delimiter_is_not_a_comma() -> None:
    out = convert_features(table([("1,5", "2")]), FEATURES, decimal_comma=True)
    assert out.ok.tolist() == [True]
    assert out.values.tolist() == [[1.5, 2.0]]


def test_blank_rows_are_skipped_not_rejected() -> None:
    out = convert_features(table([("", ""), ("1", "2")]), FEATURES)
    assert out.blank.tolist() == [True, False]
    assert out.ok.tolist() == [False, True]
    assert out.problems == []
    assert out.model_input().shape == (1, 2)


def test_good_values_keep_only_the_scoreable_rows_in_order() -> None:
    # Given a chunk whose middle row has a bad cell
    out = convert_features(table([("1", "2"), ("x", "4"), ("5", "6")]), FEATURES)
    # When the good rows are taken
    good = out.good_values
    # Then they are the first and last rows, column-major (what the output frame takes without copying),
    # and the model gets the same rows as row-major float32
    assert good.tolist() == [[1.0, 2.0], [5.0, 6.0]]
    assert good.flags["F_CONTIGUOUS"]
    batch = out.model_input()
    assert batch.flags["C_CONTIGUOUS"] and batch.dtype.name == "float32"
    assert batch.tolist() == [[1.0, 2.0], [5.0, 6.0]]
