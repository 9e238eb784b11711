"""Every object an event names, through the pipeline: the per-record loop, the results, the partial-batch response.

SQS events go through Powertools' BatchProcessor, one message at a time: a message fails (comes back in
``batchItemFailures``, and ends in the queue's DLQ once its retries are spent) when it is malformed or when one of
its objects raised a PipelineError; the rest of the batch loads. Other shapes (S3, SNS, EventBridge) are read
whole; after every object has been tried, the first PipelineError is raised so that Lambda's retries apply.
An error that is not a PipelineError (a bug) still fails the whole invocation.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from pipeline.errors import PipelineError
from pipeline.events import ParsedEvent, add_record, parse_event, sqs_records
from pipeline.observability import logger, metrics
from pipeline.ports import ObjectRef
from pipeline.process import ObjectResult


class ObjectProcessor(Protocol):
    """What loads one object (pipeline.process.Pipeline; a stand-in in unit tests)."""

    def process(self, ref: ObjectRef) -> ObjectResult: ...


class MessageFailedError(Exception):
    """An SQS message that must come back to the queue: malformed, or one of its objects was not loaded."""


def handle(event: dict[str, Any], pipeline: ObjectProcessor) -> dict[str, Any]:
    """Process every object an event names; raise only when a retry can help (after doing all the others)."""
    run = _Run(pipeline)
    records = sqs_records(event)
    if records is None:
        run.parsed = parse_event(event)
        run.report_skips(0)
        for item in run.parsed.objects:
            run.load(item.ref)
        summary = run.summary()
        if run.first_error is not None:
            raise run.first_error
        return summary
    processor = BatchProcessor(EventType.SQS, raise_on_entire_batch_failure=False)
    run.parsed = ParsedEvent("sqs")
    index = itertools.count()
    with processor(records, lambda record: run.message(next(index), record)):
        processor.process()
    summary = run.summary()
    unexpected = [e for _, e, _ in processor.exceptions if e is not None and not isinstance(e, MessageFailedError)]
    if unexpected:
        raise unexpected[0]  # a bug fails the invocation, and the whole batch comes back
    # Partial batch response (ReportBatchItemFailures): only the failed messages come back.
    return summary | dict(processor.response())


@dataclass
class _Run:
    pipeline: ObjectProcessor
    parsed: ParsedEvent = field(default_factory=lambda: ParsedEvent("unknown"))
    results: list[dict[str, Any]] = field(default_factory=list)
    first_error: PipelineError | None = None

    def message(self, index: int, record: SQSRecord) -> None:
        """One SQS message: its objects loaded; MessageFailedError if it is malformed or any of them failed."""
        objects, skipped, bad = len(self.parsed.objects), len(self.parsed.skipped), len(self.parsed.bad_messages)
        add_record(self.parsed, index, record.raw_event)
        self.report_skips(skipped)
        errors = [self.load(item.ref) for item in self.parsed.objects[objects:]]
        if len(self.parsed.bad_messages) > bad or any(errors):
            raise MessageFailedError(record.message_id)

    def report_skips(self, start: int) -> None:
        for reason in self.parsed.skipped[start:]:
            if reason in self.parsed.malformed:
                # Loud: a malformed record loads nothing; only the logs, a metric and (for SQS) the DLQ keep it.
                logger.error("malformed event record skipped", extra={"skipped": reason})
            else:
                logger.info("event record skipped", extra={"skipped": reason})

    def load(self, ref: ObjectRef) -> bool:
        """Load one object; True if it raised a PipelineError (recorded as an error result)."""
        logger.append_keys(s3_bucket=ref.bucket, s3_key=ref.key, s3_version=ref.version)
        try:
            result = self.pipeline.process(ref)
        except PipelineError as exc:
            logger.exception(
                "object not loaded; will be retried", extra={"reason_code": exc.reason, "retriable": exc.retriable}
            )
            metrics.add_metric(name="ObjectsErrored", unit=MetricUnit.Count, value=1)
            self.results.append(
                {
                    "bucket": ref.bucket,
                    "key": ref.key,
                    "version": ref.version,
                    "status": "error",
                    "reason_code": exc.reason,
                    "reason": str(exc),
                }
            )
            self.first_error = self.first_error or exc
            return True
        finally:
            logger.remove_keys(["s3_bucket", "s3_key", "s3_version"])
        metrics.add_metric(name=f"Objects_{result.status}", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="RowsLoaded", unit=MetricUnit.Count, value=result.rows_loaded)
        metrics.add_metric(name="RowsRejected", unit=MetricUnit.Count, value=result.rows_rejected)
        # Loaded and scored, but with a value far beyond the model's training range (OUT_OF_RANGE_FEATURES).
        metrics.add_metric(name="RowsFlagged", unit=MetricUnit.Count, value=result.rows_flagged)
        logger.info(
            "object processed",
            extra={k: v for k, v in result.as_dict().items() if k not in {"reason"}} | {"reason": result.reason},
        )
        self.results.append(result.as_dict())
        return False

    def summary(self) -> dict[str, Any]:
        if self.parsed.malformed:
            metrics.add_metric(name="MalformedRecords", unit=MetricUnit.Count, value=len(self.parsed.malformed))
        if expected_skips := len(self.parsed.skipped) - len(self.parsed.malformed):
            # Counted, so that an event with nothing to load (a test event, a delete) flushes a metric instead of
            # Powertools' "No application metrics to publish" warning.
            metrics.add_metric(name="RecordsSkipped", unit=MetricUnit.Count, value=expected_skips)
        return {
            "objects": self.results,
            "skipped": self.parsed.skipped,
            "malformed": self.parsed.malformed,
            "rows_loaded": sum(r.get("rows_loaded", 0) for r in self.results),
            "rows_rejected": sum(r.get("rows_rejected", 0) for r in self.results),
            "rows_flagged": sum(r.get("rows_flagged", 0) for r in self.results),
        }
