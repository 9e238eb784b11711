"""OutputLayout.frame: the staged rows' columns, names, order and values, under renames, drops and extras."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

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
        label=np.where(classification == 1, "malignant", "benign").astype(object),
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
