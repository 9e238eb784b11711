"""A model of Snowflake's table locks and latency, served in front of fakesnow (tests and benchmarks only).

fakesnow is DuckDB, which never waits for a lock: it fails a conflicting write at once, and an UPDATE that
matches no row takes no lock at all. Snowflake behaves differently, and bursts depend on the difference:

* ``UPDATE``, ``DELETE`` and ``MERGE`` lock the table they write until their transaction ends (COMMIT,
  ROLLBACK, a DDL statement's implicit commit, or the session's end); in autocommit, until the statement ends.
  The lock is taken whether or not a row matches. ``INSERT``, ``COPY`` and reads never wait for it.
* Statements waiting for one table's lock queue first in, first out. At most 20 may wait: the 21st is aborted at
  once with error 000625 (SQLSTATE 57014), "the number of waiters for this lock exceeds the 20 statements limit".
* A waiter gives up after the session's ``LOCK_TIMEOUT`` seconds (default 43200; set at login or with
  ``ALTER SESSION SET LOCK_TIMEOUT = n``), also as 000625. The wording of that message is this model's own.
* Strict option ``insert_waits`` (Snowflake: INSERT and COPY "sometimes" run in parallel with an UPDATE, DELETE or
  MERGE of the same table, https://docs.snowflake.com/en/sql-reference/transactions#resource-locking): an
  ``INSERT`` waits, in the same queue and under the same limits, while another session holds its table's lock; it
  takes no lock itself. Off, an ``INSERT`` never waits (the best case).
* ``STATEMENT_TIMEOUT_IN_SECONDS`` (session parameter at login, ``ALTER SESSION``, or the query request's own
  ``parameters``; 0 = none): a statement still waiting for a lock or running when it expires is cancelled by the
  server with error 000630 (SQLSTATE 57014). A lock wait ends with whichever of the two limits comes first.
* Micro-partition pruning (option ``history``): Snowflake reads a table's micro-partitions unless their min/max
  metadata excludes them (https://docs.snowflake.com/en/user-guide/tables-clustering-micropartitions). A table
  appended to in time order is naturally clustered by its insertion-time column, so a range predicate on it
  (``col >= …``/``col > …``) prunes the old rows; a hash (``LOAD_KEY``) prunes nothing. ``history`` gives a
  table's prior rows and that column: each reference to the table in a statement whose own WHERE lacks such a
  predicate reads every prior row, at ``Latency.per_row_scanned`` each.
* Every statement costs a round trip: by default 100 ms, 400 ms for a ``PUT`` or a ``COPY``.
* ``AUTOCOMMIT`` (https://docs.snowflake.com/en/sql-reference/transactions#autocommit) comes from the login's
  session parameters (default TRUE) and from ``ALTER SESSION SET AUTOCOMMIT = TRUE|FALSE``, which first commits
  an open transaction, whatever the value. With it off, the first DML statement (``INSERT``, ``UPDATE``,
  ``DELETE``, ``MERGE``, ``COPY``) after a transaction ends opens one; ``SELECT``, ``PUT`` and other statements do
  not. DDL commits an open transaction first, then runs on its own; ``BEGIN`` works as with AUTOCOMMIT on. A
  DML statement refused here (000625) opens nothing: fakesnow never sees it.

The model and fakesnow agree on when a transaction is open: a lock passes on only once fakesnow has committed
(after the ``COMMIT`` or ``ROLLBACK`` has run there; before DDL or ``ALTER SESSION SET AUTOCOMMIT`` the model
commits the session in fakesnow itself, which plain fakesnow does not do inside an explicit transaction).

Each session (the connection's token) has a trace, one :class:`Step` per statement: its first keyword and kind,
the table whose lock it took, whether the session held a lock before and after it, the locks it released and the
seconds it waited; never the SQL text or bound values. A ``PUT`` is one step (the upload is no statement).
``model.trace(token)``, ``model.traces()``, ``model.reset_trace()``; :func:`lock_spans` counts the statements from
the one that took a table's lock to the one that released it.

:class:`LockTable` (snowflake_locks.py) is the rule book (pure asyncio, unit-tested in
tests/unit/test_snowflake_model.py); :func:`classify_statement` and :func:`unpruned_scans` (snowflake_sql.py) read a
statement's text.
:func:`modelled_app` wraps fakesnow's own Starlette endpoints: a statement first waits for its lock and its
latency here, then runs in fakesnow; a refusal is an ordinary Snowflake error response, so the real connector
raises its own ``ProgrammingError`` with ``errno`` 625 and ``sqlstate`` 57014. :func:`modelled_snowflake` serves
that app on loopback next to the local stack's plain fakesnow server, sharing its sessions and data: the
function talks to the modelled port, tests and benchmarks read the results through the plain one.

Never shipped, never imported by the function.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tools.emulated.snowflake_locks import (
    DEFAULT_LOCK_TIMEOUT,
    LOCK_ERRNO,
    LOCK_SQLSTATE,
    MAX_WAITERS,
    LockError,
    LockTable,
    StatementTimeoutError,
)
from tools.emulated.snowflake_sql import (
    _LOCK_TIMEOUT_SET,
    _STATEMENT_TIMEOUT_SET,
    DML_KINDS,
    Statement,
    classify_statement,
    statement_verb,
    unpruned_scans,
)

__all__ = [
    "MAX_WAITERS",
    "NO_LATENCY",
    "History",
    "Latency",
    "LockError",
    "LockTable",
    "SnowflakeModel",
    "Statement",
    "StatementTimeoutError",
    "Step",
    "classify_statement",
    "lock_spans",
    "modelled_app",
    "modelled_snowflake",
    "statement_verb",
    "unpruned_scans",
]


@dataclass(frozen=True)
class Latency:
    """Seconds a statement costs (a round trip plus its work), by kind."""

    statement: float = 0.100
    transfer: float = 0.400  # PUT and COPY
    per_row_scanned: float = 1e-6  # a prior row read because no predicate pruned its micro-partition

    def of(self, kind: str) -> float:
        return self.transfer if kind in {"PUT", "COPY"} else self.statement


NO_LATENCY = Latency(0.0, 0.0, 0.0)


@dataclass(frozen=True)
class History:
    """A table's prior rows (never sent to the engine: only their cost is modelled) and the column it is naturally
    clustered by (its insertion time)."""

    rows: int
    clustered_by: str = "STARTED_AT"


# --- sessions -----------------------------------------------------------------------------------------------
@dataclass
class _Session:
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    statement_timeout: float = 0.0  # STATEMENT_TIMEOUT_IN_SECONDS; 0: none
    autocommit: bool = True
    in_transaction: bool = False


def _parameter_true(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().upper() in {"TRUE", "1", "ON", "YES"}


@dataclass(frozen=True)
class Step:
    """One statement of a session's trace: its kind and the lock it touched, never its text or values."""

    verb: str  # the statement's first keyword: UPDATE, INSERT, SELECT, PUT, CREATE, COMMIT, ...
    kind: str  # Statement.kind: WRITE, INSERT, COPY, PUT, DDL, AUTOCOMMIT, BEGIN, COMMIT, ROLLBACK, OTHER
    table: str | None  # the table whose lock it took (or was refused)
    held_before: bool  # the session held a lock when the statement arrived
    held_after: bool  # ... and when it finished
    released: tuple[str, ...]  # the tables whose locks it released (its transaction ended)
    in_transaction: bool  # a transaction was open once it finished
    waited: float  # seconds waited for the lock
    refused: bool = False  # aborted with 000625 (or 000630)
    seconds: float = 0.0  # the modelled cost: latency plus the rows read unpruned (not the lock wait)
    rows_scanned: int = 0  # prior rows of a ``history`` table read because no predicate pruned them


def lock_spans(steps: list[Step], table: str) -> list[int]:
    """Statements per holding of ``table``'s lock: from the one that took it to the one that released it, both
    counted (1 for an autocommit UPDATE). ``table`` is DATABASE.SCHEMA.TABLE, or a bare name matching the last
    part. A holding still open at the end of ``steps`` (or ended by the session's end) is not counted."""

    def same(name: str | None) -> bool:
        return name is not None and (name == table or ("." not in table and name.rsplit(".", 1)[-1] == table))

    spans: list[int] = []
    taken_at: int | None = None
    for i, step in enumerate(steps):
        if taken_at is None and same(step.table) and not step.refused:
            taken_at = i
        if taken_at is not None and any(same(t) for t in step.released):
            spans.append(i - taken_at + 1)
            taken_at = None
    return spans


class SnowflakeModel:
    """The lock table, the latency and what each session is doing; counters and a trace for benchmarks."""

    def __init__(
        self,
        latency: Latency = Latency(),
        *,
        max_waiters: int = MAX_WAITERS,
        insert_waits: bool = False,
        history: dict[str, History] | None = None,
    ) -> None:
        self.latency = latency
        self.insert_waits = insert_waits
        self.history = {name.upper(): h for name, h in (history or {}).items()}  # DATABASE.SCHEMA.TABLE
        self.locks = LockTable(max_waiters)
        self.sessions: dict[str, _Session] = {}
        self.counts: Counter[str] = Counter()
        self._traces: dict[str, list[Step]] = {}

    def login(self, session: str, parameters: dict[str, Any]) -> None:
        timeout = parameters.get("LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT)
        autocommit = _parameter_true(parameters.get("AUTOCOMMIT", True))
        statement_timeout = float(parameters.get("STATEMENT_TIMEOUT_IN_SECONDS", 0) or 0)
        self.sessions[session] = _Session(float(timeout), statement_timeout, autocommit)

    def logout(self, session: str) -> None:
        self.locks.release(session)  # an open transaction ends with its session (rolled back)
        self.sessions.pop(session, None)

    # --- the trace: one Step per statement, per session (its token), since the start or reset_trace() ------
    def trace(self, session: str) -> list[Step]:
        return list(self._traces.get(session, []))

    def traces(self) -> dict[str, list[Step]]:
        return {session: list(steps) for session, steps in self._traces.items()}

    def reset_trace(self) -> None:
        self._traces.clear()

    def lock_spans(self, table: str) -> list[int]:
        """:func:`lock_spans` over every session's trace."""
        return [n for steps in self._traces.values() for n in lock_spans(steps, table)]

    async def run(
        self,
        session: str,
        sql: str,
        database: str | None,
        schema: str | None,
        execute: Callable[[], Awaitable[Any]],
        *,
        commit: Callable[[], Awaitable[Any]] | None = None,
        statement_timeout: float | None = None,
    ) -> Any:
        """Apply the transaction and lock rules and the latency around ``execute`` (fakesnow running the statement).

        ``commit`` commits the session's open transaction in the engine behind the model. It is awaited before a
        statement that commits implicitly (DDL, ``ALTER SESSION SET AUTOCOMMIT``), so that a lock is never
        released here while the engine still holds the transaction open. ``statement_timeout`` is the query
        request's own STATEMENT_TIMEOUT_IN_SECONDS (else the session's): the server cancels the statement (000630)
        when its lock wait and its latency outlast it.
        """
        state = self.sessions.setdefault(session, _Session())
        statement = classify_statement(sql, database, schema)
        self.counts["statements"] += 1
        self.counts[statement.kind.lower()] += 1
        held_before = bool(self.locks.held_by(session))
        released: set[str] = set()
        waited, refused = 0.0, False
        scanned = sum(
            h.rows * unpruned_scans(sql, name, h.clustered_by, database, schema)
            for name, h in self.history.items()
            if name.rsplit(".", 1)[-1] in sql.upper()
        )
        cost = self.latency.of(statement.kind) + scanned * self.latency.per_row_scanned

        def end_transaction() -> None:
            state.in_transaction = False
            released.update(self.locks.held_by(session))
            self.locks.release(session)

        try:
            if statement.kind in {"DDL", "AUTOCOMMIT"} and state.in_transaction:
                if commit is not None:  # the implicit commit comes first: DDL then runs as its own transaction
                    await commit()
                end_transaction()
            limit = statement_timeout if statement_timeout is not None else state.statement_timeout
            limit = limit if limit and limit > 0 else None
            waits = statement.kind == "WRITE" or (statement.kind == "INSERT" and self.insert_waits)
            if waits and statement.table is not None:
                timeout = state.lock_timeout if limit is None else min(state.lock_timeout, limit)
                try:
                    if statement.kind == "WRITE":
                        waited = await self.locks.acquire(session, statement.table, timeout=timeout)
                    else:
                        waited = await self.locks.wait_free(session, statement.table, timeout=timeout)
                except LockError as exc:
                    refused = True
                    if not state.in_transaction:
                        end_transaction()
                    if exc.timed_out and limit is not None and limit < state.lock_timeout:
                        self.counts["errors_000630"] += 1
                        raise _statement_timeout(limit) from None
                    self.counts["errors_000625"] += 1
                    raise
                self.counts["lock_wait_ms"] += int(waited * 1000)
            try:
                if (seconds := cost) > 0:
                    if limit is not None and waited + seconds > limit:  # cancelled by the server: opens nothing
                        await asyncio.sleep(max(0.0, limit - waited))
                        refused = True
                        self.counts["errors_000630"] += 1
                        raise _statement_timeout(limit)
                    await asyncio.sleep(seconds)
                if statement.kind in DML_KINDS and not state.autocommit:
                    state.in_transaction = True  # the first DML after a transaction ends opens one (implicit BEGIN)
                result = await execute()
            finally:
                if statement.kind in {"COMMIT", "ROLLBACK"}:
                    end_transaction()  # after execute: the engine has committed when the lock passes on
                elif statement.kind == "BEGIN":
                    state.in_transaction = True
                elif statement.kind == "AUTOCOMMIT":
                    assert statement.autocommit is not None
                    state.autocommit = statement.autocommit
                elif not state.in_transaction:
                    end_transaction()  # autocommit: the statement was the transaction
        finally:
            self._traces.setdefault(session, []).append(
                Step(
                    verb=statement_verb(sql),
                    kind=statement.kind,
                    table=statement.table if statement.kind == "WRITE" else None,
                    held_before=held_before,
                    held_after=bool(self.locks.held_by(session)),
                    released=tuple(sorted(released)),
                    in_transaction=state.in_transaction,
                    waited=waited,
                    refused=refused,
                    seconds=cost,
                    rows_scanned=scanned,
                )
            )
        if (match := _LOCK_TIMEOUT_SET.match(sql)) is not None:
            state.lock_timeout = float(match.group(1))
        if (match := _STATEMENT_TIMEOUT_SET.match(sql)) is not None:
            state.statement_timeout = float(match.group(1))
        return result


def _statement_timeout(seconds: float) -> StatementTimeoutError:
    return StatementTimeoutError(
        f"Statement reached its statement or warehouse timeout of {seconds:g} second(s) and was canceled.",
        timed_out=True,
    )


# --- fakesnow, wrapped --------------------------------------------------------------------------------------
def _json_body(raw: bytes, encoding: str | None) -> dict[str, Any]:
    data = json.loads(gzip.decompress(raw) if encoding == "gzip" else raw)
    return data if isinstance(data, dict) else {}


def _error_response(message: str, errno: int = LOCK_ERRNO, sqlstate: str = LOCK_SQLSTATE) -> Any:
    from starlette.responses import JSONResponse

    code = f"{errno:06d}"
    return JSONResponse(
        {
            "data": {"errorCode": code, "sqlState": sqlstate, "queryId": str(uuid.uuid4())},
            "code": code,
            "message": message,
            "success": False,
        }
    )


def modelled_app(model: SnowflakeModel) -> Any:
    """fakesnow's server app with every query passing through the model first."""
    import fakesnow.server as fs
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response

    from tools.emulated.local_stack import fakesnow_app

    async def login(request: Request) -> Response:
        body = _json_body(await request.body(), request.headers.get("Content-Encoding"))
        response: Response = await fs.login_request(request)
        with contextlib.suppress(Exception):
            token = json.loads(bytes(response.body))["data"]["token"]
            model.login(token, body.get("data", {}).get("SESSION_PARAMETERS", {}))
        return response

    async def query(request: Request) -> Response:
        token = (request.headers.get("Authorization") or "")[17:-1]
        conn = fs.sessions.get(token)
        if conn is None:
            return await fs.query_request(request)  # fakesnow's own "login again" answer
        body = _json_body(await request.body(), request.headers.get("Content-Encoding"))
        sql = str(body.get("sqlText", ""))
        if body.get("describeOnly"):
            return await fs.query_request(request)

        async def execute() -> Response:
            return await fs.query_request(request)

        async def commit() -> None:
            # fakesnow commits before DDL only with AUTOCOMMIT off; Snowflake also inside an explicit transaction
            await run_in_threadpool(conn.commit)

        try:
            parameters = body.get("parameters") or {}
            timeout = parameters.get("STATEMENT_TIMEOUT_IN_SECONDS") if isinstance(parameters, dict) else None
            result: Response = await model.run(
                token,
                sql,
                conn.database,
                conn.schema,
                execute,
                commit=commit,
                statement_timeout=float(timeout) if timeout is not None else None,
            )
        except LockError as exc:
            refused: Response = _error_response(exc.message, exc.errno, exc.sqlstate)
            return refused
        return result

    async def session(request: Request) -> Response:
        token = (request.headers.get("Authorization") or "")[17:-1]
        response: Response = await fs.session(request)
        if request.query_params.get("delete"):
            model.logout(token)
        return response

    return fakesnow_app({"/session/v1/login-request": login, "/queries/v1/query-request": query, "/session": session})


@contextlib.contextmanager
def modelled_snowflake(model: SnowflakeModel) -> Iterator[int]:
    """Serve fakesnow behind the model on a loopback port (the local stack's fakesnow must be running)."""
    from tools.emulated.local_stack import serve_asgi

    with serve_asgi(modelled_app(model), name="snowflake-model") as port:
        yield port
