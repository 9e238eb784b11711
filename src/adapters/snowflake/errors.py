"""Snowflake's errors as the pipeline's typed errors (``classify``), and no server message in any log.

Decided by errno and SQLSTATE, never by the message text, which may quote a cell's value: the typed error's message
carries codes and a fixed text only, and the connector's own DEBUG record of a failed reply is cut to its codes.
"""

from __future__ import annotations

import logging

from pipeline.errors import (
    LoadConflictError,
    PipelineError,
    WarehouseConnectionError,
    WarehouseRejectedError,
    WarehouseUnavailableError,
)

# How a Snowflake error is classified: by the connector's error number (errno) first, then by the SQLSTATE's
# class, then by the exception's type; never by the message text ("lock" is also inside BLOCK_ID or CLOCK).
# The session is gone: drop the cached connection so the retry logs in again.
_CONNECTION_ERRNOS = frozenset(
    {
        250001,  # ER_FAILED_TO_CONNECT_TO_DB
        250002,  # ER_CONNECTION_IS_CLOSED
        250003,  # ER_FAILED_TO_REQUEST (the request never got an answer)
        250005,  # ER_FAILED_TO_SERVER
        251011,  # ER_CONNECTION_TIMEOUT
        252007,  # ER_FAILED_TO_RENEW_SESSION
        390111,  # session no longer exists
        390112,  # session expired (the connector renews it itself; this reaches us only if that failed)
        390113,  # master token not found
        390114,  # master token expired: the connector also sets conn.expired
        390115,  # master token invalid
    }
)
# Another transaction holds the lock: the waiter gave up (LOCK_TIMEOUT) or the queue was full (20 waiters).
_CONFLICT_ERRNOS = frozenset({625})
# A statement cancelled or timed out, a warehouse suspended or resuming: the same statement can succeed later.
_TRANSIENT_ERRNOS = frozenset({603, 604, 608, 630})
_CONNECTION_SQLSTATE_CLASSES = frozenset({"08"})  # connection exception
_CONFLICT_SQLSTATE_CLASSES = frozenset({"40"})  # transaction rollback: serialization failure, deadlock
# Insufficient resources, operator intervention (cancelled, admin shutdown, cannot connect now), system error.
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"53", "57", "58", "XX"})


# What a refusal means, by the SQLSTATE's class: a fixed text in place of Snowflake's own message, which may quote
# a cell's value (Snowflake: "Numeric value 'Ward-3-East' is not recognized"; fakesnow: 'Could not convert string
# "Ward-3-East" to DECIMAL(10,0)').
_REFUSAL_TEXTS = {
    "22": "a staged value does not fit its column's type (data exception)",
    "23": "a row breaks a constraint of the table (integrity constraint)",
    "42": "the statement or an object it names was refused (syntax, a missing object, privileges)",
    "0A": "the statement uses a feature Snowflake does not support",
}
_REFUSAL_TEXT = "the statement was refused"


def classify(exc: BaseException, what: str) -> PipelineError:
    """A snowflake.connector exception as the project's own typed error, decided by errno and SQLSTATE.

    The message names the statement, the exception's type, errno, SQLSTATE and Snowflake's query id (its full
    error is in the account's query history), never the server's message text: that may quote a cell's value, and
    the message becomes a ledger reason, the response and an ERROR log line. Raise the result ``from None``
    (``_cause``), so that the traceback a log prints does not carry the connector's exception either.
    """
    from snowflake.connector import errors as sf

    errno = getattr(exc, "errno", None)
    sqlstate = str(getattr(exc, "sqlstate", None) or "")
    sqlstate = sqlstate if len(sqlstate) == 5 else ""  # the connector says "n/a" when the server gave none
    query_id = str(getattr(exc, "sfqid", None) or "")
    code = " ".join(str(part) for part in (type(exc).__name__, errno, sqlstate) if part not in (None, "", -1))
    message = f"Snowflake {what} failed: {code}" + (
        f" (query id {query_id})" if query_id.isprintable() and query_id else ""
    )
    sqlstate_class = sqlstate[:2] if len(sqlstate) == 5 else ""
    if errno in _CONNECTION_ERRNOS or sqlstate_class in _CONNECTION_SQLSTATE_CLASSES:
        return WarehouseConnectionError(message)
    if errno in _CONFLICT_ERRNOS or sqlstate_class in _CONFLICT_SQLSTATE_CLASSES:
        return LoadConflictError(f"{message} (concurrent transaction)")
    if errno in _TRANSIENT_ERRNOS or sqlstate_class in _TRANSIENT_SQLSTATE_CLASSES:
        return WarehouseUnavailableError(message)
    if isinstance(exc, sf.ProgrammingError | sf.IntegrityError | sf.DataError | sf.NotSupportedError):
        # The statement itself was refused (SQL, privileges, types, missing objects): the same statement fails
        # the same way.
        text = _REFUSAL_TEXTS.get(sqlstate[:2], _REFUSAL_TEXT) if len(sqlstate) == 5 else _REFUSAL_TEXT
        return WarehouseRejectedError(f"{message}: {text}")
    if isinstance(exc, sf.DatabaseError | sf.InterfaceError):
        return WarehouseUnavailableError(message)  # OperationalError, InternalError and the like
    # HTTP-level failures (sf.Error subclasses such as InternalServerError after the connector's own retries),
    # sockets and timeouts: the request never completed, so the session cannot be trusted either.
    return WarehouseConnectionError(message)


class _FailedQueryReplies(logging.Filter):
    """Withholds the server's message from the connector's DEBUG record of a failed query's reply.

    snowflake.connector.cursor logs a failed query's whole reply at DEBUG (``logger.debug(ret)``), and its message
    may quote a cell's value; anyone turning DEBUG on would put it in the logs. The record keeps the error's code,
    SQLSTATE and query id.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        reply = record.msg
        if isinstance(reply, dict) and reply.get("success") is False:
            data = reply.get("data")
            data = data if isinstance(data, dict) else {}
            record.msg = (
                "failed query reply: code %s, SQLSTATE %s, query id %s (message withheld: it may quote a value)"
            )
            record.args = (reply.get("code"), data.get("sqlState"), data.get("queryId"))
        return True


# First in line: the connector's own SecretMaskingFilter turns the reply into text.
logging.getLogger("snowflake.connector.cursor").filters.insert(0, _FailedQueryReplies())


def _cause(exc: BaseException) -> BaseException | None:
    """What a classified error is raised from: nothing for a connector error (its message may quote a cell's value,
    and a logged traceback prints the cause), the exception itself otherwise (a bug: its traceback matters)."""
    from snowflake.connector import errors as sf

    return None if isinstance(exc, sf.Error) else exc
