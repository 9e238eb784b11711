"""Init warm-up: it runs the real convert -> score -> frame -> Parquet path for every valid configuration."""

from __future__ import annotations

import pytest

from pipeline.process import warm_up
from pipeline.settings import Settings
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
