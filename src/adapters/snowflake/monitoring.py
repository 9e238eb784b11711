"""The monitoring table's one row per load (MONITORING_COLUMNS), inserted in the batch's publish transaction: it
commits with the load's rows and ledger row or not at all, so a duplicate delivery (which publishes nothing) adds
none. One INSERT for the whole batch, before the ledger lock is taken (it adds no statement under the lock)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from adapters.snowflake.statements import _Statements, _values
from pipeline.errors import PermanentError, WarehouseUnavailableError
from pipeline.ports import MONITORING_COLUMNS, Outcome

_LINEAGE = ("LOAD_ID", "SOURCE_BUCKET", "SOURCE_KEY", "SOURCE_VERSION", "MODEL_VERSION")
# The values the pipeline gives (monitoring.LoadMonitoring.columns), in the table's order, and how each is read
# from the VALUES list (a column of NULLs only has no type of its own).
_MEASURED = [(name, sql_type) for name, sql_type in MONITORING_COLUMNS if name not in {*_LINEAGE, "MONITORED_AT"}]
_NOTHING_SCORED = {"ROWS_SCORED": 0, "DRIFT_DETAIL": '{"not_tested": "nothing of the file was loaded"}'}


def _read(name: str, sql_type: str) -> str:
    if sql_type == "VARIANT":
        return f"PARSE_JSON(v.{name})"
    return f"CAST(v.{name} AS {sql_type.replace(' NOT NULL', '')})"


def _value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class _MonitoringStatements(_Statements):
    def _insert_monitoring(self, outcomes: Sequence[Outcome]) -> None:
        """One monitoring row per outcome (LOADED or FAILED). A refusal is the table's, never the file's: it is
        retried (the message comes back, then the dead-letter queue), so a misconfigured monitoring table never
        records a file FAILED; the load waits until its row can be written with it."""
        if not outcomes:
            return
        values: list[Any] = []
        for outcome in outcomes:
            i = outcome.staging.identity
            measured = outcome.monitoring if outcome.monitoring is not None else _NOTHING_SCORED
            values += [i.load_id, i.bucket, i.key, i.version, outcome.model_version]
            values += [_value(measured.get(name)) for name, _ in _MEASURED]
        names = [*_LINEAGE, *(name for name, _ in _MEASURED)]
        select = [f"v.{name}" for name in _LINEAGE] + [_read(name, sql_type) for name, sql_type in _MEASURED]
        try:
            self._execute(
                f"INSERT INTO {self._fq(self._s.monitoring_table)} ({', '.join(_LINEAGE)}, MONITORED_AT, "
                f"{', '.join(name for name, _ in _MEASURED)}) "
                f"SELECT {', '.join(select[: len(_LINEAGE)])}, CURRENT_TIMESTAMP(), "
                f"{', '.join(select[len(_LINEAGE) :])} "
                f"FROM (VALUES {_values(len(outcomes), len(names))}) AS v({', '.join(names)})",
                tuple(values),
                what="publish monitoring",
                dml=True,
            )
        except PermanentError as exc:
            raise WarehouseUnavailableError(
                f"{exc}; the monitoring table ({self._s.monitoring_table}) refused the batch's rows: nothing was "
                "published, and the batch is retried (check the role's INSERT privilege on it)",
                reason="monitoring_table_refused",
            ) from exc
