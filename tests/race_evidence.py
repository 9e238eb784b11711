"""Did two deliveries of one file really race? Read from the ledger, and from the lock waits an account recorded,
so that a race test whose deliveries ran one after the other says so instead of passing as if they had raced.

A claim writes its STARTED row only while no committed row says the version is LOADED (docs/exactly-once.md). So
the loser's surviving STARTED row, written no later than the winner's ledger UPDATE (its ``STARTED_AT`` at or
before the LOADED row's ``FINISHED_AT``, both Snowflake's own clock), shows that both claims were committed before
either publish finished: both deliveries went on to stage and publish, and only the ledger lock and the finishing
UPDATE kept the file from loading twice. A ledger statement that waited for a lock shows it too. Deliveries that
ran one after the other leave one row, LOADED, and no wait.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def race_evidence(ledger: Sequence[tuple[str, Any, Any]], lock_waits_ms: Sequence[int] = ()) -> str | None:
    """What shows the deliveries interleaved, as a sentence; None when nothing does.

    ``ledger``: the load's ledger rows as (STATUS, STARTED_AT, FINISHED_AT); ``lock_waits_ms``: how long each of
    the deliveries' ledger statements waited for a lock (Snowflake's TRANSACTION_BLOCKED_TIME), where known.
    """
    found = []
    loaded = [row for row in ledger if row[0] == "LOADED"]
    started = [row for row in ledger if row[0] == "STARTED"]
    if len(loaded) == 1 and loaded[0][2] is not None:
        finished = loaded[0][2]
        early = [row for row in started if row[1] is not None and row[1] <= finished]
        if early:
            found.append(
                f"{len(early)} losing claim(s) committed a STARTED row at {early[0][1]}, before the winner's ledger "
                f"UPDATE at {finished}: both deliveries claimed the file before either publish finished"
            )
    waits = [ms for ms in lock_waits_ms if ms > 0]
    if waits:
        found.append(f"{len(waits)} ledger statement(s) waited for a lock, up to {max(waits)} ms")
    return "; ".join(found) or None


def not_raced(ledger: Sequence[tuple[str, Any, Any]], lock_waits_ms: Sequence[int] = ()) -> str:
    """Why a race test proved nothing about the race, for its skip or failure message."""
    rows = ", ".join(f"{status} (started {started}, finished {finished})" for status, started, finished in ledger)
    return (
        "the two deliveries did not race: no losing claim's STARTED row from before the winner's ledger UPDATE "
        f"(ledger: {rows or 'no rows'}) and no ledger statement waited for a lock (waits in ms: "
        f"{list(lock_waits_ms) or 'none recorded'}); they ran one after the other, so only the claim's duplicate "
        "check was exercised, not the ledger lock"
    )
