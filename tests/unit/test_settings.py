"""Settings: one validated object from the environment; a bad variable is named in the error."""

from __future__ import annotations

import pytest

from pipeline.errors import ConfigurationError
from pipeline.settings import LoadMode, OutOfRange, Settings

BASE = {"SNOWFLAKE_SECRET_NAME": "sf/creds", "SNOWFLAKE_DATABASE": "db", "SNOWFLAKE_SCHEMA": "scoring"}


def test_minimal_environment_gives_documented_defaults() -> None:
    # Given only the required variables / When parsed
    settings = Settings.from_env(BASE)
    # Then identifiers are upper-cased and the defaults apply
    assert (settings.database, settings.schema_name) == ("DB", "SCORING")
    assert settings.target_table == "TUMOUR_SCORES"
    assert settings.load_mode is LoadMode.APPEND
    assert settings.keep_extra_columns is True
    assert settings.decision_threshold is None


def test_lists_maps_and_flags_are_parsed() -> None:
    settings = Settings.from_env(
        BASE
        | {
            "LOAD_MODE": "upsert",
            "MERGE_KEYS": "sample_id, site",
            "COLUMN_RENAMES": '{"mean radius": "RADIUS_MEAN"}',
            "DROP_COLUMNS": "NOTES",
            "KEEP_EXTRA_COLUMNS": "false",
            "DECISION_THRESHOLD": "0.3",
        }
    )
    assert settings.merge_keys == ["SAMPLE_ID", "SITE"]
    assert settings.column_renames == {"mean radius": "RADIUS_MEAN"}
    assert settings.drop_columns == ["NOTES"]
    assert settings.keep_extra_columns is False
    assert settings.decision_threshold == 0.3


@pytest.mark.parametrize(
    ("override", "variable"),
    [
        ({"SNOWFLAKE_SECRET_NAME": ""}, "SNOWFLAKE_SECRET_NAME"),
        ({"SNOWFLAKE_DATABASE": "db; DROP TABLE x"}, "SNOWFLAKE_DATABASE"),
        ({"TARGET_TABLE": "scores-2026"}, "TARGET_TABLE"),
        ({"LOAD_MODE": "replace"}, "LOAD_MODE"),
        ({"DECISION_THRESHOLD": "1.5"}, "DECISION_THRESHOLD"),
        ({"COLUMN_RENAMES": "{not json"}, "COLUMN_RENAMES"),
        ({"COLUMN_RENAMES": '{"a": "bad name"}'}, "COLUMN_RENAMES"),
        ({"MERGE_KEYS": "ok, 1bad"}, "MERGE_KEYS"),
        ({"KEEP_EXTRA_COLUMNS": "maybe"}, "KEEP_EXTRA_COLUMNS"),
        ({"CHUNK_ROWS": "0"}, "CHUNK_ROWS"),
        ({"SNOWFLAKE_PORT": "http"}, "SNOWFLAKE_PORT"),
        ({"OUT_OF_RANGE": "warn"}, "OUT_OF_RANGE"),
        ({"OUT_OF_RANGE_MARGIN": "-0.1"}, "OUT_OF_RANGE_MARGIN"),
        ({"OUT_OF_RANGE_MARGIN": "inf"}, "OUT_OF_RANGE_MARGIN"),
        ({"OUT_OF_RANGE_MARGIN": "nan"}, "OUT_OF_RANGE_MARGIN"),
        ({"OUT_OF_RANGE_MARGIN": "half"}, "OUT_OF_RANGE_MARGIN"),
    ],
)
def test_a_bad_variable_is_named_in_the_error(override: dict[str, str], variable: str) -> None:
    # Given one bad variable / When parsed / Then the error names it
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_env(BASE | override)


@pytest.mark.parametrize(
    ("environment", "mode", "margin"),
    [
        ({}, OutOfRange.FLAG, 0.5),
        ({"OUT_OF_RANGE": "reject", "OUT_OF_RANGE_MARGIN": "0"}, OutOfRange.REJECT, 0.0),
        ({"OUT_OF_RANGE": "off", "OUT_OF_RANGE_MARGIN": "2.5"}, OutOfRange.OFF, 2.5),
    ],
    ids=["defaults", "reject", "off"],
)
def test_out_of_range_settings(environment: dict[str, str], mode: OutOfRange, margin: float) -> None:
    # Given OUT_OF_RANGE / OUT_OF_RANGE_MARGIN set, or not / When parsed / Then flag and 0.5 are the defaults
    settings = Settings.from_env(BASE | environment)
    assert (settings.out_of_range, settings.out_of_range_margin) == (mode, margin)


def test_upsert_without_keys_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="MERGE_KEYS"):
        Settings.from_env(BASE | {"LOAD_MODE": "upsert"})


def test_tables_must_differ() -> None:
    with pytest.raises(ConfigurationError, match="four different tables"):
        Settings.from_env(BASE | {"TARGET_TABLE": "T", "LEDGER_TABLE": "t"})
