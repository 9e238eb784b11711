"""The local poller's pure parts: the SQS event as Lambda builds it, and Lambda's rules for partial batch responses."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import SQSEvent

from tools.emulated.local_queue import QueueSettings
from tools.emulated.poller import failed_message_ids, queue_drained
from tools.emulated.s3_events import sqs_record
from tools.sam_template import load_template

RECEIVED = {  # one message as boto3's ReceiveMessage returns it (AttributeNames/MessageAttributeNames = All)
    "MessageId": "m-1",
    "ReceiptHandle": "rh-1",
    "MD5OfBody": "0cc175b9c0f1b6a831c399e269772661",
    "Body": '{"Records": []}',
    "Attributes": {
        "ApproximateReceiveCount": "2",
        "SentTimestamp": "1",
        "SenderId": "AIDA",
        "ApproximateFirstReceiveTimestamp": "2",
    },
    "MD5OfMessageAttributes": "abc",
    "MessageAttributes": {
        "origin": {"StringValue": "backfill", "DataType": "String"},
        "blob": {"BinaryValue": b"\x00\x01", "DataType": "Binary"},
    },
}
ARN = "arn:aws:sqs:us-east-1:123456789012:ingest"


def test_a_received_message_becomes_lambdas_sqs_record() -> None:
    # Given a received message
    # When it is turned into an event record
    record = sqs_record(RECEIVED, ARN, "us-east-1")
    # Then it has Lambda's keys and spelling, and Powertools reads it as Lambda's own
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == ARN and record["awsRegion"] == "us-east-1"
    assert (record["messageId"], record["receiptHandle"], record["md5OfBody"]) == ("m-1", "rh-1", RECEIVED["MD5OfBody"])
    assert record["md5OfMessageAttributes"] == "abc"
    assert record["messageAttributes"]["origin"] == {
        "stringValue": "backfill",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["blob"]["binaryValue"] == base64.b64encode(b"\x00\x01").decode()
    [parsed] = SQSEvent({"Records": [record]}).records
    assert parsed.attributes.approximate_receive_count == "2"
    assert parsed.message_attributes["origin"].string_value == "backfill"
    assert parsed.body == RECEIVED["Body"]


@pytest.mark.parametrize(
    ("response", "failed"),
    [
        ({"objects": []}, set()),
        ({"batchItemFailures": []}, set()),
        (None, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "c"}]}, {"a", "c"}),
        ({"batchItemFailures": [{"itemIdentifier": "z"}]}, None),  # not in the batch: the whole batch
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, None),
        ({"batchItemFailures": [{}]}, None),
        ({"batchItemFailures": "b"}, None),
    ],
    ids=["no-failures-key", "empty-list", "no-response", "one", "two", "unknown-id", "empty-id", "no-id", "not-a-list"],
)
def test_partial_batch_responses_follow_lambdas_rules(response: Any, failed: set[str] | None) -> None:
    # Given a batch of three messages and the function's response
    # When the messages to return to the queue are decided / Then they are the listed ones, or all when it is invalid
    assert failed_message_ids(response, ["a", "b", "c"]) == failed


def test_the_template_gives_the_poller_its_numbers_and_overrides_win() -> None:
    # Given template.yaml's parameter defaults and the queue's own attributes, read here without the reader
    template = load_template()
    default = {name: spec.get("Default") for name, spec in template["Parameters"].items()}
    queue = template["Resources"]["IngestQueue"]["Properties"]
    # When the poller's settings are read from it
    settings = QueueSettings.from_template()
    # Then they are those values
    assert (settings.batch_size, settings.maximum_concurrency, settings.batching_window_seconds) == (
        default["QueueBatchSize"],
        default["QueueMaximumConcurrency"],
        default["QueueBatchingWindowSeconds"],
    )
    assert (settings.visibility_timeout, settings.max_receive_count) == (
        queue["VisibilityTimeout"],
        default["QueueMaxReceiveCount"],
    )
    # And a parameter override or a field override changes just that
    assert QueueSettings.from_template(parameters={"QueueMaximumConcurrency": "3"}).maximum_concurrency == 3
    assert QueueSettings.from_template(visibility_timeout=1).visibility_timeout == 1
    # And the notifications send ObjectCreated under the prefix for .csv and .csv.gz only
    assert [settings.notifies(k) for k in ("incoming/a.csv", "incoming/a.csv.gz", "incoming/a.txt", "a.csv")] == [
        True,
        True,
        False,
        False,
    ]


class _Depths:
    """A poller stand-in: the queue depths its reads return, in turn, and whether its copies are idle."""

    def __init__(self, depths: list[int], idle: bool = True) -> None:
        self.depths, self._idle = depths, idle

    def queue_depth(self) -> int:
        return self.depths.pop(0)

    def idle(self) -> bool:
        return self._idle


@pytest.mark.parametrize(
    ("depths", "idle", "drained"),
    [
        ([0, 0], True, True),
        ([0, 1], True, False),  # one read missed a message whose visibility timeout ended while moto counted
        ([1], True, False),
        ([0], False, False),  # a copy still holds a batch
    ],
    ids=["empty-twice", "missed-once", "a-message-left", "a-copy-busy"],
)
def test_the_queue_is_drained_only_when_two_reads_around_idle_copies_find_it_empty(
    depths: list[int], idle: bool, drained: bool
) -> None:
    # Given the depths the queue's reads return and the copies' state / When the stop condition is checked
    # Then it holds only if both reads found nothing and no copy holds a batch
    assert queue_drained(_Depths(depths, idle)) is drained  # type: ignore[arg-type]
