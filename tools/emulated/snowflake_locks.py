"""Snowflake's table locks as rules: per-table write locks, waiters first in first out, at most 20 of them (the
21st refused with 000625), LOCK_TIMEOUT, and the errors a refused statement gets (pure asyncio, no fakesnow;
unit-tested in tests/unit/test_snowflake_model.py). The model (snowflake_model.py) applies them per statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field

MAX_WAITERS = 20
DEFAULT_LOCK_TIMEOUT = 43_200  # Snowflake's default, in seconds
LOCK_ERRNO = 625
LOCK_SQLSTATE = "57014"
STATEMENT_TIMEOUT_ERRNO = 630
STATEMENT_TIMEOUT_SQLSTATE = "57014"


class LockError(Exception):
    """A statement refused by the lock rules: reported to the client as Snowflake error 000625."""

    errno = LOCK_ERRNO
    sqlstate = LOCK_SQLSTATE

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.timed_out = timed_out  # the wait's time ran out (not the 20-waiter limit)


class StatementTimeoutError(LockError):
    """A statement cancelled by the server's STATEMENT_TIMEOUT_IN_SECONDS: Snowflake error 000630."""

    errno = STATEMENT_TIMEOUT_ERRNO
    sqlstate = STATEMENT_TIMEOUT_SQLSTATE


@dataclass
class _Lock:
    holder: str | None = None
    holder_statement: str = ""
    holder_since: int = 0  # the transaction's number, for the message
    waiters: deque[tuple[str, asyncio.Future[None]]] = field(default_factory=deque)


class LockTable:
    """Per-table write locks with FIFO waiters, the 20-waiter limit and LOCK_TIMEOUT.

    Owners are session ids. A session that holds a table's lock takes it again at once (its later statements in
    the same transaction). Use from one event loop only (asyncio, no threads).
    """

    def __init__(self, max_waiters: int = MAX_WAITERS) -> None:
        self.max_waiters = max_waiters
        self._locks: dict[str, _Lock] = {}
        self._held: dict[str, set[str]] = {}
        self.stats: Counter[str] = Counter()

    def holder(self, table: str) -> str | None:
        lock = self._locks.get(table)
        return lock.holder if lock else None

    def waiting(self, table: str) -> int:
        lock = self._locks.get(table)
        return len(lock.waiters) if lock else 0

    async def acquire(self, session: str, table: str, *, timeout: float, statement: str = "") -> float:
        """Take the table's lock for the session; return the seconds waited. Raises LockError."""
        lock = self._locks.setdefault(table, _Lock())
        if lock.holder in {None, session} and (lock.holder == session or not lock.waiters):
            self._grant(lock, session, table, statement)
            return 0.0
        statement = statement or str(uuid.uuid4())
        if len(lock.waiters) >= self.max_waiters:
            self.stats["waiters_exceeded"] += 1
            raise LockError(
                f"Statement '{lock.holder_statement}' has locked table '{table}' in transaction {lock.holder_since} "
                f"and this lock has not yet been released.\nYour statement '{statement}' was aborted because the "
                f"number of waiters for this lock exceeds the {self.max_waiters} statements limit."
            )
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (session, future)
        lock.waiters.append(entry)
        self.stats["waits"] += 1
        start = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout=timeout)
        except TimeoutError:
            if future.done() and not future.cancelled():  # granted at the last instant: give it back
                self.release(session, only=table)
            else:
                future.cancel()
                with contextlib.suppress(ValueError):
                    lock.waiters.remove(entry)
            self.stats["lock_timeouts"] += 1
            raise LockError(
                f"Statement '{lock.holder_statement}' has locked table '{table}' in transaction {lock.holder_since} "
                f"and this lock has not yet been released.\nYour statement '{statement}' was aborted because the "
                f"lock wait exceeded LOCK_TIMEOUT ({timeout:g} seconds).",
                timed_out=True,
            ) from None
        except BaseException:  # the client went away: leave the queue (or give back what was just granted)
            if future.done() and not future.cancelled():
                self.release(session, only=table)
            else:
                future.cancel()
                with contextlib.suppress(ValueError):
                    lock.waiters.remove(entry)
            raise
        lock.holder_statement = statement
        return time.monotonic() - start

    async def wait_free(self, session: str, table: str, *, timeout: float) -> float:
        """Wait, queued like a writer, until no other session holds the table's lock; take nothing (an INSERT under
        ``insert_waits``). Return the seconds waited. Raises LockError."""
        lock = self._locks.get(table)
        if lock is None or lock.holder in {None, session}:
            return 0.0
        waited = await self.acquire(session, table, timeout=timeout)
        self.release(session, only=table)
        return waited

    def _grant(self, lock: _Lock, session: str, table: str, statement: str) -> None:
        if lock.holder != session:
            lock.holder = session
            lock.holder_since = time.time_ns()
            lock.holder_statement = statement or str(uuid.uuid4())
            self._held.setdefault(session, set()).add(table)
            self.stats["acquired"] += 1

    def release(self, session: str, *, only: str | None = None) -> None:
        """End of the session's transaction: free its locks, each to the longest waiter."""
        tables = self._held.get(session, set())
        for table in [t for t in tables if only is None or t == only]:
            tables.discard(table)
            lock = self._locks[table]
            lock.holder = None
            while lock.waiters:
                next_session, future = lock.waiters.popleft()
                if future.cancelled():
                    continue
                self._grant(lock, next_session, table, "")
                future.set_result(None)
                break
        if not tables:
            self._held.pop(session, None)

    def held_by(self, session: str) -> set[str]:
        return set(self._held.get(session, set()))
