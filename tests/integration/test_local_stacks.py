"""Two emulated Snowflakes in one process (the test session's stack and a test's own) keep apart (tools/)."""

from __future__ import annotations

from tools.emulated.local_stack import _fakesnow_server


def _rows(port: int, sql: str) -> list[tuple[object, ...]]:
    import snowflake.connector

    conn = snowflake.connector.connect(
        user="fake", password="snow", account="fakesnow", host="127.0.0.1", port=port, protocol="http",
        database="TUMOURS", schema="SCORING", login_timeout=10,
        session_parameters={"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
    )  # fmt: skip
    try:
        cur = conn.cursor()
        cur.execute("CREATE DATABASE IF NOT EXISTS TUMOURS")
        cur.execute("CREATE SCHEMA IF NOT EXISTS TUMOURS.SCORING")
        return list(cur.execute(sql).fetchall())
    finally:
        conn.close()


def test_a_second_emulated_snowflake_in_the_process_leaves_the_first_serving_its_own_data() -> None:
    # Given an emulated Snowflake serving a table (the test session's stack)
    with _fakesnow_server(None) as first:
        _rows(first, "CREATE TABLE TUMOURS.SCORING.FIRST_ONLY AS SELECT 1 AS N")
        # When a second one starts in the same process (a test's own stack), is used, and stops
        with _fakesnow_server(None) as second:
            _rows(second, "CREATE TABLE TUMOURS.SCORING.SECOND_ONLY AS SELECT 2 AS N")
            # Then while both run, each login sees its own server's data only
            assert _rows(
                first, "SELECT COUNT(*) FROM TUMOURS.INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = 'SECOND_ONLY'"
            ) == [(0,)]
            assert _rows(
                second, "SELECT COUNT(*) FROM TUMOURS.INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = 'FIRST_ONLY'"
            ) == [(0,)]
        # And after the second stopped, the first still logs in and still has its table
        assert _rows(first, "SELECT N FROM TUMOURS.SCORING.FIRST_ONLY") == [(1,)]
