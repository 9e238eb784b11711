"""Faults injected at every step of a load, at the library boundaries the function talks through.

Each retriable fault: the invocation raises (so Lambda retries), no partial row is visible in any table, and
re-delivering the same event to the same warm container ends in exactly one load. Each permanent fault: the
object is recorded as FAILED with its reason, nothing else is written, and the invocation does not raise.
Faults are injected with monkeypatch at botocore / urllib3 / Powertools / snowflake-connector level, never
through hooks in the function's code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from snowflake.connector import errors as sf
from urllib3.exceptions import ProtocolError

from pipeline.errors import (
    LoadConflictError,
    RetriableError,
    SecretUnavailableError,
    SourceUnavailableError,
    WarehouseUnavailableError,
)
from tests.hardening.conftest import Warehouse
from tests.ledger_invariant import assert_summary_matches_ledger

KEY = "incoming/faults/export.csv"
ROWS = 250
BAD_LINES = (7, 120)  # one non-numeric cell, one short row: the rejects table is part of every load
CHUNK_ROWS = "60"  # several staging writes per file, so a fault can land between two of them


@pytest.fixture
def export(make_csv: Callable[..., bytes]) -> bytes:
    def spoil(lines: list[str]) -> list[str]:
        cells = lines[BAD_LINES[0] - 1].split(",")
        cells[3] = "n/a"
        lines[BAD_LINES[0] - 1] = ",".join(cells)
        lines[BAD_LINES[1] - 1] = ",".join(lines[BAD_LINES[1] - 1].split(",")[:5])
        return lines

    return make_csv(ROWS, spoil)


@pytest.fixture
def container(container: Any, harness: Any) -> Any:
    """The warm container of tests/hardening/conftest.py, checking after every delivery that returns that the
    ledger's counts equal the rows each finished load put in the tables (tests/ledger_invariant.py)."""

    def start(**env: str) -> Any:
        deliver = container(**env)

        def deliver_and_check(event: dict[str, Any]) -> dict[str, Any]:
            summary: dict[str, Any] = deliver(event)
            assert_summary_matches_ledger(harness.query, harness.tables, summary)
            return summary

        return deliver_and_check

    return start


# --- the injectors -----------------------------------------------------------------------------------------
class Once:
    """Fires ``times`` times, then lets everything through (the fault went away)."""

    def __init__(self, times: int = 1) -> None:
        self.left = times

    def fire(self) -> bool:
        if self.left > 0:
            self.left -= 1
            return True
        return False


def s3_get_raises(monkeypatch: pytest.MonkeyPatch, error: Exception) -> Once:
    from botocore.client import BaseClient

    once = Once()
    original = BaseClient._make_api_call

    def call(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if operation == "GetObject" and once.fire():
            raise error
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", call)
    return once


def s3_body_breaks(monkeypatch: pytest.MonkeyPatch, *, after_bytes: int, how: str) -> Once:
    """The GET succeeds; its body then drops the connection (urllib3 ProtocolError) or ends early."""
    from botocore.client import BaseClient

    once = Once()
    original = BaseClient._make_api_call

    class Breaking:
        def __init__(self, raw: Any) -> None:
            self._raw = raw
            self._sent = 0

        def read(self, amt: int | None = None) -> bytes:
            if self._sent >= after_bytes:
                if how == "drop":
                    raise ProtocolError("Connection broken: ConnectionResetError(104, 'Connection reset by peer')")
                return b""  # a clean but early EOF: botocore checks Content-Length
            data = self._raw.read(min(amt or after_bytes, after_bytes - self._sent))
            self._sent += len(data)
            return bytes(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._raw, name)

    def call(self: Any, operation: str, params: dict[str, Any]) -> Any:
        response = original(self, operation, params)
        if operation == "GetObject" and once.fire():
            body = response["Body"]
            body._raw_stream = Breaking(body._raw_stream)
        return response

    monkeypatch.setattr(BaseClient, "_make_api_call", call)
    return once


def secrets_unreachable(monkeypatch: pytest.MonkeyPatch) -> Once:
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.secrets import SecretsProvider

    parameters.clear_caches()  # a cached secret would hide the outage
    once = Once()
    original = SecretsProvider._get

    def get(self: Any, name: str, **kwargs: Any) -> Any:
        if once.fire():
            raise EndpointConnectionError(endpoint_url="https://secretsmanager.us-east-1.amazonaws.com")
        return original(self, name, **kwargs)

    monkeypatch.setattr(SecretsProvider, "_get", get)
    return once


def snowflake_connect_fails(monkeypatch: pytest.MonkeyPatch) -> Once:
    import snowflake.connector

    once = Once()
    original = snowflake.connector.connect

    def connect(**kwargs: Any) -> Any:
        if once.fire():
            raise sf.OperationalError(msg="Could not connect to Snowflake backend after 1 attempt(s)", errno=250001)
        return original(**kwargs)

    monkeypatch.setattr(snowflake.connector, "connect", connect)
    return once


def statement_fails(
    monkeypatch: pytest.MonkeyPatch, pattern: str, *, after_running: bool, skip: int = 0, error: Exception | None = None
) -> Once:
    """The ``skip+1``-th statement matching ``pattern`` fails (after it ran, when ``after_running``: the reply
    was lost, as when the connection drops mid-statement)."""
    from snowflake.connector.cursor import SnowflakeCursor

    once = Once()
    seen = [0]
    original = SnowflakeCursor.execute
    matcher = re.compile(pattern, re.IGNORECASE | re.DOTALL)

    def execute(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        if matcher.search(command):
            seen[0] += 1
            if seen[0] > skip and once.fire():
                if after_running:
                    original(self, command, *args, **kwargs)
                raise error or sf.OperationalError(msg="injected: connection reset by peer", errno=250003)
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(SnowflakeCursor, "execute", execute)
    return once


def commit_fails(monkeypatch: pytest.MonkeyPatch) -> Once:
    from snowflake.connector.connection import SnowflakeConnection

    once = Once()
    original = SnowflakeConnection.commit

    def commit(self: Any) -> Any:
        if once.fire():
            raise sf.OperationalError(msg="injected: connection reset before COMMIT reached Snowflake", errno=250003)
        return original(self)

    monkeypatch.setattr(SnowflakeConnection, "commit", commit)
    return once


def crash_while_staging(monkeypatch: pytest.MonkeyPatch) -> Once:
    """The process dies during the second staging write (Lambda timeout or out of memory): no cleanup runs."""

    class Crash(BaseException):
        pass

    return statement_fails(monkeypatch, r"^COPY INTO", after_running=False, skip=1, error=Crash("killed"))


# --- retriable faults ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fault:
    name: str
    inject: Callable[[pytest.MonkeyPatch, dict[str, str]], Once]
    raises: type[BaseException]
    xfail: str | None = None  # a known bug: the test is a strict xfail until it is fixed


RETRIABLE = [
    Fault(
        "s3-get-throttled",
        lambda mp, t: s3_get_raises(
            mp, ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."}}, "GetObject")
        ),
        SourceUnavailableError,
    ),
    Fault(
        "s3-get-unreachable",
        lambda mp, t: s3_get_raises(mp, EndpointConnectionError(endpoint_url="https://s3.amazonaws.com")),
        SourceUnavailableError,
    ),
    Fault(
        "s3-connection-dropped-mid-stream",
        lambda mp, t: s3_body_breaks(mp, after_bytes=20_000, how="drop"),
        SourceUnavailableError,
    ),
    Fault(
        "s3-stream-ends-early",
        lambda mp, t: s3_body_breaks(mp, after_bytes=20_000, how="short"),
        SourceUnavailableError,
    ),
    Fault("secrets-manager-unreachable", lambda mp, t: secrets_unreachable(mp), SecretUnavailableError),
    Fault("snowflake-connect-fails", lambda mp, t: snowflake_connect_fails(mp), WarehouseUnavailableError),
    Fault(
        "ledger-claim-fails",
        lambda mp, t: statement_fails(mp, rf"^INSERT INTO \S+\.{t['ledger']}\b", after_running=False),
        WarehouseUnavailableError,
    ),
    Fault(
        "staging-write-fails",
        lambda mp, t: statement_fails(mp, r"^COPY INTO", after_running=False, skip=1),
        WarehouseUnavailableError,
    ),
    Fault(
        "ledger-lock-times-out",
        lambda mp, t: statement_fails(
            mp,
            r"SET LOCK_TOKEN",
            after_running=False,
            error=sf.ProgrammingError(msg="Statement waited too long for a lock on the ledger", errno=625),
        ),
        LoadConflictError,
    ),
    Fault(
        "publish-rows-fails-after-insert",
        lambda mp, t: statement_fails(mp, rf"^INSERT INTO \S+\.{t['target']}\b", after_running=True),
        WarehouseUnavailableError,
    ),
    Fault(
        "publish-rejects-fails-after-insert",
        lambda mp, t: statement_fails(mp, rf"^INSERT INTO \S+\.{t['rejects']}\b", after_running=True),
        WarehouseUnavailableError,
    ),
    Fault(
        "ledger-loaded-write-fails",
        lambda mp, t: statement_fails(
            mp, rf"^UPDATE \S+\.{t['ledger']}\b (?:AS l )?SET STATUS = v\.STATUS", after_running=True
        ),
        WarehouseUnavailableError,
    ),
    Fault(
        "commit-fails",
        lambda mp, t: commit_fails(mp),
        WarehouseUnavailableError,
    ),
    Fault("process-killed-mid-staging", lambda mp, t: crash_while_staging(mp), BaseException),
]


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(f, id=f.name, marks=[pytest.mark.xfail(strict=True, reason=f.xfail)] if f.xfail else [])
        for f in RETRIABLE
    ],
)
def test_a_retriable_fault_raises_leaves_nothing_and_the_retry_loads_once(
    harness: Any, warehouse: Warehouse, container: Any, monkeypatch: pytest.MonkeyPatch, export: bytes, fault: Fault
) -> None:
    # Given a file with good and bad rows, a warm container, and a fault at one step of the load
    event = harness.put(KEY, export)
    deliver = container(CHUNK_ROWS=CHUNK_ROWS)
    injected = fault.inject(monkeypatch, harness.tables)

    # When the event is delivered, the invocation raises so that Lambda retries
    with pytest.raises(fault.raises) as raised:
        deliver(event)
    assert injected.left == 0, "the fault was never reached"
    if isinstance(raised.value, RetriableError):
        assert raised.value.retriable
    # and nothing of the file is visible: no rows, no rejects, no LOADED ledger row
    assert warehouse.count("target") == 0 and warehouse.count("rejects") == 0
    # (the claim's STARTED row may be there: it records the attempt, and says nothing was published)
    assert [r[0] for r in warehouse.ledger()] in ([], ["STARTED"])

    # When Lambda retries the same event on the same container (the fault has passed)
    summary = deliver(event)
    # Then the file is loaded exactly once
    assert summary["objects"][0]["status"] == "loaded"
    good = ROWS - len(BAD_LINES)
    assert (summary["rows_loaded"], summary["rows_rejected"]) == (good, len(BAD_LINES))
    assert warehouse.count("target") == good and warehouse.count("rejects") == len(BAD_LINES)
    assert warehouse.query("SELECT COUNT(DISTINCT SOURCE_LINE) FROM {target}") == [(good,)]
    assert [r[:3] for r in warehouse.ledger() if r[0] != "STARTED"] == [("LOADED", good, len(BAD_LINES))]
    # and a further delivery is a duplicate that changes nothing
    before = warehouse.snapshot()
    assert deliver(event)["objects"][0]["status"] == "duplicate"
    assert warehouse.snapshot() == before


# --- permanent faults ------------------------------------------------------------------------------------------
def test_an_object_deleted_before_the_read_is_recorded_and_not_retried(
    harness: Any, warehouse: Warehouse, container: Any, export: bytes
) -> None:
    # Given an event for an object that was deleted before the function read it
    event = harness.put(KEY, export)
    harness.stack.client("s3").delete_object(Bucket=harness.bucket, Key=KEY)
    deliver = container()
    # When it is delivered (twice)
    first, again = deliver(event), deliver(event)
    # Then it does not raise, and the ledger says why nothing was loaded
    assert first["objects"][0]["status"] == "failed" and first["objects"][0]["reason_code"] == "object_not_found"
    assert again["objects"][0]["status"] == "duplicate"
    assert [r[:4] for r in warehouse.ledger()] == [("FAILED", 0, 0, "object_not_found")]
    assert warehouse.count("target") == 0


def test_an_object_overwritten_before_the_read_is_recorded_as_superseded(
    harness: Any, warehouse: Warehouse, container: Any, export: bytes, make_csv: Callable[..., bytes]
) -> None:
    # Given an event for version 1 of a key that was overwritten by version 2 before the read
    event_v1 = harness.put(KEY, export)
    event_v2 = harness.put(KEY, make_csv(10))
    deliver = container()
    # When the old event is delivered
    first = deliver(event_v1)
    # Then version 1 is recorded as superseded (not loaded as version 2), and version 2's event loads version 2
    assert first["objects"][0]["status"] == "failed"
    assert first["objects"][0]["reason_code"] == "object_superseded"
    second = deliver(event_v2)
    assert second["objects"][0]["status"] == "loaded" and second["rows_loaded"] == 10
    assert warehouse.count("target") == 10


def test_snowflake_refusing_the_staging_write_is_recorded_and_not_retried(
    harness: Any, warehouse: Warehouse, container: Any, monkeypatch: pytest.MonkeyPatch, export: bytes
) -> None:
    # Given Snowflake refusing the staged data for good (a permission or type error, not an outage)
    event = harness.put(KEY, export)
    deliver = container(CHUNK_ROWS=CHUNK_ROWS)
    statement_fails(
        monkeypatch,
        r"^COPY INTO",
        after_running=False,
        skip=1,
        error=sf.ProgrammingError(msg="Insufficient privileges to operate on table", errno=3001),
    )
    # When the event is delivered
    summary = deliver(event)
    # Then the invocation does not raise; the ledger says FAILED with the reason; no row is published
    result = summary["objects"][0]
    assert result["status"] == "failed" and result["reason_code"] == "snowflake_rejected"
    assert [r[:4] for r in warehouse.ledger()] == [("FAILED", 0, 0, "snowflake_rejected")]
    assert warehouse.count("target") == 0 and warehouse.count("rejects") == 0
    assert deliver(event)["objects"][0]["status"] == "duplicate"


# --- a cached connection whose session died -------------------------------------------------------------------
DEAD_SESSIONS = [
    pytest.param(
        sf.ProgrammingError(msg="Session no longer exists. New login required.", errno=390111, sqlstate="08001"),
        False,
        id="session-gone",
    ),
    pytest.param(
        sf.ProgrammingError(msg="Authentication token has expired.", errno=390114, sqlstate="08001"),
        True,
        id="token-expired-and-flagged",
    ),
    pytest.param(
        sf.OperationalError(msg="injected: connection reset by peer", errno=250003), False, id="network-dropped"
    ),
]


@pytest.mark.parametrize(("error", "flagged"), DEAD_SESSIONS)
def test_a_dead_cached_connection_is_replaced_and_the_retry_loads(
    harness: Any,
    warehouse: Warehouse,
    container: Any,
    monkeypatch: pytest.MonkeyPatch,
    export: bytes,
    make_csv: Callable[..., bytes],
    error: Exception,
    flagged: bool,
) -> None:
    from snowflake.connector.cursor import SnowflakeCursor

    from handler import app

    # Given a warm container that has loaded a file, whose cached Snowflake session then dies: every statement on
    # it fails, while is_closed() stays False (and `expired` is True only when the connector noticed the expiry)
    deliver = container()
    assert deliver(harness.put("incoming/faults/first.csv", make_csv(5)))["rows_loaded"] == 5
    dead = app.build_pipeline().warehouse._conn
    dead.expired = flagged
    original = SnowflakeCursor.execute

    def execute(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        if self.connection is dead:
            raise error
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(SnowflakeCursor, "execute", execute)
    event = harness.put(KEY, export)

    # When the next event is delivered, and retried on the same container if it raises
    outcomes: list[str] = []
    for _ in range(2):
        try:
            outcomes.append(deliver(event)["objects"][0]["status"])
            break
        except RetriableError as exc:
            outcomes.append(type(exc).__name__)

    # Then a flagged expiry is noticed before use and the delivery loads on a new session; an unflagged death
    # raises a retriable error once, the connection is dropped, and the retry loads on a new session
    assert outcomes == (["loaded"] if flagged else ["WarehouseConnectionError", "loaded"])
    assert app.build_pipeline().warehouse._conn is not dead
    good = ROWS - len(BAD_LINES)
    assert warehouse.count("target") == 5 + good and warehouse.count("rejects") == len(BAD_LINES)


FAULTS_INJECTED = len(RETRIABLE) + 3 + len(DEAD_SESSIONS)
