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


REFUSALS_QUOTING_A_VALUE = [
    # fakesnow (DuckDB) refusing text into a NUMBER column at INSERT
    sf.ProgrammingError(
        msg='Conversion Error: Could not convert string "Ward-3-East" to DECIMAL(10,0)', errno=100035, sqlstate="22007"
    ),
    # Snowflake's own wording of the same refusal
    sf.ProgrammingError(msg="Numeric value 'Ward-3-East' is not recognized", errno=100038, sqlstate="22018"),
    sf.DataError(msg="String 'Ward-3-East' is too long and would be truncated", errno=100074, sqlstate="22001"),
    sf.IntegrityError(msg="NULL result in a non-nullable column near 'Ward-3-East'", errno=100072, sqlstate="22004"),
    sf.ProgrammingError(msg="invalid identifier 'Ward-3-East'\nmore detail", errno=904, sqlstate="42000"),
    sf.ProgrammingError(msg="Ward-3-East without errno or SQLSTATE"),
    sf.OperationalError(msg="Ward-3-East in a transient error", errno=608, sqlstate="57014"),
    sf.OperationalError(msg="Ward-3-East in a lost session", errno=250003),
    sf.ProgrammingError(msg="Ward-3-East in a lock wait", errno=625, sqlstate="57014"),
]


@pytest.mark.parametrize("error", REFUSALS_QUOTING_A_VALUE, ids=lambda e: f"{type(e).__name__}-{e.errno}")
def test_a_classified_error_names_the_statement_and_codes_never_the_servers_text(error: sf.Error) -> None:
    # Given a connector error whose message quotes a cell's value
    error.sfqid = "01b2c3d4-0000-1111-0000-000000000001"
    # When it is classified
    typed = classify(error, "publish rows")
    # Then its message (a ledger reason, the response, an ERROR log line) names the statement, errno, SQLSTATE and
    # the query id, and holds none of the server's text
    text = str(typed)
    assert "publish rows" in text and "01b2c3d4-0000-1111-0000-000000000001" in text
    assert all(str(code) in text for code in (error.errno, error.sqlstate) if code not in (None, -1, "n/a"))
    assert "n/a" not in text and " -1" not in text  # the connector's placeholders when the server gave none
    assert "Ward" not in text and "more detail" not in text


def test_an_error_raised_from_a_refused_statement_does_not_carry_the_connectors_exception() -> None:
    # Given a statement Snowflake refuses with a message that quotes a cell's value
    from adapters.snowflake import SnowflakeBatch
    from adapters.snowflake.statements import _Schema
    from pipeline.settings import Settings

    class Cursor:
        def execute(self, sql: str, params: object = None) -> None:
            raise sf.ProgrammingError(
                msg="Numeric value 'Ward-3-East' is not recognized", errno=100038, sqlstate="22018"
            )

    class Connection:
        def cursor(self) -> Cursor:
            return Cursor()

    batch = SnowflakeBatch(Connection(), Settings.model_construct(), None, _Schema())
    # When the statement runs
    with pytest.raises(WarehouseRejectedError) as caught:
        batch._execute("INSERT INTO T SELECT 1", what="publish rows", dml=True)
    # Then the typed error's traceback (which a log prints) neither chains nor shows the connector's exception
    import traceback

    printed = "".join(traceback.format_exception(caught.value))
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert "Ward" not in printed


def test_the_connectors_debug_record_of_a_failed_reply_keeps_the_codes_only(caplog: pytest.LogCaptureFixture) -> None:
    # Given the reply of a query Snowflake refused, as snowflake.connector.cursor logs it at DEBUG (logger.debug(ret))
    import logging

    import adapters.snowflake  # noqa: F401  (installs the filter)

    reply = {
        "data": {"errorCode": "100038", "sqlState": "22018", "queryId": "01b2c3d4-0000"},
        "code": "100038",
        "message": "Numeric value 'Ward-3-East' is not recognized",
        "success": False,
    }
    # When the connector logs it
    with caplog.at_level(logging.DEBUG, logger="snowflake.connector.cursor"):
        logging.getLogger("snowflake.connector.cursor").debug(reply)
    # Then the record keeps the code, SQLSTATE and query id, and not the server's message
    [text] = [r.getMessage() for r in caplog.records]
    assert "100038" in text and "22018" in text and "01b2c3d4-0000" in text
    assert "Ward" not in text
