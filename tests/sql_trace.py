"""The statements the Snowflake adapter sends, recorded without a network, and checks on their text.

``RecordingConnection`` stands in for the connector's connection: it records every statement a cursor runs (text,
bound values, the keyword arguments the adapter passed to ``execute``) and the connection's own ``commit`` and
``rollback``, and answers each statement with the row count and rows a test scripts. ``logged_in`` builds the real
``SnowflakeWarehouse`` on one. ``four_part_names`` finds ``db.schema.table.column`` references in a statement's text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adapters.secrets import SnowflakeCredentials
from adapters.snowflake import SnowflakeWarehouse
from pipeline.settings import Settings

BASE = {"SNOWFLAKE_SECRET_NAME": "s", "SNOWFLAKE_DATABASE": "D", "SNOWFLAKE_SCHEMA": "S", "SNOWFLAKE_ACCOUNT": "a"}

Answer = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Sent:
    """One statement as the connector received it. ``via``: ``cursor`` (a statement the adapter wrote),
    ``commit`` / ``rollback`` (the connection's own methods) or ``write_pandas`` (``sql`` is the staging table)."""

    sql: str
    params: Any = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    via: str = "cursor"


class RecordingCursor:
    def __init__(self, conn: RecordingConnection) -> None:
        self._conn, self.rowcount, self._rows = conn, 0, []

    def execute(self, sql: str, params: Any = None, **kwargs: Any) -> RecordingCursor:
        self._conn.sent.append(Sent(sql, params, kwargs))
        self.rowcount = int(self._conn.rowcount(sql, params))
        self._rows = list(self._conn.rows(sql, params))
        return self

    def fetchall(self) -> list[Any]:
        return self._rows


class RecordingConnection:
    """Records each statement; ``rowcount(sql, params)`` and ``rows(sql, params)`` answer it (default: 0, none)."""

    def __init__(self, rowcount: Answer | None = None, rows: Answer | None = None) -> None:
        self.sent: list[Sent] = []
        self.rowcount: Answer = rowcount or (lambda sql, params: 0)
        self.rows: Answer = rows or (lambda sql, params: [])

    def cursor(self) -> RecordingCursor:
        return RecordingCursor(self)

    def is_closed(self) -> bool:
        return False

    def commit(self) -> None:
        self.sent.append(Sent("COMMIT", via="commit"))

    def rollback(self) -> None:
        self.sent.append(Sent("ROLLBACK", via="rollback"))

    def close(self) -> None:
        pass

    def write_pandas(
        self, conn: Any, frame: Any, *, table_name: str, **kwargs: Any
    ) -> tuple[bool, int, int, list[Any]]:
        """A stand-in for the connector's write_pandas (its own statements are not the adapter's text)."""
        self.sent.append(Sent(table_name, len(frame), kwargs, via="write_pandas"))
        return True, 1, len(frame), []


class Clocked:
    """The warehouse, each batch opened with the invocation's clock (as pipeline/process.py opens them)."""

    def __init__(self, warehouse: SnowflakeWarehouse, clock: Callable[[], float] | None) -> None:
        self.warehouse, self.clock = warehouse, clock

    def batch(self) -> Any:
        return self.warehouse.batch(self.clock)


def logged_in(
    environ: dict[str, str], left: list[float] | None, conn: RecordingConnection | None = None
) -> tuple[list[dict[str, Any]], RecordingConnection, Clocked]:
    """The adapter's login kwargs and connection, with an invocation clock reading ``left[0]`` seconds (or none);
    the connection's ``write_pandas`` stands in for the connector's."""
    asked: list[dict[str, Any]] = []
    conn = conn or RecordingConnection()

    def connect(**kwargs: Any) -> RecordingConnection:
        asked.append(kwargs)
        return conn

    credentials = SnowflakeCredentials(user="u", password="p")
    settings = Settings.from_env(environ)
    warehouse = SnowflakeWarehouse(settings, lambda: credentials, connect=connect, write_pandas=conn.write_pandas)
    clock = None if left is None else (lambda: left[0])
    return asked, conn, Clocked(warehouse, clock)


FOUR_PART = re.compile(r"\b[A-Za-z_]\w*\.[A-Za-z_]\w*\.[A-Za-z_]\w*\.[A-Za-z_]\w*\b")
QUOTED = re.compile(r"'(?:[^']|'')*'|/\*.*?\*/", re.S)  # values and comments (write_pandas names itself in one)


def four_part_names(sql: str) -> list[str]:
    """The ``a.b.c.d`` names in a statement's text, outside quoted values and comments. Snowflake documents
    ``db.schema.object`` names, not ``db.schema.table.column``: a column is qualified by a table alias."""
    return FOUR_PART.findall(QUOTED.sub("NULL", sql))
