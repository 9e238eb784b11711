"""The SQS event source mapping, locally: the ingest queue -> at most N concurrent copies of the function.

What Lambda does for the deployed stack (template.yaml: the function's SQS event, IngestQueue and its DLQ), this
does on the local stack (local_stack.py, wired by local_queue.py), with the values read from
template.yaml and overridable (``QueueSettings.from_template(visibility_timeout=1)``):

* ``maximum_concurrency`` copies of the function, each a thread with a Pipeline of its own (its own S3 client and
  Snowflake connection, composed by handler/app.py's ``compose_pipeline``; the scorer is shared), built on the
  copy's first batch. Copy 0 is the handler module's own pipeline (``build_pipeline``, made at import as at init);
* each copy long-polls ReceiveMessage, gathers up to ``batch_size`` messages within ``batching_window_seconds``,
  builds the SQS event exactly as Lambda delivers it and calls ``pipeline.batch.handle(event, pipeline)``: the call
  ``lambda_handler`` makes;
* the partial-batch response (ReportBatchItemFailures) is honoured: the messages not in ``batchItemFailures`` are
  deleted, the others come back after ``visibility_timeout``; an exception, or an ``itemIdentifier`` that is not in
  the batch, fails the whole batch, as on Lambda. After ``max_receive_count`` receives SQS itself (the queue's
  redrive policy, on moto) moves a message to the DLQ.

Differences from Lambda, on purpose: ReceiveMessage waits ``receive_wait_seconds`` (1 s by default, Lambda 20 s;
0 = short polls 50 ms apart, what make demo / make score use) so that a run stops soon after its condition
holds; copies do not scale up gradually (all N poll from the start); metrics are dropped after each
invocation (no CloudWatch locally; Powertools' Metrics is one per process).
Development only: nothing here is shipped.

    python -m tools.emulated.poller --until-empty    # drain the queue of a running `make local-stack` (ports 4566/4567)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tools.emulated.local_queue import Queues, QueueSettings
from tools.emulated.s3_events import sqs_record

FINAL_STATUSES = frozenset({"loaded", "duplicate", "failed"})
SQS_MAX_MESSAGES = 10  # per ReceiveMessage / DeleteMessageBatch call
SHORT_POLL_PAUSE = 0.05  # seconds between empty receives when receive_wait_seconds is 0


# --- what the function answers ----------------------------------------------------------------------------------
def failed_message_ids(response: Any, batch: list[str]) -> set[str] | None:
    """The messages a response sends back to the queue; None when the whole batch failed (Lambda's rules for
    ReportBatchItemFailures: an identifier that is missing, empty or not in the batch fails the batch)."""
    if not isinstance(response, dict) or not response.get("batchItemFailures"):
        return set()
    failures = response["batchItemFailures"]
    if not isinstance(failures, list):
        return None
    ids = {f.get("itemIdentifier") if isinstance(f, dict) else None for f in failures}
    if not ids <= set(batch):
        return None
    return {str(i) for i in ids}


# --- what a run did --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Invocation:
    """One batch through one copy of the function."""

    copy: int
    message_ids: tuple[str, ...]
    receive_counts: tuple[int, ...]
    response: dict[str, Any] | None  # None when it raised
    error: BaseException | None
    deleted: tuple[str, ...]
    failed: tuple[str, ...]  # back to the queue (all of them when it raised)
    seconds: float

    @property
    def objects(self) -> list[dict[str, Any]]:
        return list((self.response or {}).get("objects", []))


@dataclass
class PollReport:
    invocations: list[Invocation] = field(default_factory=list)
    in_dlq: int = 0  # messages in the DLQ when the run ended
    timed_out: bool = False
    seconds: float = 0.0

    @property
    def messages_deleted(self) -> int:
        return sum(len(i.deleted) for i in self.invocations)

    @property
    def messages_failed(self) -> int:
        """Deliveries that went back to the queue (one message failing three times counts three)."""
        return sum(len(i.failed) for i in self.invocations)

    def objects(self) -> list[dict[str, Any]]:
        """Every object result of every invocation, in the order the invocations ended."""
        return [obj for i in self.invocations for obj in i.objects]

    def as_dict(self) -> dict[str, Any]:
        return {
            "invocations": len(self.invocations),
            "messages_deleted": self.messages_deleted,
            "messages_failed": self.messages_failed,
            "in_dlq": self.in_dlq,
            "errors": sum(1 for i in self.invocations if i.error is not None),
            "timed_out": self.timed_out,
            "seconds": round(self.seconds, 3),
        }


# --- stop conditions -------------------------------------------------------------------------------------------
def objects_done(keys: Iterable[str], statuses: Iterable[str] = FINAL_STATUSES) -> Callable[[Poller], bool]:
    """Until each key has an object result with one of ``statuses`` (default: loaded, duplicate or failed; add
    "error" to stop at a retriable error too)."""
    wanted, accepted = set(keys), set(statuses)

    def done(poller: Poller) -> bool:
        seen = {o["key"] for o in poller.report.objects() if o.get("status") in accepted}
        return wanted <= seen

    return done


def any_raised(poller: Poller) -> bool:
    """Until an invocation raised (its whole batch went back to the queue)."""
    return any(i.error is not None for i in poller.report.invocations)


def queue_drained(poller: Poller) -> bool:
    """Until nothing is left: no message visible, in flight or delayed in the queue, and no invocation running.

    The depth is read twice, before and after the copies are seen idle (that order: Poller._busy_with_a_batch).
    moto computes the visible and the in-flight counts at two instants, so a message whose visibility timeout ends
    between them is in neither, and one read can say 0 while a failed message waits to come back (the poller then
    stopped before the receive that moves it to the DLQ). It crosses that line once: the second read counts it."""
    return poller.queue_depth() == 0 and poller.idle() and poller.queue_depth() == 0


# --- the poller ------------------------------------------------------------------------------------------------
PipelineFactory = Callable[[int], Any]


def handler_copies() -> PipelineFactory:
    """Copy 0 is handler.app's own pipeline (built at import, as at Lambda's init); copy n > 0 is another one
    composed the same way (``compose_pipeline``) around the same scorer. Reads the environment, as the handler."""
    from handler import app
    from pipeline.settings import get_settings

    def make(copy: int) -> Any:
        first = app.build_pipeline()
        return first if copy == 0 else app.compose_pipeline(get_settings(), first.scorer, first.challenger)

    return make


class Poller:
    """Lambda's SQS event source mapping for one queue, with ``settings.maximum_concurrency`` function copies."""

    def __init__(
        self,
        stack: Any,
        queues: Queues,
        settings: QueueSettings | None = None,
        *,
        pipelines: PipelineFactory | None = None,
        receive_wait_seconds: int = 1,
        progress: bool = False,
    ) -> None:
        self.queues = queues
        self.settings = settings or QueueSettings.from_template()
        self.receive_wait_seconds = receive_wait_seconds
        self.progress = progress
        self.report = PollReport()
        self._make_pipeline = pipelines
        self._pipelines: dict[int, Any] = {}
        self._sqs = stack.client("sqs")  # one client for every copy: boto3's clients are thread-safe
        self._lock = threading.Lock()
        self._busy = 0  # copies holding received messages (receiving a batch or invoking)
        self._stop = threading.Event()
        self._errors: list[BaseException] = []

    def __enter__(self) -> Poller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the Snowflake connections of the copies this poller made (copy 0's reconnects when next used)."""
        for pipeline in self._pipelines.values():
            with contextlib.suppress(Exception):
                pipeline.warehouse.close()
        self._pipelines.clear()

    # -- state the stop conditions read
    def idle(self) -> bool:
        with self._lock:
            return self._busy == 0

    def queue_depth(self) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        names.append("ApproximateNumberOfMessagesDelayed")
        attrs = self._sqs.get_queue_attributes(QueueUrl=self.queues.url, AttributeNames=names)["Attributes"]
        return sum(int(attrs.get(n, 0)) for n in names)

    def dlq_depth(self) -> int:
        attrs = self._sqs.get_queue_attributes(
            QueueUrl=self.queues.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"])

    # -- the run
    def run(self, until: Callable[[Poller], bool] = queue_drained, *, timeout: float = 300.0) -> PollReport:
        """Poll with every copy until ``until(self)`` holds (checked every 50 ms) or ``timeout`` seconds pass;
        then let the copies finish what they hold and return the report (``in_dlq`` read at the end)."""
        from tqdm import tqdm

        started = time.monotonic()
        self._stop.clear()
        workers = [
            threading.Thread(target=self._copy, args=(n,), name=f"poller-copy-{n}", daemon=True)
            for n in range(self.settings.maximum_concurrency)
        ]
        with tqdm(unit="msg", desc="queue -> function", disable=not self.progress, file=sys.stderr) as bar:
            for worker in workers:
                worker.start()
            try:
                while not self._errors and not until(self):
                    if time.monotonic() - started > timeout:
                        self.report.timed_out = True
                        break
                    done = self.report.messages_deleted + self.report.messages_failed
                    if done != bar.n:
                        bar.update(done - bar.n)
                        bar.set_postfix(invocations=len(self.report.invocations), refresh=False)
                    time.sleep(0.05)
            finally:
                self._stop.set()
                for worker in workers:
                    worker.join()
                bar.update(self.report.messages_deleted + self.report.messages_failed - bar.n)
                bar.set_postfix(invocations=len(self.report.invocations), refresh=False)
        if self._errors:
            raise self._errors[0]
        self.report.in_dlq = self.dlq_depth()
        self.report.seconds = time.monotonic() - started
        return self.report

    def _copy(self, copy: int) -> None:
        sqs = self._sqs
        try:
            while not self._stop.is_set():
                batch = self._receive_batch(sqs)
                if batch:
                    with self._busy_with_a_batch():
                        self._invoke(copy, sqs, batch)
        except BaseException as exc:  # a bug of the poller's own (the function's errors are the batch's outcome)
            self._errors.append(exc)

    @contextlib.contextmanager
    def _busy_with_a_batch(self) -> Iterator[None]:
        """Busy until the batch's messages are deleted and its invocation is in the report. Before that its
        messages count as in flight in the queue, so ``queue_drained`` (depth first, then idle) never stops early."""
        with self._lock:
            self._busy += 1
        try:
            yield
        finally:
            with self._lock:
                self._busy -= 1

    def _receive(self, sqs: Any, wanted: int, wait: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = sqs.receive_message(
            QueueUrl=self.queues.url,
            MaxNumberOfMessages=min(SQS_MAX_MESSAGES, wanted),
            WaitTimeSeconds=wait,
            VisibilityTimeout=self.settings.visibility_timeout,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        return messages

    def _receive_batch(self, sqs: Any) -> list[dict[str, Any]]:
        """Long poll; once a message came, gather up to batch_size within the batching window."""
        batch = self._receive(sqs, self.settings.batch_size, self.receive_wait_seconds)
        if not batch:
            if not self.receive_wait_seconds:
                self._stop.wait(SHORT_POLL_PAUSE)  # short polling: a pause instead of the long poll's wait
            return batch
        deadline = time.monotonic() + self.settings.batching_window_seconds
        while len(batch) < self.settings.batch_size and time.monotonic() < deadline and not self._stop.is_set():
            more = self._receive(sqs, self.settings.batch_size - len(batch), 0)
            batch.extend(more)
            if not more:
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        return batch

    def _pipeline(self, copy: int) -> Any:
        if copy not in self._pipelines:
            with self._lock:  # boto3's default session is not safe to build clients from in parallel
                make = self._make_pipeline or handler_copies()
                self._pipelines[copy] = make(copy)
        return self._pipelines[copy]

    def _invoke(self, copy: int, sqs: Any, batch: list[dict[str, Any]]) -> None:
        from pipeline.batch import handle
        from pipeline.observability import metrics
        from tools.emulated.local_stack import LambdaContext

        ids = [m["MessageId"] for m in batch]
        event = {"Records": [sqs_record(m, self.queues.arn, self.queues.region) for m in batch]}
        started = time.monotonic()
        context = LambdaContext()  # the template's timeout, from now: a publish is not started too near its end
        response: dict[str, Any] | None = None
        error: BaseException | None = None
        try:
            # A copy that cannot be built (a bad setting) fails its invocations, as Lambda's init error does.
            response = handle(
                event, self._pipeline(copy), time_left=lambda: context.get_remaining_time_in_millis() / 1000
            )
            failed = failed_message_ids(response, ids)
        except Exception as exc:  # the function raised: Lambda returns the whole batch to the queue
            error, failed = exc, None
        finally:
            metrics.clear_metrics()
        failed = set(ids) if failed is None else failed
        keep = [m for m in batch if m["MessageId"] not in failed]
        for start in range(0, len(keep), SQS_MAX_MESSAGES):
            entries = [
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                for n, m in enumerate(keep[start : start + SQS_MAX_MESSAGES])
            ]
            sqs.delete_message_batch(QueueUrl=self.queues.url, Entries=entries)
        invocation = Invocation(
            copy=copy,
            message_ids=tuple(ids),
            receive_counts=tuple(int(m.get("Attributes", {}).get("ApproximateReceiveCount", 0)) for m in batch),
            response=response,
            error=error,
            deleted=tuple(m["MessageId"] for m in keep),
            failed=tuple(i for i in ids if i in failed),
            seconds=time.monotonic() - started,
        )
        with self._lock:
            self.report.invocations.append(invocation)


# --- command line: drain the queue of a running `make local-stack` -----------------------------------------------
def main(argv: list[str] | None = None) -> int:
    import os

    from tools.emulated.local_queue import DEAD_LETTER_QUEUE, INGEST_QUEUE
    from tools.emulated.local_stack import REGION, LocalStack

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aws-endpoint", default="http://127.0.0.1:4566", help="moto (make local-stack's)")
    parser.add_argument("--snowflake-host", default="127.0.0.1")
    parser.add_argument("--snowflake-port", type=int, default=4567)
    parser.add_argument("--until-empty", action="store_true", help="stop when the queue is drained (else: Ctrl-C)")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--visibility-timeout", type=int, help="override the template's (seconds)")
    parser.add_argument("--concurrency", type=int, help="override the template's maximum concurrency")
    parser.add_argument("--batching-window", type=float, help="override the template's (seconds)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    settings = QueueSettings.from_template(
        visibility_timeout=args.visibility_timeout,
        maximum_concurrency=args.concurrency,
        batching_window_seconds=args.batching_window,
    )
    stack = LocalStack(args.aws_endpoint, args.snowflake_host, args.snowflake_port, None)
    os.environ.update(stack.function_env())
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    sqs = stack.client("sqs")
    url, dlq_url = (sqs.get_queue_url(QueueName=n)["QueueUrl"] for n in (INGEST_QUEUE, DEAD_LETTER_QUEUE))
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queues = Queues(url=url, arn=arn, dlq_url=dlq_url, dlq_arn=dlq_arn, region=REGION)
    with Poller(stack, queues, settings, progress=not args.quiet) as poller:
        try:
            report = poller.run(queue_drained if args.until_empty else (lambda _: False), timeout=args.timeout)
        except KeyboardInterrupt:
            report = poller.report
    print(json.dumps(report.as_dict(), indent=2))
    return 1 if report.in_dlq or report.timed_out else 0


if __name__ == "__main__":
    sys.exit(main())
