"""The tables the function writes: the fixed ledger and rejects tables' columns, and the DDL that creates them and
the target, and adds the columns a file brings (idempotent: IF NOT EXISTS everywhere)."""

from __future__ import annotations

from adapters.snowflake.statements import _Statements
from pipeline.errors import PermanentError, SchemaEvolutionError
from pipeline.ports import MONITORING_COLUMNS, REJECT_COLUMNS
from pipeline.settings import validate_identifier

LEDGER_COLUMNS: list[tuple[str, str]] = [
    ("LOAD_KEY", "VARCHAR(64) NOT NULL"),
    ("SOURCE_BUCKET", "VARCHAR(255) NOT NULL"),
    ("SOURCE_KEY", "VARCHAR(2048) NOT NULL"),
    ("SOURCE_VERSION", "VARCHAR(1024) NOT NULL"),
    ("STATUS", "VARCHAR(16) NOT NULL"),
    ("LOAD_ID", "VARCHAR(36)"),
    ("ROWS_LOADED", "NUMBER(19,0)"),
    ("ROWS_REJECTED", "NUMBER(19,0)"),
    ("REASON_CODE", "VARCHAR(64)"),
    ("REASON", "VARCHAR(4096)"),
    ("MODEL_VERSION", "VARCHAR(128)"),
    ("LOAD_MODE", "VARCHAR(16)"),
    ("LOCK_TOKEN", "VARCHAR(36)"),
    ("STARTED_AT", "TIMESTAMP_TZ"),
    ("FINISHED_AT", "TIMESTAMP_TZ"),
    # Added after the first deployments: ensure_fixed_tables adds them to an existing ledger.
    ("ROWS_FLAGGED", "NUMBER(19,0)"),  # rows loaded with OUT_OF_RANGE_FEATURES set (pipeline.plausibility)
    ("RESCORE_OF", "VARCHAR(36)"),  # a rescore: the load id of the version's earlier load; NULL: an ordinary load
]
REJECTED_AT = ("REJECTED_AT", "TIMESTAMP_TZ")


class _SchemaStatements(_Statements):
    """The DDL of a batch: the fixed tables once per container, the target when a file brings new columns."""

    def ensure_fixed_tables(self) -> None:
        self._create(self._s.ledger_table, LEDGER_COLUMNS)
        self._add_missing_columns(self._s.ledger_table, LEDGER_COLUMNS)  # a ledger from before ROWS_FLAGGED, RESCORE_OF
        self._create(self._s.rejects_table, [*REJECT_COLUMNS, REJECTED_AT])
        self._create(self._s.monitoring_table, MONITORING_COLUMNS)
        self._add_missing_columns(self._s.monitoring_table, MONITORING_COLUMNS)  # one from before the challenger

    def _create(self, table: str, columns: list[tuple[str, str]]) -> None:
        cols = ", ".join(f"{validate_identifier(n)} {t}" for n, t in columns)
        self._ddl(f"CREATE TABLE IF NOT EXISTS {self._fq(table)} ({cols})", what=f"create {table}")

    def ensure_target(self, columns: list[tuple[str, str]]) -> None:
        """Create the target with explicit types if missing; add new (nullable) columns a file brings.

        Two deliveries may both find a column missing and both add it: ``ADD COLUMN IF NOT EXISTS`` makes the
        second a no-op (the INFORMATION_SCHEMA read only saves the statements for columns that exist). A warm
        container that has seen these columns runs nothing.
        """
        table = self._s.target_table
        if self._schema.has(table, columns):
            return
        self._create(table, columns)
        existing = self._add_missing_columns(table, columns)
        self._schema.columns[table] = existing | {name for name, _ in columns}

    def _add_missing_columns(self, table: str, columns: list[tuple[str, str]]) -> set[str]:
        """Add the (nullable) ``columns`` an existing ``table`` lacks; return the columns it had."""
        try:
            cur = self._execute(
                "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                (self._s.schema_name, table),
                what=f"describe {table}",
            )
        except PermanentError as exc:
            raise SchemaEvolutionError(str(exc)) from exc
        existing = {str(r[0]).upper() for r in cur.fetchall()}
        for name, sql_type in columns:
            if name not in existing:
                self._ddl(
                    f"ALTER TABLE {self._fq(table)} ADD COLUMN IF NOT EXISTS "
                    f"{validate_identifier(name)} {sql_type.replace(' NOT NULL', '')}",
                    what=f"evolve {table} (add {name})",
                )
        return existing
