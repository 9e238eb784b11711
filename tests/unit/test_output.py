"""OutputLayout.frame: the staged rows' columns, names, order and values, under renames, drops and extras."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipeline.errors import UnusableFileError
from pipeline.features import convert_features
from pipeline.output import OutputLayout
from pipeline.settings import Settings
from scoring import ModelMetadata, Scores
from scoring.scorer import default_model_dir

BASE = {"SNOWFLAKE_SECRET_NAME": "sf/creds", "SNOWFLAKE_DATABASE": "db", "SNOWFLAKE_SCHEMA": "scoring"}


@pytest.fixture(scope="module")
def metadata() -> ModelMetadata:
    return ModelMetadata.load(default_model_dir() / "metadata.json")


def _inputs(metadata: ModelMetadata, n: int) -> tuple[np.ndarray, Scores, np.ndarray]:
    names = metadata.feature_names
    # Column-major, as convert_features makes it; each value says its own row and feature.
    values = np.asfortranarray(np.arange(n)[:, None] * 100.0 + np.arange(len(names))[None, :])
    classification = (np.arange(n) % 2).astype(np.int8)
    scores = Scores(
        malignant_probability=np.linspace(0, 1, n, dtype=np.float32),
        classification=classification,
    )
    return values, scores, np.arange(2, n + 2, dtype=np.int64)


def test_default_layout_stages_features_extras_scores_and_line_in_ddl_order(metadata: ModelMetadata) -> None:
    # Given the default settings and a header with one extra text column
    names = metadata.feature_names
    layout = OutputLayout(["sample_id", *names], metadata, Settings.from_env(BASE))
    values, scores, lines = _inputs(metadata, 4)
    text = {"sample_id": pd.arrays.ArrowExtensionArray(pa.array(["a", "b", "c", "d"]))}

    # When the rows are laid out
    frame = layout.frame(text, values, scores, lines)

    # Then the columns are what staged_ddl() declares, in its order, with the values given
    assert list(frame.columns) == layout.staged_column_names
    assert list(frame.columns[:3]) == ["MEAN_RADIUS", "MEAN_TEXTURE", "MEAN_PERIMETER"]
    assert frame["SAMPLE_ID"].tolist() == ["a", "b", "c", "d"]
    assert frame["MEAN_TEXTURE"].tolist() == [1.0, 101.0, 201.0, 301.0]
    assert frame["CONDITION"].astype(str).tolist() == ["benign", "malignant", "benign", "malignant"]
    assert frame["CLASSIFICATION"].tolist() == [0, 1, 0, 1]
    assert frame["SOURCE_LINE"].tolist() == [2, 3, 4, 5]
    # and the features are not copied: the frame's float block is the array that was handed in
    assert np.shares_memory(frame["MEAN_RADIUS"].to_numpy(), values)


def test_renamed_and_dropped_features_keep_the_right_values(metadata: ModelMetadata) -> None:
    # Given a renamed feature, a dropped feature, a dropped score column and no extra columns kept
    names = metadata.feature_names
    settings = Settings.from_env(
        BASE
        | {
            "COLUMN_RENAMES": f'{{"{names[2]}": "PERIMETER_MEAN"}}',
            "DROP_COLUMNS": "MEAN_TEXTURE, CONDITION",
            "KEEP_EXTRA_COLUMNS": "false",
        }
    )
    layout = OutputLayout(["sample_id", *names], metadata, settings)
    values, scores, lines = _inputs(metadata, 3)

    # When the rows are laid out
    frame = layout.frame({}, values, scores, lines)

    # Then the dropped columns are gone, the rename applies, and every kept feature holds its own values
    assert list(frame.columns) == layout.staged_column_names
    assert "MEAN_TEXTURE" not in frame.columns and "CONDITION" not in frame.columns
    assert "SAMPLE_ID" not in frame.columns
    assert frame.columns[1] == "PERIMETER_MEAN"
    assert frame["PERIMETER_MEAN"].tolist() == [2.0, 102.0, 202.0]
    assert frame["MEAN_AREA"].tolist() == [3.0, 103.0, 203.0]
    assert frame[names[-1].upper().replace(" ", "_")].tolist() == [29.0, 129.0, 229.0]


@pytest.mark.parametrize(
    ("extra", "env"),
    [
        ("group", {}),
        ("select", {}),
        ("order", {}),  # fakesnow accepts it as a column name; Snowflake does not
        ("current_date", {}),  # the same
        ("Try_Cast", {}),
        ("sample", {}),  # limited as a table name or alias in FROM; refused to be safe (DuckDB refuses it too)
        ("left", {}),
        ("site", {"COLUMN_RENAMES": '{"site": "WHERE"}'}),  # a rename onto a reserved word
    ],
    ids=["group", "select", "order", "current_date", "mixed-case", "sample", "left", "renamed-onto-reserved"],
)
def test_a_column_named_like_a_reserved_word_is_refused_with_the_fix(
    metadata: ModelMetadata, extra: str, env: dict[str, str]
) -> None:
    # Given a header whose extra column maps to a Snowflake reserved word
    # When the layout is built
    with pytest.raises(UnusableFileError) as raised:
        OutputLayout([*metadata.feature_names, extra], metadata, Settings.from_env(BASE | env))
    # Then the file is refused as bad_column_name; the reason names the column and the fix
    assert raised.value.reason == "bad_column_name"
    assert repr(extra) in str(raised.value) and "COLUMN_RENAMES" in str(raised.value)


@pytest.mark.parametrize(
    ("extra", "env", "column"),
    [
        ("account", {}, "ACCOUNT"),  # limited only in SHOW commands: a valid column name
        ("view", {}, "VIEW"),
        ("group", {"COLUMN_RENAMES": '{"group": "GROUP_"}'}, "GROUP_"),  # the fix the reason suggests
        ("group", {"DROP_COLUMNS": "GROUP"}, None),  # or dropped
    ],
    ids=["account", "view", "renamed", "dropped"],
)
def test_keywords_that_can_name_a_column_and_fixed_names_are_accepted(
    metadata: ModelMetadata, extra: str, env: dict[str, str], column: str | None
) -> None:
    # Given a header with such a column / When the layout is built
    layout = OutputLayout([*metadata.feature_names, extra], metadata, Settings.from_env(BASE | env))
    # Then it is kept under that name (or dropped)
    extras = [c.name for c in layout.data_columns if c.source == extra]
    assert extras == ([column] if column else [])


def test_upsert_rejects_rows_whose_merge_key_is_empty(metadata: ModelMetadata) -> None:
    # Given upsert on SAMPLE_ID, and a chunk whose rows 1, 2 and 4 have an empty, blank or missing key
    names = metadata.feature_names
    settings = Settings.from_env(BASE | {"LOAD_MODE": "upsert", "MERGE_KEYS": "SAMPLE_ID"})
    layout = OutputLayout(["sample_id", *names], metadata, settings)
    table = pa.table({"sample_id": pa.array(["a", "", "  ", "d", None]), **{n: pa.array(["1"] * 5) for n in names}})
    converted = convert_features(table, names)
    # When rows without a merge key are taken out
    checked = layout.reject_missing_merge_keys(table, converted)
    # Then exactly those rows are rejected, naming the column, and the others stay scoreable
    assert checked.ok.tolist() == [True, False, False, True, False]
    assert [(p.index, p.column) for p in checked.problems] == [(1, "sample_id"), (2, "sample_id"), (4, "sample_id")]
    assert all("missing merge key" in p.reason for p in checked.problems)
    assert checked.good_values.shape == (2, len(names))
    # and in append mode nothing is taken out
    append = OutputLayout(["sample_id", *names], metadata, Settings.from_env(BASE))
    assert append.reject_missing_merge_keys(table, converted) is converted


@pytest.mark.parametrize(
    ("flags", "drop", "expected"),
    [
        (
            pa.array([None, "MEAN_AREA", None, "AREA_ERROR,WORST_AREA"], pa.string()),
            "",
            [None, "MEAN_AREA", None, "AREA_ERROR,WORST_AREA"],
        ),
        (None, "", [None, None, None, None]),
        (pa.array([None, "MEAN_AREA", None, None], pa.string()), "OUT_OF_RANGE_FEATURES", None),
    ],
    ids=["flags", "no-flag", "dropped"],
)
def test_out_of_range_features_is_staged_after_the_scores(
    metadata: ModelMetadata, flags: pa.Array | None, drop: str, expected: list[str | None] | None
) -> None:
    # Given the rows' flags from the plausibility check (or none), and maybe DROP_COLUMNS=OUT_OF_RANGE_FEATURES
    layout = OutputLayout(metadata.feature_names, metadata, Settings.from_env(BASE | {"DROP_COLUMNS": drop}))
    values, scores, lines = _inputs(metadata, 4)

    # When the rows are laid out
    frame = layout.frame({}, values, scores, lines, flags)

    # Then OUT_OF_RANGE_FEATURES follows MALIGNANT_PROBABILITY, NULL where a row has no flag; or it is not staged
    assert list(frame.columns) == layout.staged_column_names
    if expected is None:
        assert "OUT_OF_RANGE_FEATURES" not in frame.columns
        return
    assert list(frame.columns[-3:]) == ["MALIGNANT_PROBABILITY", "OUT_OF_RANGE_FEATURES", "SOURCE_LINE"]
    assert [None if pd.isna(v) else v for v in frame["OUT_OF_RANGE_FEATURES"]] == expected
    assert ("OUT_OF_RANGE_FEATURES", "VARCHAR") in layout.ddl_columns()
