"""The deployed trigger, locally: S3 notification -> ingest queue (-> DLQ) -> the poller's copies of the function.

Each test wires a bucket and two queues of its own from template.yaml (emulated/local_queue.py) and runs the poller
(tools/emulated/poller.py) until the queue is drained. Relies on moto for S3 -> SQS notifications (patched in
emulated/local_stack.py to add versionId and sequencer) and for the redrive to the DLQ after maxReceiveCount receives;
on fakesnow for the tables, read through its plain port; the burst puts the Snowflake lock model
(tools/emulated/snowflake_model.py) between the function and fakesnow.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import pytest

from tests.ledger_invariant import assert_ledger_matches_tables
from tools.emulated.local_queue import Queues, QueueSettings, wire_queue
from tools.emulated.poller import Poller, PollReport, queue_drained
from tools.emulated.snowflake_model import Latency, SnowflakeModel, modelled_snowflake

TEMPLATE = QueueSettings.from_template()


@dataclass
class Wired:
    """A bucket notifying a queue of this test's own, and the function's environment (this test's tables)."""

    harness: Any
    settings: QueueSettings
    queues: Queues
    bucket: str

    def put(self, key: str, body: bytes) -> dict[str, Any]:
        put: dict[str, Any] = self.harness.stack.client("s3").put_object(Bucket=self.bucket, Key=key, Body=body)
        return put

    def poll(self, timeout: float = 120.0) -> PollReport:
        with Poller(self.harness.stack, self.queues, self.settings, receive_wait_seconds=0) as poller:
            return poller.run(queue_drained, timeout=timeout)

    def ledger(self) -> list[tuple[Any, ...]]:
        """The ledger's final rows (LOADED or FAILED), by key."""
        return self.harness.query(
            "SELECT SOURCE_KEY, STATUS, ROWS_LOADED, LOAD_ID FROM {ledger}"
            " WHERE STATUS <> 'STARTED' ORDER BY SOURCE_KEY"
        )

    def started(self) -> list[str]:
        """The keys of the STARTED rows left by attempts that published nothing (docs/exactly-once.md)."""
        return [k for (k,) in self.harness.query("SELECT SOURCE_KEY FROM {ledger} WHERE STATUS = 'STARTED'")]

    def check_ledger(self) -> None:
        """The ledger's counts equal the tables' rows, every load, on one connection to fakesnow's plain port."""
        conn = self.harness.stack.snowflake_connect()
        try:
            assert_ledger_matches_tables(lambda sql: list(conn.cursor().execute(sql).fetchall()), self.harness.tables)
        finally:
            conn.close()


@pytest.fixture
def wire(harness: Any, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Wired]:
    def wired(env: dict[str, str] | None = None, **overrides: Any) -> Wired:
        from handler import app
        from pipeline.settings import get_settings

        suffix = uuid.uuid4().hex[:8]
        settings = QueueSettings.from_template(**overrides)
        bucket = f"queue-test-{suffix}"
        queues = wire_queue(
            harness.stack, settings, bucket=bucket, queue_name=f"ingest-{suffix}", dlq_name=f"dlq-{suffix}"
        )
        for name, value in {**harness.env, **(env or {})}.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        app.build_pipeline.cache_clear()
        return Wired(harness, settings, queues, bucket)

    return wired


def test_a_put_object_reaches_the_queue_as_s3_sends_it_and_loads_once(
    wire: Callable[..., Wired], make_csv: Callable[..., bytes]
) -> None:
    # Given a bucket wired to its queue as template.yaml wires the input bucket (no batching window: one file)
    wired = wire(batching_window_seconds=0)
    key = "incoming/2026/ward 7+a.csv"

    # When a CSV file is put under the prefix, and two objects the filters exclude
    put = wired.put(key, make_csv(30))
    wired.put("incoming/notes.txt", b"not a csv")
    wired.put("elsewhere/x.csv", make_csv(3))

    # Then the queue holds S3's own notification for that one object (read without hiding it from the poller)
    sqs = wired.harness.stack.client("sqs")
    messages = sqs.receive_message(QueueUrl=wired.queues.url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    bodies = [json.loads(m["Body"]) for m in messages]
    assert sorted(b.get("Event", "records") for b in bodies) == ["records", "s3:TestEvent"]
    [record] = next(b["Records"] for b in bodies if "Records" in b)
    assert record["eventSource"] == "aws:s3" and record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["bucket"]["name"] == wired.bucket
    assert record["s3"]["object"]["key"] == "incoming/2026/ward+7%2Ba.csv"  # URL-encoded as S3 does
    assert unquote_plus(record["s3"]["object"]["key"]) == key
    assert record["s3"]["object"]["eTag"] == put["ETag"].strip('"')
    assert record["s3"]["object"]["sequencer"]

    # And when the poller runs until the queue is drained, then twice more
    reports = [wired.poll() for _ in range(3)]

    # Then the first run loaded the object once and deleted both messages; the later ones found nothing
    first = reports[0]
    assert [(o["key"], o["status"], o["rows_loaded"]) for o in first.objects()] == [(key, "loaded", 30)]
    assert (first.messages_deleted, first.messages_failed, first.in_dlq) == (2, 0, 0)
    assert [len(r.invocations) for r in reports[1:]] == [0, 0]
    # And the tables, read through fakesnow's plain port, hold its rows once under one LOADED ledger row
    [(ledger_key, status, rows, load_id)] = wired.ledger()
    assert (ledger_key, status, rows) == (key, "LOADED", 30)
    assert wired.harness.count("target", f"SOURCE_KEY = '{key}'") == 30
    assert wired.harness.count("target", f"LOAD_ID = '{load_id}'") == 30
    wired.check_ledger()


def test_a_bad_message_goes_to_the_dlq_after_max_receive_count_and_the_good_ones_load_once(
    wire: Callable[..., Wired], make_csv: Callable[..., bytes]
) -> None:
    # Given a queue whose failed messages come back after 3 s (the template's maxReceiveCount, batch size and
    # concurrency), two files put in the bucket and one malformed message sent by hand
    wired = wire(visibility_timeout=3, batching_window_seconds=0)
    keys = ["incoming/good-1.csv", "incoming/good-2.csv"]
    for key in keys:
        wired.put(key, make_csv(10))
    sqs = wired.harness.stack.client("sqs")
    bad_body = json.dumps({"Records": [{"eventSource": "aws:s3", "s3": {"bucket": {}}}]})
    bad_id = sqs.send_message(QueueUrl=wired.queues.url, MessageBody=bad_body)["MessageId"]

    # When the poller runs until the queue is drained
    report = wired.poll()

    # Then the bad message was received maxReceiveCount times (in whatever order the copies finished), sent back
    # each time, never deleted, and then moved to the DLQ, the only message there
    with_bad = [i for i in report.invocations if bad_id in i.message_ids]
    receives = sorted(i.receive_counts[i.message_ids.index(bad_id)] for i in with_bad)
    assert receives == list(range(1, TEMPLATE.max_receive_count + 1))
    assert all(bad_id in i.failed for i in with_bad)
    assert report.in_dlq == 1
    [in_dlq] = sqs.receive_message(QueueUrl=wired.queues.dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert (in_dlq["MessageId"], in_dlq["Body"]) == (bad_id, bad_body)
    # And the others (the two notifications and S3's test event, in however many batches the receives made of
    # them) were deleted. SQS is at-least-once: a batch that outlasts the visibility timeout (a copy's first batch
    # logs in to Snowflake) is received again by another copy, so a message may be delivered, and deleted, more
    # than once, but only one that was received again
    deliveries = Counter(m for i in report.invocations for m in i.message_ids)
    deleted = Counter(m for i in report.invocations for m in i.deleted)
    assert len(deleted) == 3 and bad_id not in deleted
    assert all(deleted[m] <= deliveries[m] for m in deleted)
    # And the good files loaded once each, however often their messages were delivered
    assert [(k, s, n) for k, s, n, _ in wired.ledger()] == [(k, "LOADED", 10) for k in keys]
    # And a STARTED row is left only by a repeated delivery that lost to another (the attempt's record)
    repeats = sum(n - 1 for m, n in deliveries.items() if m != bad_id)
    assert set(wired.started()) <= set(keys) and len(wired.started()) <= repeats
    assert wired.harness.count("target") == 20
    wired.check_ledger()


@pytest.fixture
def modelled_port(stack: Any) -> Iterator[tuple[SnowflakeModel, int]]:
    # A small latency: statements overlap and queue on the ledger's lock, and the test stays short.
    model = SnowflakeModel(Latency(statement=0.01, transfer=0.04))
    with modelled_snowflake(model) as port:
        yield model, port


def test_a_burst_of_30_files_at_the_templates_concurrency_loads_each_once_under_snowflakes_lock_rules(
    wire: Callable[..., Wired], make_csv: Callable[..., bytes], modelled_port: tuple[SnowflakeModel, int]
) -> None:
    # Given the function talking to the Snowflake lock model in front of fakesnow, and the template's batch size,
    # batching window and maximum concurrency (failed messages would come back after 120 s instead of 5700: a
    # visibility timeout shorter than a batch's work would hand the batch to a second copy while the first works)
    model, port = modelled_port
    wired = wire({"SNOWFLAKE_PORT": str(port)}, visibility_timeout=120)
    assert wired.settings.maximum_concurrency == TEMPLATE.maximum_concurrency

    # When 30 files land at once
    expected = {f"incoming/burst/file-{n:02d}.csv": 3 + n % 4 for n in range(30)}
    for key, rows in expected.items():
        wired.put(key, make_csv(rows))
    report = wired.poll(timeout=300)

    # Then the poller used more than one copy, never more than the template allows, and nothing went to the DLQ
    copies = {i.copy for i in report.invocations}
    assert 1 < len(copies) <= TEMPLATE.maximum_concurrency
    assert report.in_dlq == 0 and not report.timed_out
    assert report.messages_failed == 0 and report.messages_deleted == len(expected) + 1  # + S3's s3:TestEvent
    assert all(len(i.message_ids) <= TEMPLATE.batch_size for i in report.invocations)
    # And every statement went through the model, which refused none as the 21st waiter
    assert model.counts["statements"] > 0
    assert model.counts["errors_000625"] == 0
    # And, read through fakesnow's plain port: one LOADED ledger row per file, its rows in the target once
    ledger = wired.ledger()
    assert Counter(k for k, *_ in ledger) == Counter(expected.keys())
    assert {(k, s, n) for k, s, n, _ in ledger} == {(k, "LOADED", n) for k, n in expected.items()}
    landed = wired.harness.query("SELECT SOURCE_KEY, COUNT(*), COUNT(DISTINCT LOAD_ID) FROM {target} GROUP BY 1")
    assert {k: (n, loads) for k, n, loads in landed} == {k: (n, 1) for k, n in expected.items()}
    wired.check_ledger()
