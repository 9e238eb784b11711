"""tools/commands/backfill.py's queue mode without AWS: the message a backfill sends, its batches and retries, the
target.

SQS is a fake here (what ``send_message_batch`` answers is the test's choice); the integration tests
(tests/integration/test_backfill.py) send to moto's SQS and deliver the received messages to the handler.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.events import parse_event
from pipeline.ports import ObjectRef
from tools.commands.backfill import (
    BATCH_SIZE,
    CONFIGURATION_ID,
    SEND_ATTEMPTS,
    BackfillError,
    Target,
    notification,
    samconfig_defaults,
    send_batch,
)
from tools.emulated.s3_events import lambda_sqs_event

ROOT = Path(__file__).resolve().parents[2]
KEYS = ["in/plain.csv", "in/with space.csv", "in/plus+sign.csv.gz", "in/ünïcødé ✓.csv", "in/pct%2B&=?.csv"]


class FakeSQS:
    """send_message_batch answers from ``failures``: Id -> how many sends of it fail, and whose fault."""

    def __init__(self, failures: dict[str, tuple[int, bool]] | None = None) -> None:
        self.failures = dict(failures or {})
        self.calls: list[list[dict[str, Any]]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.calls.append(Entries)
        failed, successful = [], []
        for entry in Entries:
            times, sender_fault = self.failures.get(entry["Id"], (0, False))
            if times > 0:
                self.failures[entry["Id"]] = (times - 1, sender_fault)
                failed.append({"Id": entry["Id"], "SenderFault": sender_fault, "Code": "X", "Message": "no"})
            else:
                successful.append({"Id": entry["Id"], "MessageId": f"m-{entry['Id']}"})
        return {"Successful": successful, "Failed": failed}


def refs(count: int) -> list[ObjectRef]:
    return [ObjectRef("bucket-a", f"in/f{i}.csv", f"v{i}", f"etag{i}", 100 + i) for i in range(count)]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("version_id", ["3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY", None])
def test_a_backfill_message_is_read_back_as_the_same_object_version(key: str, version_id: str | None) -> None:
    """Given a listed object version (odd characters in its key; versioned bucket or not)
    When its backfill notification is delivered in an SQS message as Lambda delivers it
    Then the handler's event parser finds exactly that object, key decoded, version, ETag and size as listed,
    and no sequencer (ordering falls back to Last-Modified)"""
    ref = ObjectRef("bucket-a", key, version_id, "0123abcd", 42)
    body = json.dumps(notification(ref, region="eu-west-1", event_time="2026-01-01T00:00:00.000Z"))
    message = {"MessageId": "m1", "ReceiptHandle": "r", "Body": body, "MD5OfBody": "x"}

    parsed = parse_event(lambda_sqs_event([message], "arn:aws:sqs:eu-west-1:1:q", "eu-west-1"))

    assert parsed.malformed == [] and parsed.skipped == []
    assert [o.ref for o in parsed.objects] == [ref]
    assert parsed.objects[0].message_id == "m1"


def test_a_backfill_message_is_shaped_as_s3_sends_it_and_says_backfill() -> None:
    """Given a listed object version
    When its notification is built
    Then it is one S3 ObjectCreated record, key encoded as S3 encodes it, marked by its configurationId"""
    ref = ObjectRef("bucket-a", "in/a b+c ü.csv", "v1", "e1", 7)

    event = notification(ref, region="eu-west-1", event_time="2026-01-01T00:00:00.000Z")

    (record,) = event["Records"]
    assert record["eventSource"] == "aws:s3" and record["eventName"].startswith("ObjectCreated:")
    assert record["awsRegion"] == "eu-west-1"
    assert record["s3"]["configurationId"] == CONFIGURATION_ID == "backfill"
    assert record["s3"]["bucket"] == {"name": "bucket-a", "arn": "arn:aws:s3:::bucket-a"}
    assert record["s3"]["object"] == {"key": "in/a+b%2Bc+%C3%BC.csv", "size": 7, "eTag": "e1", "versionId": "v1"}


@pytest.mark.parametrize("count", [1, 10])
def test_a_batch_is_one_call_with_one_marked_message_per_object(count: int) -> None:
    """Given up to 10 objects and a queue that takes everything
    When they are sent
    Then one SendMessageBatch carries one message each, with the origin attribute, and nothing failed"""
    sqs = FakeSQS()

    failures = send_batch(sqs, "url", refs(count), region="r", sleep=lambda _: None)

    assert failures == []
    assert len(sqs.calls) == 1 and len(sqs.calls[0]) == count
    bodies = [json.loads(e["MessageBody"]) for e in sqs.calls[0]]
    assert [b["Records"][0]["s3"]["object"]["key"] for b in bodies] == [r.key for r in refs(count)]
    assert all(e["MessageAttributes"]["origin"]["StringValue"] == "tools.backfill" for e in sqs.calls[0])
    assert BATCH_SIZE == 10  # SendMessageBatch's limit


def test_entries_sqs_failed_on_its_side_are_sent_again_until_they_go() -> None:
    """Given a batch in which SQS fails two entries twice (its fault, not the sender's)
    When it is sent
    Then only those two are sent again, twice, and in the end nothing failed"""
    sqs = FakeSQS({"3": (2, False), "7": (2, False)})
    waits: list[float] = []

    failures = send_batch(sqs, "url", refs(10), region="r", sleep=waits.append)

    assert failures == []
    assert [[e["Id"] for e in call] for call in sqs.calls] == [[str(i) for i in range(10)], ["3", "7"], ["3", "7"]]
    assert len(waits) == 2 and waits[0] < waits[1]  # backing off


def test_entries_that_keep_failing_are_reported_not_dropped() -> None:
    """Given a batch with one entry SQS always fails on its side and one it rejects as the sender's fault
    When it is sent
    Then the first is tried SEND_ATTEMPTS times, the second once, and both are reported with their keys"""
    sqs = FakeSQS({"2": (99, False), "5": (99, True)})

    failures = send_batch(sqs, "url", refs(10), region="r", sleep=lambda _: None)

    by_key = {f["key"]: f for f in failures}
    assert set(by_key) == {"in/f2.csv", "in/f5.csv"}
    assert by_key["in/f2.csv"]["attempts"] == SEND_ATTEMPTS and not by_key["in/f2.csv"]["sender_fault"]
    assert by_key["in/f5.csv"]["attempts"] == 1 and by_key["in/f5.csv"]["sender_fault"]
    assert by_key["in/f2.csv"]["version_id"] == "v2"
    assert len(sqs.calls) == SEND_ATTEMPTS


@pytest.mark.parametrize(
    ("input_prefix", "asked", "listed"),
    [
        ("incoming/", "incoming/2025/", "incoming/2025/"),  # within: as asked
        ("incoming/", "incoming/", "incoming/"),
        ("incoming/", "", "incoming/"),  # wider: narrowed to what the function may read
        ("incoming/", "inc", "incoming/"),
        (None, "anything/", "anything/"),  # a stack without the parameter: as asked
    ],
)
def test_the_listed_prefix_is_what_the_function_may_read(input_prefix: str | None, asked: str, listed: str) -> None:
    """Given a stack whose function reads only InputPrefix
    When a backfill asks for a prefix
    Then it lists that prefix, narrowed to InputPrefix when wider"""
    target = Target("s", "url", "bucket-a", input_prefix)
    assert target.prefix_for("bucket-a", asked) == listed


@pytest.mark.parametrize(("bucket", "prefix"), [("bucket-b", "incoming/"), ("bucket-a", "elsewhere/")])
def test_objects_the_function_cannot_read_are_refused(bucket: str, prefix: str) -> None:
    """Given a stack reading s3://bucket-a/incoming/
    When a backfill asks for another bucket, or a prefix outside incoming/
    Then it refuses before listing (every such message would only end in the dead-letter queue)"""
    with pytest.raises(BackfillError, match="reads"):
        Target("s", "url", "bucket-a", "incoming/").prefix_for(bucket, prefix)


def test_the_stack_name_defaults_to_samconfig(tmp_path: Path) -> None:
    """Given the repository's samconfig.toml, and one that also sets a deploy region
    When the defaults are read
    Then the stack name is samconfig's, and the deploy section's region (if any) comes with it"""
    assert samconfig_defaults(ROOT / "samconfig.toml")["stack_name"] == "tumour-scoring"
    config = tmp_path / "samconfig.toml"
    config.write_text(
        'version = 0.1\n[default.global.parameters]\nstack_name = "a"\n'
        '[default.deploy.parameters]\nstack_name = "b"\nregion = "eu-west-1"\n'
    )
    assert samconfig_defaults(config) == {"stack_name": "b", "region": "eu-west-1"}
    assert samconfig_defaults(tmp_path / "missing.toml") == {}
