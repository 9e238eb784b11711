"""classify(): a connector exception -> the project's typed error, by errno and SQLSTATE, never by message text."""

from __future__ import annotations

import pytest
from snowflake.connector import errors as sf

from adapters.snowflake import classify
from pipeline.errors import (
    LoadConflictError,
    PipelineError,
    WarehouseConnectionError,
    WarehouseRejectedError,
    WarehouseUnavailableError,
)

CASES = [
    # Permanent refusals whose text happens to contain "lock", "conflict" or "aborted"
    (sf.ProgrammingError(msg="invalid identifier 'BLOCK_ID'", errno=904, sqlstate="42000"), WarehouseRejectedError),
    (sf.ProgrammingError(msg="invalid identifier 'CLOCK_SKEW'", errno=904, sqlstate="42000"), WarehouseRejectedError),
    (
        sf.ProgrammingError(
            msg="Object 'SAMPLE_FLOCKS' does not exist or not authorized.", errno=2003, sqlstate="42S02"
        ),
        WarehouseRejectedError,
    ),
    (
        sf.ProgrammingError(msg="syntax error line 1 unexpected 'CONFLICT_ABORTED'", errno=1003, sqlstate="42000"),
        WarehouseRejectedError,
    ),
    (
        sf.ProgrammingError(msg="Insufficient privileges to operate on table", errno=3001, sqlstate="42501"),
        WarehouseRejectedError,
    ),
    (sf.ProgrammingError(msg="no errno at all"), WarehouseRejectedError),
    # Lock waits and transaction conflicts, whatever the text says
    (
        sf.ProgrammingError(msg="Statement has locked table 'LOADS'; waiters exceed 20", errno=625, sqlstate="57014"),
        LoadConflictError,
    ),
    (sf.ProgrammingError(msg="Transaction was aborted", errno=1, sqlstate="40001"), LoadConflictError),
    (sf.ProgrammingError(msg="could not serialize", errno=2, sqlstate="40P01"), LoadConflictError),
    # Transient: cancelled, timed out, warehouse not available
    (
        sf.ProgrammingError(msg="Statement reached its statement timeout", errno=630, sqlstate="57014"),
        WarehouseUnavailableError,
    ),
    (sf.ProgrammingError(msg="No active warehouse selected", errno=606, sqlstate="57P03"), WarehouseUnavailableError),
    (sf.OperationalError(msg="internal error", errno=12345, sqlstate="XX000"), WarehouseUnavailableError),
    (sf.OperationalError(msg="something transient"), WarehouseUnavailableError),
    # The session is gone: the connection must be dropped
    (
        sf.ProgrammingError(msg="Authentication token has expired.", errno=390114, sqlstate="08001"),
        WarehouseConnectionError,
    ),
    (sf.ProgrammingError(msg="Session no longer exists.", errno=390111, sqlstate="08001"), WarehouseConnectionError),
    (sf.OperationalError(msg="connection reset by peer", errno=250003), WarehouseConnectionError),
    (sf.DatabaseError(msg="Connection is closed", errno=250002, sqlstate="08003"), WarehouseConnectionError),
    (sf.InternalServerError(), WarehouseConnectionError),
    (ConnectionResetError("reset"), WarehouseConnectionError),
]


@pytest.mark.parametrize(
    ("error", "expected"), CASES, ids=[f"{type(e).__name__}-{i}" for i, (e, _) in enumerate(CASES)]
)
def test_classify_by_errno_and_sqlstate(error: BaseException, expected: type[PipelineError]) -> None:
    # Given a connector error / When it is classified
    typed = classify(error, "publish rows")
    # Then it is exactly the expected typed error, and retriable exactly when that type is
    assert type(typed) is expected
    assert typed.retriable is expected.retriable


def test_a_rejection_quotes_the_first_line_of_the_server_message_only() -> None:
    # Given a refusal whose server message has more lines
    error = sf.ProgrammingError(msg="invalid identifier 'BLOCK_ID'\nmore detail", errno=904, sqlstate="42000")
    # When it is classified
    typed = classify(error, "publish rows")
    # Then the reason names the statement, errno and SQLSTATE, and only the first line of the message
    assert "publish rows" in str(typed) and "904" in str(typed) and "42000" in str(typed)
    assert "BLOCK_ID" in str(typed) and "more detail" not in str(typed)
