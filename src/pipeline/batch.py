"""Every object an event names, through the pipeline: the per-record loop, the results, the partial-batch response.

All the objects an event names load as one batch (Pipeline.process_batch: one claim, one publish transaction,
one ledger lock). SQS events then go through Powertools' BatchProcessor, which settles each message: a message
fails (comes back in ``batchItemFailures``, and ends in the queue's DLQ once its retries are spent) when it is
malformed or when one of its objects was not loaded; the others are deleted. Other shapes (S3, SNS,
EventBridge): after every object has been tried, the first PipelineError is raised so that Lambda's retries apply.
An error that is not a PipelineError (a bug) still fails the whole invocation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from pipeline.errors import PipelineError
from pipeline.events import ParsedEvent, parse_event, sqs_records
from pipeline.observability import logger, metrics, monitored
from pipeline.ports import ObjectRef
from pipeline.process import ObjectResult, TimeLeft


class ObjectProcessor(Protocol):
    """What loads the objects of a batch (pipeline.process.Pipeline; a stand-in in unit tests)."""

    def process_batch(
        self, refs: Sequence[ObjectRef], time_left: TimeLeft | None = None
    ) -> list[ObjectResult | PipelineError]: ...


class MessageFailedError(Exception):
    """An SQS message that must come back to the queue: malformed, or one of its objects was not loaded."""


def handle(event: dict[str, Any], pipeline: ObjectProcessor, time_left: TimeLeft | None = None) -> dict[str, Any]:
    """Process every object an event names; raise only when a retry can help (after doing all the others).

    ``time_left`` (seconds left in the invocation) keeps a publish from starting when a timeout could cut it off.
    """
    # Every record is parsed first (SQS messages too), so that all the event's objects load together (one publish
    # transaction); for SQS, Powertools' BatchProcessor then settles each message from its objects' results.
    run = _Run(pipeline, parse_event(event), time_left)
    run.report_skips()
    run.load_all()
    records = sqs_records(event)
    if records is None:
        summary = run.summary()
        if run.first_error is not None:
            raise run.first_error
        return summary
    processor = BatchProcessor(EventType.SQS, raise_on_entire_batch_failure=False)
    with processor(records, run.settle):
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
    parsed: ParsedEvent
    time_left: TimeLeft | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    first_error: PipelineError | None = None
    failed_messages: set[str] = field(default_factory=set)

    def settle(self, record: SQSRecord) -> None:
        """One SQS message: MessageFailedError if it is malformed or any of its objects was not loaded."""
        if record.message_id in self.failed_messages or record.message_id in self.parsed.bad_messages:
            raise MessageFailedError(record.message_id)

    def report_skips(self) -> None:
        for reason in self.parsed.skipped:
            if reason in self.parsed.malformed:
                # Loud: a malformed record loads nothing; only the logs, a metric and (for SQS) the DLQ keep it.
                logger.error("malformed event record skipped", extra={"skipped": reason})
            else:
                logger.info("event record skipped", extra={"skipped": reason})

    def load_all(self) -> None:
        """Every object of the event, as one batch; each result reported, each error held against its message."""
        items = self.parsed.objects
        if not items:
            return
        outcomes = self.pipeline.process_batch([item.ref for item in items], self.time_left)
        for item, outcome in zip(items, outcomes, strict=True):
            if isinstance(outcome, PipelineError):
                self.error(item.ref, outcome)
                if item.message_id is not None:
                    self.failed_messages.add(item.message_id)
            else:
                self.loaded(item.ref, outcome)

    def error(self, ref: ObjectRef, exc: PipelineError) -> None:
        with _object_keys(ref):
            logger.error(
                "object not loaded; will be retried",
                extra={"reason_code": exc.reason, "retriable": exc.retriable, "error": type(exc).__name__},
                exc_info=exc,
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

    def loaded(self, ref: ObjectRef, result: ObjectResult) -> None:
        metrics.add_metric(name=f"Objects_{result.status}", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="RowsLoaded", unit=MetricUnit.Count, value=result.rows_loaded)
        metrics.add_metric(name="RowsRejected", unit=MetricUnit.Count, value=result.rows_rejected)
        # Loaded and scored, but with a value far beyond the model's training range (OUT_OF_RANGE_FEATURES).
        metrics.add_metric(name="RowsFlagged", unit=MetricUnit.Count, value=result.rows_flagged)
        if result.status == "loaded":
            monitored(result)
        with _object_keys(ref):
            logger.info(
                "object processed",
                extra={k: v for k, v in result.as_dict().items() if k not in {"reason"}} | {"reason": result.reason},
            )
        self.results.append(result.as_dict())

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


@contextmanager
def _object_keys(ref: ObjectRef) -> Iterator[None]:
    logger.append_keys(s3_bucket=ref.bucket, s3_key=ref.key, s3_version=ref.version)
    try:
        yield
    finally:
        logger.remove_keys(["s3_bucket", "s3_key", "s3_version"])
