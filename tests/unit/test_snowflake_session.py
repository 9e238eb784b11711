"""The session the Snowflake adapter asks for at login (adapters/snowflake/session.py), without connecting."""

from __future__ import annotations

from typing import Any, NoReturn

import pytest

from adapters.secrets import SnowflakeCredentials
from adapters.snowflake import SnowflakeWarehouse
from pipeline.errors import PipelineError
from pipeline.settings import Settings
from tests.sql_trace import BASE, RecordingConnection, logged_in


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


@pytest.mark.parametrize("left", [None, [900.0]], ids=["no-clock", "lambda-clock"])
def test_no_client_timer_cancels_a_statement(left: list[float] | None) -> None:
    # Given the adapter, with or without the invocation's clock
    asked, conn, warehouse = logged_in(BASE, left)
    # When it logs in and runs a batch's statements
    with warehouse.batch() as batch:
        batch.claim([], "m")
    # Then the connector gets no network_timeout (it arms a client-side cancel of every statement after it: error
    # 000604 instead of Snowflake's own lock or statement timeout) and no per-statement ``timeout`` either
    [kwargs] = asked
    assert kwargs.get("network_timeout") is None
    assert conn.sent and all("timeout" not in sent.kwargs for sent in conn.sent)


def test_the_server_times_statements_out_by_the_invocations_remaining_time() -> None:
    # Given an invocation with 300 s left when the adapter logs in
    left = [300.0]
    asked, conn, warehouse = logged_in(BASE, left)
    with warehouse.batch():
        pass
    # Then the session's STATEMENT_TIMEOUT_IN_SECONDS ends a statement before the invocation does (with time to
    # report), and is longer than LOCK_TIMEOUT, so a lock wait ends as Snowflake's lock error
    session = asked[0]["session_parameters"]
    assert session["LOCK_TIMEOUT"] < session["STATEMENT_TIMEOUT_IN_SECONDS"] < 300
    # When a later invocation of the warm container has 200 s left
    left[0] = 200.0
    with warehouse.batch() as batch:
        batch.ensure_target([("A", "FLOAT")])
    # Then each statement carries its own server-side limit, from the time left now (no round trip to set it)
    limits = [sent.kwargs["_statement_params"]["STATEMENT_TIMEOUT_IN_SECONDS"] for sent in conn.sent[-3:]]
    assert all(150 < limit < 200 for limit in limits), limits


def test_without_the_invocations_clock_no_statement_timeout_is_set() -> None:
    asked, conn, warehouse = logged_in(BASE, None)
    with warehouse.batch():
        pass
    assert "STATEMENT_TIMEOUT_IN_SECONDS" not in asked[0]["session_parameters"]
    assert all("_statement_params" not in sent.kwargs for sent in conn.sent)


def test_a_warm_session_is_ended_between_batches_before_write_pandas_stages_pile_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pandas as pd

    import adapters.snowflake.session as adapter

    # Given write_pandas (a temporary stage per call, never dropped but by the session's end) and a limit of 3
    monkeypatch.setattr(adapter, "MAX_SESSION_STAGES", 3)
    asked: list[dict[str, Any]] = []

    def connect(**kwargs: Any) -> RecordingConnection:
        asked.append(kwargs)
        return RecordingConnection()

    def write_pandas(conn: Any, frame: pd.DataFrame, **kwargs: Any) -> tuple[bool, int, int, list[Any]]:
        return True, 1, len(frame), []

    settings = Settings.from_env(BASE | {"CHUNK_ROWS": "1"})
    credentials = SnowflakeCredentials(user="u", password="p")
    warehouse = SnowflakeWarehouse(settings, lambda: credentials, connect=connect, write_pandas=write_pandas)
    # When seven batches each make one staging write
    for _ in range(7):
        with warehouse.batch() as batch:
            batch.stage(batch.next_number(), pd.DataFrame({"A": [1.0]}), [("A", "FLOAT")])
    # Then the session was ended after every third and a new one logged in: three sessions, none with more than 3
    assert len(asked) == 3
