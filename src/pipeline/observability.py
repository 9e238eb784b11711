"""The function's logger and metrics (Powertools), shared by the pipeline and the handler's decorators."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "tumour-scoring")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "TumourScoring")
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE)


def monitored(result: Any) -> None:
    """One loaded file's monitoring as metrics: ``DriftDetected`` (1 or 0) and ``EstimatedAccuracy``, each once
    for the service (what the template's alarms watch) and once per ``ModelVersion`` (to compare versions). A file
    monitoring could not test emits neither; one whose monitoring failed is logged (its rows loaded)."""
    if result.monitoring_failed:
        logger.warning(
            "monitoring failed for this file; its rows loaded", extra={"monitoring": result.monitoring_failed}
        )
    values: list[tuple[str, MetricUnit, float]] = []
    if result.drift_detected is not None:
        values.append(("DriftDetected", MetricUnit.Count, float(result.drift_detected)))
    if result.estimated_accuracy is not None:
        values.append(("EstimatedAccuracy", MetricUnit.NoUnit, float(result.estimated_accuracy)))
    if result.challenger_agreement is not None:
        values.append(("ChallengerAgreement", MetricUnit.NoUnit, float(result.challenger_agreement)))
    for name, unit, value in values:
        metrics.add_metric(name=name, unit=unit, value=value)
        if _metrics_disabled():  # single_metric prints at once; Metrics itself checks at flush
            continue
        dimensions = {"service": SERVICE, "ModelVersion": str(result.model_version)}
        with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE, default_dimensions=dimensions):
            pass


def _metrics_disabled() -> bool:
    """POWERTOOLS_METRICS_DISABLED, as Powertools reads it (the local tools set it: no metrics blob on stdout)."""
    return os.environ.get("POWERTOOLS_METRICS_DISABLED", "false").strip().lower() in {"1", "true", "yes", "on"}
