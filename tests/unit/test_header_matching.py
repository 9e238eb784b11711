"""Header matching (HEADER_MATCHING): which header column is which model feature, as the CSV reader sees it."""

from __future__ import annotations

import io

import pytest

from pipeline.csv_reader import CsvChunks
from pipeline.errors import ConfigurationError, UnusableFileError
from pipeline.settings import HeaderMatching, Settings

FEATURES = ["mean radius", "worst concave points"]
ROWS = "S1,17.99,0.2654\nS2,20.57,0.186\n"


def read(
    header: str,
    rows: str = ROWS,
    *,
    features: list[str] = FEATURES,
    matching: HeaderMatching = HeaderMatching.NORMALISED,
) -> tuple[CsvChunks, list[dict[str, str]]]:
    reader = CsvChunks(
        io.BytesIO((header + "\n" + rows).encode()),
        required=features,
        chunk_rows=100,
        max_uncompressed_bytes=10**9,
        header_matching=matching,
    )
    return reader, [row for chunk in reader for row in chunk.table.to_pylist()]


def refused(header: str, rows: str = ROWS, **kwargs: object) -> UnusableFileError:
    with pytest.raises(UnusableFileError) as err:
        read(header, rows, **kwargs)  # type: ignore[arg-type]
    return err.value


@pytest.mark.parametrize(
    ("radius", "concave"),
    [
        ("Mean Radius", "Worst Concave Points"),  # title case
        ("mean_radius", "worst_concave_points"),  # snake case
        ("MEAN_RADIUS", "WORST_CONCAVE_POINTS"),  # upper snake case: our own output table, exported
        ("MEAN RADIUS", "worst concave POINTS"),
        ("mean-radius", "worst-concave-points"),
        ("mean.radius", "worst.concave.points"),  # R's write.csv
        ("mean  radius", "worst   concave  points"),  # runs of spaces
        ("mean__radius", "worst _ concave - points"),  # runs of mixed separators
        ("_mean_radius_", "worst concave points_"),  # separators at either end
        (" Mean Radius ", "\u00a0worst\u00a0concave\u00a0points"),  # surrounding spaces, no-break spaces
    ],
)
def test_a_header_spelled_in_another_case_or_with_other_separators_matches_the_features(
    radius: str, concave: str
) -> None:
    # Given a header that spells the features in another case or with other separators, and an extra column
    # When it is read
    reader, rows = read(f"Sample_Id,{radius},{concave}")
    # Then each feature column carries the feature's own name, the extra keeps its own, and no value changes
    assert reader.columns == ["Sample_Id", "mean radius", "worst concave points"]
    assert rows == [
        {"Sample_Id": "S1", "mean radius": "17.99", "worst concave points": "0.2654"},
        {"Sample_Id": "S2", "mean radius": "20.57", "worst concave points": "0.186"},
    ]


def test_the_decimal_mark_of_a_renamed_header_is_decided_from_the_first_mebibyte() -> None:
    # Given a title-case ';' file whose first MiB holds two numbers with a decimal point and one with a comma,
    # the comma first, read in chunks of one record
    data = b"Sample_Id;Mean Radius;Worst Concave Points\nS1;17,99;1\nS2;1.5;2.5\n"
    reader = CsvChunks(io.BytesIO(data), required=FEATURES, chunk_rows=1, max_uncompressed_bytes=10**9)
    # When it is read
    list(reader)
    # Then the mark is the point, from the matched feature columns of the first MiB (as for an exact header),
    # not the comma of the first chunk alone
    assert reader.decimal_mark == "."


@pytest.mark.parametrize(
    ("header", "features", "quoted"),
    [
        ("id,mean radius,MEAN_RADIUS,worst concave points", FEATURES, ["'mean radius'", "'MEAN_RADIUS'"]),
        ("id,Mean Radius,mean_radius,worst concave points", FEATURES, ["'Mean Radius'", "'mean_radius'"]),
        ("id,mean radius,mean-radius,Mean.Radius,worst concave points", FEATURES, ["'mean-radius'", "'Mean.Radius'"]),
        ("id,MEAN RADIUS", ["mean radius", "Mean_Radius"], ["'MEAN RADIUS'", "'mean radius'", "'Mean_Radius'"]),
    ],
    ids=["exact-and-upper-snake", "neither-exact", "three-spellings", "one-column-two-features"],
)
def test_a_header_that_cannot_be_matched_one_to_one_is_ambiguous(
    header: str, features: list[str], quoted: list[str]
) -> None:
    # Given two header columns that match one feature, or one column that matches two features
    # When the file is read
    err = refused(header, ",".join(["S1"] + ["1"] * header.count(",")) + "\n", features=features)
    # Then it fails as ambiguous, naming the columns and the feature(s): no column is dropped or picked
    assert err.reason == "ambiguous_columns"
    assert all(name in str(err) for name in quoted), str(err)


def test_strict_matching_tells_two_features_apart_that_normalised_matching_cannot() -> None:
    # Given a model whose two features differ only in case, and a header with both spelled exactly
    features = ["mean radius", "Mean_Radius"]
    # When read with strict matching / Then each column is its own feature
    _, rows = read("id,Mean_Radius,mean radius", "S1,1,2\n", features=features, matching=HeaderMatching.STRICT)
    assert rows == [{"id": "S1", "Mean_Radius": "1", "mean radius": "2"}]
    # and with normalised matching the same header is refused rather than guessed
    assert refused("id,Mean_Radius,mean radius", "S1,1,2\n", features=features).reason == "ambiguous_columns"


@pytest.mark.parametrize(
    "header", ["Sample_Id,Mean Radius,Worst Concave Points", "id,MEAN_RADIUS,worst concave points"]
)
def test_strict_matching_refuses_other_spellings_and_names_them(header: str) -> None:
    # Given a header that differs from the features only in case or separators
    # When read with HEADER_MATCHING=strict
    err = refused(header, matching=HeaderMatching.STRICT)
    # Then the file fails as missing columns, and the reason says which header name differs from which feature
    # only in case or separators, and how to match them
    assert err.reason == "missing_columns"
    name = header.split(",")[1]
    assert f"{name!r} for 'mean radius'" in str(err), str(err)
    assert "differ from these only in case or separators" in str(err)
    assert "HEADER_MATCHING=strict" in str(err)


def test_a_missing_column_names_near_misses_but_never_a_data_cell() -> None:
    # Given a header whose 'MeanRadius' has no separator between its words, and a data row whose cells are words
    err = refused("id,MeanRadius,mean radius (mm),worst concave points", "Mean Radius,x,y,1\n")
    # Then the file fails as missing columns; the reason names 'MeanRadius' as differing only in separators,
    # and quotes neither a header name that is no near miss nor any cell of the data
    assert err.reason == "missing_columns"
    assert "'MeanRadius' for 'mean radius'" in str(err), str(err)
    assert "(mm)" not in str(err)
    assert "Mean Radius" not in str(err)


def test_header_matching_is_a_setting_normalised_by_default() -> None:
    # Given the required variables only, then with HEADER_MATCHING=strict, then with a value it does not know
    base = {"SNOWFLAKE_SECRET_NAME": "sf/creds", "SNOWFLAKE_DATABASE": "db", "SNOWFLAKE_SCHEMA": "scoring"}
    # Then the default is normalised, strict is read, and a bad value is an error naming the variable
    assert Settings.from_env(base).header_matching is HeaderMatching.NORMALISED
    assert Settings.from_env(base | {"HEADER_MATCHING": "strict"}).header_matching is HeaderMatching.STRICT
    with pytest.raises(ConfigurationError, match="HEADER_MATCHING"):
        Settings.from_env(base | {"HEADER_MATCHING": "loose"})
