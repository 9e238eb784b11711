"""What `make report` reads: the monitoring table (one row per load), with each load's status from the ledger.

The table is named by ``MONITORING_TABLE`` (default ``TUMOUR_SCORE_MONITORING``) and the ledger by
``LEDGER_TABLE`` (default ``TUMOUR_SCORE_LOADS``), in the connection's database and schema, as the function names
them. The ledger is optional: without it the report shows no status.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tools.commands.connection import Connection

MONITORING_TABLE = "TUMOUR_SCORE_MONITORING"
LEDGER_TABLE = "TUMOUR_SCORE_LOADS"
COLUMNS = (
    "LOAD_ID, SOURCE_BUCKET, SOURCE_KEY, SOURCE_VERSION, MODEL_VERSION, MONITORED_AT, ROWS_SCORED, DRIFT_DETECTED, "
    "DRIFT_SCORE, DRIFTED_FEATURES, ESTIMATED_ACCURACY, ESTIMATED_ACCURACY_LOW, ESTIMATED_ACCURACY_HIGH, "
    "PREDICTED_MALIGNANT_SHARE, REFERENCE_MALIGNANT_SHARE, DRIFT_DETAIL"
)


class NothingToReportError(Exception):
    """No monitoring table, or no row in it (for the model version asked for): one line for the user."""


@dataclass(frozen=True)
class MonitoredLoad:
    """One row of the monitoring table, typed; ``status`` from the ledger (None: no ledger, or no final row)."""

    load_id: str
    bucket: str
    key: str
    version: str
    model_version: str
    monitored_at: datetime  # UTC
    rows_scored: int
    drift_detected: bool | None  # None: not tested
    drift_score: float | None
    drifted_features: tuple[str, ...]
    accuracy: float | None
    accuracy_low: float | None
    accuracy_high: float | None
    malignant_share: float | None
    reference_share: float | None
    feature_scores: dict[str, float] = field(default_factory=dict)  # DRIFT_DETAIL's per-feature scores
    not_tested: str | None = None  # DRIFT_DETAIL's reason when drift was not tested
    status: str | None = None


@dataclass(frozen=True)
class MonitoringRead:
    table: str  # DATABASE.SCHEMA.TABLE
    ledger: str | None  # the ledger joined for the status; None: there is none
    loads: list[MonitoredLoad]  # oldest first

    def model_versions(self) -> list[str]:
        """The model versions read, the one with the most recent load first."""
        latest: dict[str, datetime] = {}
        for load in self.loads:
            latest[load.model_version] = max(load.monitored_at, latest.get(load.model_version, load.monitored_at))
        return sorted(latest, key=lambda version: (latest[version], version), reverse=True)


def read_monitoring(
    connection: Connection,
    *,
    monitoring_table: str = MONITORING_TABLE,
    ledger_table: str = LEDGER_TABLE,
    model_version: str | None = None,
    last: int | None = None,
) -> MonitoringRead:
    """The loads of ``model_version`` (all when None), the ``last`` most recent only (all when None)."""
    cur = connection.conn.cursor()
    table, ledger = connection.table(monitoring_table), connection.table(ledger_table)
    cur.execute(
        f"SELECT TABLE_NAME FROM {connection.database}.INFORMATION_SCHEMA.TABLES "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME IN (%s, %s)",
        (connection.schema, monitoring_table, ledger_table),
    )
    found = {str(row[0]).upper() for row in cur.fetchall()}
    if monitoring_table not in found:
        raise NothingToReportError(
            f"no table {table}: nothing has been monitored there yet (set MONITORING_TABLE if it has another name)"
        )
    joined = ledger_table in found
    status_join = (
        f" LEFT JOIN (SELECT LOAD_ID, MAX(STATUS) AS STATUS FROM {ledger} WHERE STATUS IN ('LOADED', 'FAILED') "
        "GROUP BY LOAD_ID) AS l ON l.LOAD_ID = m.LOAD_ID"
        if joined
        else ""
    )
    where, params = (" WHERE m.MODEL_VERSION = %s", (model_version,)) if model_version is not None else ("", ())
    limit = f" LIMIT {int(last)}" if last is not None else ""
    cur.execute(
        f"SELECT {', '.join('m.' + c.strip() for c in COLUMNS.split(','))}, {'l.STATUS' if joined else 'NULL'} "
        f"AS STATUS FROM {table} AS m{status_join}{where} ORDER BY m.MONITORED_AT DESC, m.LOAD_ID DESC{limit}",
        params,
    )
    names = [d[0].upper() for d in cur.description]
    loads = [_load(dict(zip(names, row, strict=True))) for row in reversed(cur.fetchall())]
    if not loads:
        raise NothingToReportError(_why_empty(cur, table, model_version))
    return MonitoringRead(table, ledger if joined else None, loads)


def _why_empty(cur: Any, table: str, model_version: str | None) -> str:
    if model_version is None:
        return f"the table {table} has no rows: no load has been monitored yet"
    cur.execute(f"SELECT DISTINCT MODEL_VERSION FROM {table} ORDER BY 1")
    versions = ", ".join(str(row[0]) for row in cur.fetchall())
    return f"the table {table} has no rows for model version {model_version!r} (it has: {versions or 'none'})"


def _load(row: Mapping[str, Any]) -> MonitoredLoad:
    detail = _json(row["DRIFT_DETAIL"])
    features = detail.get("features")
    return MonitoredLoad(
        load_id=str(row["LOAD_ID"]),
        bucket=str(row["SOURCE_BUCKET"] or ""),
        key=str(row["SOURCE_KEY"] or ""),
        version=str(row["SOURCE_VERSION"] or ""),
        model_version=str(row["MODEL_VERSION"] or ""),
        monitored_at=_utc(row["MONITORED_AT"]),
        rows_scored=int(row["ROWS_SCORED"] or 0),
        drift_detected=None if row["DRIFT_DETECTED"] is None else bool(row["DRIFT_DETECTED"]),
        drift_score=_float(row["DRIFT_SCORE"]),
        drifted_features=tuple(f.strip() for f in str(row["DRIFTED_FEATURES"] or "").split(",") if f.strip()),
        accuracy=_float(row["ESTIMATED_ACCURACY"]),
        accuracy_low=_float(row["ESTIMATED_ACCURACY_LOW"]),
        accuracy_high=_float(row["ESTIMATED_ACCURACY_HIGH"]),
        malignant_share=_float(row["PREDICTED_MALIGNANT_SHARE"]),
        reference_share=_float(row["REFERENCE_MALIGNANT_SHARE"]),
        feature_scores=_feature_scores(features) if isinstance(features, dict) else {},
        not_tested=str(detail["not_tested"]) if detail.get("not_tested") else None,
        status=str(row["STATUS"]) if row.get("STATUS") else None,
    )


def _json(value: Any) -> dict[str, Any]:
    """A VARIANT as the connector returns it (JSON text), or already parsed; {} when unreadable."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _feature_scores(features: dict[str, Any]) -> dict[str, float]:
    scores = {}
    for name, entry in features.items():
        score = _float(entry.get("score")) if isinstance(entry, dict) else None
        scores[str(name)] = math.nan if score is None else score
    return scores


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"MONITORED_AT is not a timestamp: {type(value).__name__}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
