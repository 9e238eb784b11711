"""Init warm-up: it runs the real convert -> score -> frame -> Parquet path for every valid configuration."""

from __future__ import annotations

import pytest

from pipeline.settings import Settings
from pipeline.warm_up import warm_up
from scoring import Scorer

BASE = {"SNOWFLAKE_SECRET_NAME": "sf/creds", "SNOWFLAKE_DATABASE": "db", "SNOWFLAKE_SCHEMA": "scoring"}


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"LOAD_MODE": "upsert", "MERGE_KEYS": "SAMPLE_ID"},  # a key that only real files have, not the warm-up row
        {"DROP_COLUMNS": "MEAN_TEXTURE, CONDITION", "KEEP_EXTRA_COLUMNS": "false"},
    ],
    ids=["append", "upsert-on-sample-id", "drops"],
)
def test_warm_up_completes_for_the_configuration(overrides: dict[str, str]) -> None:
    # Given a valid configuration / When the warm-up runs (Pipeline ignores its errors, so call it directly)
    # Then it gets through every step instead of stopping at the first the synthetic row cannot satisfy
    warm_up(Scorer.load(), Settings.from_env(BASE | overrides))


def test_warm_up_writes_the_frame_in_the_warehouse_staging_format_without_connecting() -> None:
    # Given the Snowflake warehouse adapter, whose connection would fail if it were opened
    from adapters.snowflake import SnowflakeWarehouse

    settings = Settings.from_env(BASE)

    def no_connection(**_: object) -> None:
        raise AssertionError("warm-up connected to Snowflake")

    warehouse = SnowflakeWarehouse(settings, lambda: None, connect=no_connection)
    # When the warm-up runs with it
    frame = warm_up(Scorer.load(), settings, warehouse)
    # Then the synthetic row went through the whole path, Parquet staging format included, locally
    assert len(frame) == 1 and frame["SOURCE_LINE"].tolist() == [2]
