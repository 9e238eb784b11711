"""The session the Snowflake adapter asks for at login (adapters/snowflake.py), without connecting."""

from __future__ import annotations

from typing import Any, NoReturn

import pytest

from adapters.secrets import SnowflakeCredentials
from adapters.snowflake import SnowflakeWarehouse
from pipeline.errors import PipelineError
from pipeline.settings import Settings

BASE = {"SNOWFLAKE_SECRET_NAME": "s", "SNOWFLAKE_DATABASE": "D", "SNOWFLAKE_SCHEMA": "S", "SNOWFLAKE_ACCOUNT": "a"}


def login_parameters(environ: dict[str, str]) -> dict[str, Any]:
    """The session parameters of the adapter's login with these settings (the login itself is refused)."""
    asked: list[dict[str, Any]] = []

    def connect(**kwargs: Any) -> NoReturn:
        asked.append(kwargs)
        raise ConnectionError("refused by the test")

    credentials = SnowflakeCredentials(user="u", password="p")
    warehouse = SnowflakeWarehouse(Settings.from_env(environ), lambda: credentials, connect=connect)
    with pytest.raises(PipelineError), warehouse.batch():
        pass
    [kwargs] = asked
    return dict(kwargs["session_parameters"])


def test_the_session_waits_for_a_lock_as_long_as_snowflake_lock_timeout_says() -> None:
    # Given the default settings, and SNOWFLAKE_LOCK_TIMEOUT=45
    # When each logs in
    # Then the session's LOCK_TIMEOUT is 120 s, and 45 s
    assert login_parameters(BASE)["LOCK_TIMEOUT"] == 120
    assert login_parameters(BASE | {"SNOWFLAKE_LOCK_TIMEOUT": "45"})["LOCK_TIMEOUT"] == 45


def test_a_statement_whose_function_has_gone_is_aborted_rather_than_left_running() -> None:
    # Given the default settings / When the adapter logs in
    # Then the session aborts a detached statement (a Lambda timeout cut the connection) instead of running it on
    assert login_parameters(BASE)["ABORT_DETACHED_QUERY"] is True
