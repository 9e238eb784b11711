"""Text -> float: exact values, and a specific reason (never the value) for each bad cell."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.features import convert_features, decimal_mark, decimal_mark_counts

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
        ("1,2,3", "non-numeric value in column 'a'"),
        ("0x10", "non-numeric value in column 'a'"),
        *[
            (marker, "missing value in column 'a' (a missing-value marker such as NA, N/A or null)")
            for marker in ("n/a", "N/A", " NA ", "null", "NULL", "None", "-", "?", "#N/A")
        ],
        ("N/A-ish", "non-numeric value in column 'a'"),
    ],
)
def test_each_bad_cell_gets_its_reason_without_its_value(cell: str, reason: str) -> None:
    out = convert_features(table([(cell, "1"), ("2", "3")]), FEATURES)
    assert out.ok.tolist() == [False, True]
    # the exact reason: it names the column and the kind of problem, and never carries the cell's text
    assert [(p.index, p.column, p.reason) for p in out.problems] == [(0, "a", reason)]


AMBIGUOUS = "ambiguous number in column 'a'"
THOUSANDS = "thousands separators in column 'a'"


@pytest.mark.parametrize(
    ("cell", "mark", "expected"),
    [
        # a separator that cannot be a thousands separator is a decimal mark, whatever the file's
        ("1,5", ".", 1.5),
        ("17,99", ".", 17.99),
        ("17,99", None, 17.99),
        ("0,123", ".", 0.123),  # nothing but 0 before it: not a digit group
        ("1234,567", ".", 1234.567),  # four digits before it
        (",5", ",", 0.5),
        ("1,5e3", None, 1500.0),
        ("17.99", ",", 17.99),
        ("0.5", ",", 0.5),
        ("2019", None, 2019.0),
        # one separator before exactly three digits: a decimal only when it is the file's decimal mark
        ("2,019", ",", 2.019),
        ("-2,019", ",", -2.019),
        ("2.019", ".", 2.019),
        ("2,019", ".", AMBIGUOUS),
        ("2,019", None, AMBIGUOUS),
        ("123,456", ".", AMBIGUOUS),
        ("2.019", ",", AMBIGUOUS),
        ("2.019", None, AMBIGUOUS),
        # digit grouping is never read
        ("1,234,567", ".", THOUSANDS),
        ("1,234,567", ",", THOUSANDS),
        ("1.234,5", ",", THOUSANDS),
        ("1,234.5", ".", THOUSANDS),
        ("1.234.567", None, THOUSANDS),
    ],
)
def test_decimal_and_thousands_separators_are_read_from_the_data_or_rejected(
    cell: str, mark: str | None, expected: float | str
) -> None:
    # Given a cell, in a file whose numbers show `mark` as their decimal mark (None: they show none, or both)
    out = convert_features(table([(cell, "1"), (" 7 ", "2")]), FEATURES, decimal_mark=mark)
    # Then it is its written value, or rejected with a specific reason: a value is never reinterpreted
    assert out.ok.tolist() == [not isinstance(expected, str), True]
    if isinstance(expected, str):
        assert [(p.index, p.column) for p in out.problems] == [(0, "a")]
        assert out.problems[0].reason.startswith(expected)
        assert cell not in out.problems[0].reason
    else:
        assert out.values.tolist() == [[expected, 1.0], [7.0, 2.0]]


@pytest.mark.parametrize(
    ("cells", "mark"),
    [
        (["17.99", "2019"], "."),
        (["17,99", "2019"], ","),
        (["2.019", "0,5"], ","),
        (["2,019", " 1.5 "], "."),
        (["17,99", "0.5"], None),  # as many of each
        (["17,99", "0.5", "0.25"], "."),  # one stray decimal comma does not undecide a file of decimal points
        (["2,019", "2.019", "7", "1,234,567", "x"], None),
        ([".5"], "."),
        (["5,"], ","),
        (["1.2e3"], "."),
    ],
)
def test_the_decimal_mark_is_the_one_most_unambiguous_numbers_show(cells: list[str], mark: str | None) -> None:
    # Given the cells of a file's first MiB / When its decimal mark is decided / Then it is the one most of its
    # unambiguous numbers use
    counts = decimal_mark_counts(pa.table({"a": cells, "b": ["1"] * len(cells)}), FEATURES)
    assert decimal_mark(*counts) == mark


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
