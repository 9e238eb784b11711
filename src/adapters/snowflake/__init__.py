"""Snowflake writer: explicit DDL, staging through write_pandas, and an atomic, exactly-once publish per batch.

How exactly-once works (the Snowflake semantics relied on: docs/exactly-once.md):

1. ``claim``: one INSERT of a STARTED row for each of the batch's object versions no ledger row says is LOADED or
   FAILED, then COMMIT at once (no transaction stays open while the batch is read and scored); only when it
   inserted fewer rows than versions, one read learns which are duplicates. Nothing of those is read or staged.
2. ``stage``: rows and rejects go to the session's TEMPORARY staging tables (created once per session) through
   write_pandas (a temporary stage, PUT + COPY), each row tagged with its object's number, never reused in the
   session; small files share one write.
3. ``publish``: one transaction for the whole batch. The connection runs with AUTOCOMMIT off, so the first DML
   statement opens it. Append: the rows and rejects are inserted; ``UPDATE ledger`` then write-locks the ledger
   until COMMIT, so concurrent publishers queue behind each other; one UPDATE turns the batch's STARTED rows
   LOADED (with counts) or FAILED (with the reason) except where a committed row already says LOADED or FAILED:
   a new statement, it sees everything committed while this one waited. If it wrote fewer rows than the batch
   has versions, a concurrent delivery won one of them: everything is rolled back and the batch runs again.
   Otherwise COMMIT: three statements under the lock. Upsert: set-based, at most eight (``_publish_upsert``).
   Every ledger reference under the lock is pruned by STARTED_AT (``RECENT_SECONDS``), so the lock is held as
   long with a million prior loads as with none. A crash before COMMIT leaves the claim's STARTED rows (a record
   of the attempt) and temporary tables, which vanish with the session; the retry starts over.

No client-side timer cancels a statement (no ``network_timeout``): Snowflake's LOCK_TIMEOUT and a server-side
STATEMENT_TIMEOUT_IN_SECONDS from the invocation's time left govern (``statement_timeout``).
Creating or altering the fixed tables (CREATE TABLE IF NOT EXISTS, ALTER TABLE ADD COLUMN for drift and the
ledger's migration) needs the tables' OWNERSHIP (docs/deploy.md).

The package, one concern a module (each statement shape has one home):

* ``errors``: ``classify`` (errno and SQLSTATE -> the pipeline's typed errors), no server message in any log;
* ``statements``: how a statement is sent (a server-side time limit per request, typed errors), bound parameters,
  what the session already has (``_Schema``);
* ``schema``: the fixed tables' columns and the DDL (fixed tables, target, added columns);
* ``ledger``: the claim, the ledger lock and the UPDATE that finishes the batch's rows (``RECENT_SECONDS``);
* ``staging``: the temporary staging tables, written with write_pandas;
* ``append``: the INSERTs that publish staged rows and rejects; ``upsert``: upsert mode's set-based statements;
* ``publish``: ``SnowflakeBatch`` and its publish, the statements of a batch's transaction in order;
* ``session``: ``SnowflakeWarehouse``, the container's connection and its batches.
"""

from adapters.snowflake.errors import classify
from adapters.snowflake.ledger import RECENT_SECONDS
from adapters.snowflake.publish import SnowflakeBatch
from adapters.snowflake.schema import LEDGER_COLUMNS, REJECTED_AT
from adapters.snowflake.session import SnowflakeWarehouse
from adapters.snowflake.staging import OBJECT_NO, UPSERT_NOTE, WRITE_PANDAS_OPTIONS
from adapters.snowflake.statements import STATEMENT_MARGIN_SECONDS, statement_timeout

__all__ = [
    "LEDGER_COLUMNS",
    "OBJECT_NO",
    "RECENT_SECONDS",
    "REJECTED_AT",
    "STATEMENT_MARGIN_SECONDS",
    "UPSERT_NOTE",
    "WRITE_PANDAS_OPTIONS",
    "SnowflakeBatch",
    "SnowflakeWarehouse",
    "classify",
    "statement_timeout",
]
