"""Fixtures for the hardening suite: the corpus manifest, and a warehouse view that reuses one connection."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The connector probes cloud metadata endpoints on every connect (~0.5 s each) unless told not to; the tests
# connect hundreds of times, and nothing they check depends on it.
os.environ.setdefault("SNOWFLAKE_DISABLE_PLATFORM_DETECTION", "true")

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


def load_manifest() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))["cases"]
    return cases


def quoted(text: str) -> str:
    """A SQL string literal (only for test queries; the function binds its parameters)."""
    return "'" + text.replace("'", "''") + "'"


class Warehouse:
    """What landed in the emulated Snowflake for one test's tables, read over one connection."""

    def __init__(self, harness: Any) -> None:
        self.harness = harness
        self._conn: Any = None

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self._conn is None:
            self._conn = self.harness.stack.snowflake_connect()
        return list(self._conn.cursor().execute(sql.format(**self.harness.tables)).fetchall())

    def exists(self, table: str) -> bool:
        name = quoted(self.harness.tables[table])
        return bool(self.query(f"SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = {name}")[0][0])

    def count(self, table: str = "target", where: str = "TRUE") -> int:
        """Rows in one of the test's tables; 0 if the function never created it (a file that failed early)."""
        if not self.exists(table):
            return 0
        return int(self.query(f"SELECT COUNT(*) FROM {{{table}}} WHERE {where}")[0][0])

    def ledger(self, key: str | None = None) -> list[tuple[Any, ...]]:
        """Ledger rows: (STATUS, ROWS_LOADED, ROWS_REJECTED, REASON_CODE, REASON), of one key or all."""
        if not self.exists("ledger"):
            return []
        where = f"SOURCE_KEY = {quoted(key)}" if key is not None else "TRUE"
        return self.query(
            f"SELECT STATUS, ROWS_LOADED, ROWS_REJECTED, REASON_CODE, REASON FROM {{ledger}} WHERE {where} "
            "ORDER BY STATUS"
        )

    def snapshot(self) -> dict[str, Any]:
        """Everything a delivery can change: row counts and the ledger."""
        return {"target": self.count("target"), "rejects": self.count("rejects"), "ledger": self.ledger()}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@pytest.fixture
def warehouse(harness: Any) -> Iterator[Warehouse]:
    view = Warehouse(harness)
    yield view
    view.close()


@pytest.fixture
def container(harness: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A warm Lambda container: ``container(**env)`` sets the environment and builds the pipeline once; the
    function it returns delivers events to ``lambda_handler`` on that same pipeline (and connection), as Lambda
    does when it retries on the container that just failed."""
    from handler import app
    from pipeline.settings import get_settings
    from tests.conftest import LambdaContext

    def start(**env: str) -> Any:
        for name, value in {**harness.env, **env}.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        app.build_pipeline.cache_clear()

        def deliver(event: dict[str, Any]) -> dict[str, Any]:
            return app.lambda_handler(event, LambdaContext())  # type: ignore[arg-type]

        return deliver

    yield start
    if app.build_pipeline.cache_info().currsize:
        app.build_pipeline().warehouse.close()  # a connection left mid-transaction must not block later tests
    app.build_pipeline.cache_clear()


@pytest.fixture
def modelled_port(stack: Any) -> Iterator[int]:
    """The Snowflake model's port in front of the stack's fakesnow (Snowflake's locks, strict: an INSERT may wait behind
    another session's UPDATE of its table; no latency)."""
    from tools.emulated.snowflake_model import NO_LATENCY, SnowflakeModel, modelled_snowflake

    with modelled_snowflake(SnowflakeModel(NO_LATENCY, insert_waits=True)) as port:
        yield port
