"""Lambda entry point: ``handler.app.lambda_handler``.

Thin on purpose: decorators, event parsing, one call into the pipeline per object, a summary back.
The model, settings and clients are built at init (container start), not on the first event.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from adapters.s3 import S3Source
from adapters.secrets import SecretsProvider
from adapters.snowflake import SnowflakeWarehouse
from handler.events import parse_event
from pipeline.errors import ConfigurationError, PipelineError
from pipeline.process import ObjectResult, Pipeline
from pipeline.settings import get_settings
from scoring import Scorer

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "tumour-scoring"))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "TumourScoring"))
tracer = Tracer()

_S3_CONFIG = Config(retries={"max_attempts": 5, "mode": "adaptive"}, connect_timeout=5, read_timeout=60)


@lru_cache(maxsize=1)
def build_pipeline() -> Pipeline:
    """Everything an invocation needs, built once per container."""
    settings = get_settings()
    scorer = Scorer.load(settings.model_dir, threshold=settings.decision_threshold)
    secrets = SecretsProvider(settings.secret_name)
    return Pipeline(
        settings=settings,
        scorer=scorer,
        source=S3Source(boto3.client("s3", config=_S3_CONFIG)),
        warehouse=SnowflakeWarehouse(settings, secrets.credentials),
    )


def _init() -> None:
    try:
        build_pipeline()
    except ConfigurationError:
        # Reported, with the variable's name, on every invocation until the configuration is fixed.
        logger.exception("configuration invalid at init")


_init()


def handle(event: dict[str, Any], pipeline: Pipeline) -> dict[str, Any]:
    """Process every object an event names; raise only when a retry can help (after doing all the others)."""
    parsed = parse_event(event)
    for reason in parsed.skipped:
        if reason in parsed.malformed:
            # Loud: a malformed record loads nothing, and only the logs, this metric and (for SQS) the DLQ keep it.
            logger.error("malformed event record skipped", extra={"skipped": reason})
        else:
            logger.info("event record skipped", extra={"skipped": reason})
    if parsed.malformed:
        metrics.add_metric(name="MalformedRecords", unit=MetricUnit.Count, value=len(parsed.malformed))
    if expected_skips := len(parsed.skipped) - len(parsed.malformed):
        # Counted, so that an event with nothing to load (a test event, a delete) flushes a metric instead of
        # Powertools' "No application metrics to publish" warning.
        metrics.add_metric(name="RecordsSkipped", unit=MetricUnit.Count, value=expected_skips)
    results: list[dict[str, Any]] = []
    failed_messages: list[str] = list(parsed.bad_messages)
    first_error: BaseException | None = None

    for item in parsed.objects:
        ref = item.ref
        logger.append_keys(s3_bucket=ref.bucket, s3_key=ref.key, s3_version=ref.version)
        try:
            result: ObjectResult = pipeline.process(ref)
        except PipelineError as exc:
            logger.exception(
                "object not loaded; will be retried",
                extra={"reason_code": exc.reason, "retriable": exc.retriable},
            )
            metrics.add_metric(name="ObjectsErrored", unit=MetricUnit.Count, value=1)
            results.append(
                {
                    "bucket": ref.bucket,
                    "key": ref.key,
                    "version": ref.version,
                    "status": "error",
                    "reason_code": exc.reason,
                    "reason": str(exc),
                }
            )
            if item.message_id:
                failed_messages.append(item.message_id)
            first_error = first_error or exc
            continue
        finally:
            logger.remove_keys(["s3_bucket", "s3_key", "s3_version"])
        _record_metrics(result)
        logger.info(
            "object processed",
            extra={k: v for k, v in result.as_dict().items() if k not in {"reason"}} | {"reason": result.reason},
        )
        results.append(result.as_dict())

    summary: dict[str, Any] = {
        "objects": results,
        "skipped": parsed.skipped,
        "malformed": parsed.malformed,
        "rows_loaded": sum(r.get("rows_loaded", 0) for r in results),
        "rows_rejected": sum(r.get("rows_rejected", 0) for r in results),
        "rows_flagged": sum(r.get("rows_flagged", 0) for r in results),
    }
    if parsed.shape == "sqs":
        # Partial batch response: only the failed messages come back (ReportBatchItemFailures); a malformed
        # message is one of them, so it ends in the queue's DLQ while the rest of the batch loads.
        summary["batchItemFailures"] = [{"itemIdentifier": m} for m in dict.fromkeys(failed_messages)]
    elif first_error is not None:
        raise first_error
    return summary


def _record_metrics(result: ObjectResult) -> None:
    metrics.add_metric(name=f"Objects_{result.status}", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="RowsLoaded", unit=MetricUnit.Count, value=result.rows_loaded)
    metrics.add_metric(name="RowsRejected", unit=MetricUnit.Count, value=result.rows_rejected)
    # Loaded and scored, but with a value far beyond the model's training range (OUT_OF_RANGE_FEATURES).
    metrics.add_metric(name="RowsFlagged", unit=MetricUnit.Count, value=result.rows_flagged)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, build_pipeline())
