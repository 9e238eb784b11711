"""Upsert: a merge key written as a missing-value marker (R's `NA`, `N/A`, `null`, `-`, `?` ...) is no key.

Such a row would merge with every other row carrying the same marker (two patients become one), and a later
file's marker row would delete an earlier file's. The markers are the ones the CSV reader already treats as a
missing value (pipeline.csv_reader), so the two never disagree.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.features import convert_features
from pipeline.output import OutputLayout
from pipeline.settings import Settings
from scoring import ModelMetadata
from scoring.scorer import default_model_dir

BASE = {"SNOWFLAKE_SECRET_NAME": "sf/creds", "SNOWFLAKE_DATABASE": "db", "SNOWFLAKE_SCHEMA": "scoring"}
UPSERT = BASE | {"LOAD_MODE": "upsert", "MERGE_KEYS": "SAMPLE_ID"}


@pytest.fixture(scope="module")
def metadata() -> ModelMetadata:
    return ModelMetadata.load(default_model_dir() / "metadata.json")


def _checked(metadata: ModelMetadata, keys: list[str | None], env: dict[str, str] = UPSERT) -> tuple[list[bool], list]:
    names = metadata.feature_names
    layout = OutputLayout(["sample_id", *names], metadata, Settings.from_env(env))
    table = pa.table({"sample_id": pa.array(keys, pa.string()), **{n: pa.array(["1"] * len(keys)) for n in names}})
    checked = layout.reject_missing_merge_keys(table, convert_features(table, names))
    return checked.ok.tolist(), checked.problems


@pytest.mark.parametrize(
    "marker",
    ["NA", "na", "N/A", "n/a", "null", "NULL", "Null", "-", "?", "NaN", "None", "#N/A", " NA ", "\tnull "],
)
def test_a_missing_value_marker_as_merge_key_is_rejected_naming_the_column(
    metadata: ModelMetadata, marker: str
) -> None:
    # Given upsert on SAMPLE_ID, and a chunk whose second row's key is a missing-value marker (any case, padded)
    # When rows without a merge key are taken out
    ok, problems = _checked(metadata, ["S-1", marker, "S-3"])
    # Then that row is rejected with the empty-key rule's reason, naming the column, and never quoting the cell
    assert ok == [True, False, True]
    [problem] = problems
    assert (problem.index, problem.column) == (1, "sample_id")
    assert problem.reason.startswith("missing merge key: column 'sample_id' is empty or a missing-value marker")


@pytest.mark.parametrize(
    "key",
    ["NA-17", "NAT", "N/A1", "nil", "0", "--", "??", "n.a.", "S-NA", "A"],
    ids=lambda k: repr(k),
)
def test_keys_that_only_contain_or_resemble_a_marker_still_merge(metadata: ModelMetadata, key: str) -> None:
    # Given upsert on SAMPLE_ID, and a key that is a real identifier, not a marker
    # When rows without a merge key are taken out
    ok, problems = _checked(metadata, [key])
    # Then it stays
    assert ok == [True] and problems == []


def test_append_mode_keeps_marker_keys_as_text(metadata: ModelMetadata) -> None:
    # Given append mode (no merge): a SAMPLE_ID of NA is just text
    # When the rows are checked
    ok, problems = _checked(metadata, ["NA", "null"], env=BASE)
    # Then nothing is taken out
    assert ok == [True, True] and problems == []
