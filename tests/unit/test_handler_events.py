"""The handler with malformed events: the good objects load, the bad records are reported, nothing raises.

The pipeline is a stand-in that records which objects it was asked to load; the parsing itself is in
test_events.py, and the real pipeline behind these events in tests/integration.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from pipeline.batch import handle
from pipeline.ports import ObjectRef
from pipeline.process import ObjectResult
from tests.unit.stand_ins import OneByOne


class RecordingPipeline(OneByOne):
    def __init__(self) -> None:
        self.processed: list[ObjectRef] = []

    def process(self, ref: ObjectRef) -> ObjectResult:
        self.processed.append(ref)
        return ObjectResult(ref.bucket, ref.key, ref.version, "loaded", rows_loaded=1)


def s3_notification(key: str) -> dict[str, Any]:
    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "bkt"}, "object": {"key": key, "eTag": "e", "sequencer": "0A"}},
    }
    return {"Records": [record]}


def sqs(message_id: str, body: str) -> dict[str, Any]:
    return {"eventSource": "aws:sqs", "messageId": message_id, "body": body}


SNS_NOT_JSON = json.dumps({"Type": "Notification", "Message": "not json"})
SNS_AN_OBJECT = json.dumps({"Type": "Notification", "Message": s3_notification("x.csv")})


@pytest.mark.parametrize(
    "bad_body",
    [SNS_NOT_JSON, SNS_AN_OBJECT, json.dumps({"Records": ["x"]}), json.dumps({"Records": [{"eventSource": "aws:s3"}]})],
    ids=["sns-message-not-json", "sns-message-an-object", "records-of-strings", "record-without-event-name"],
)
def test_a_malformed_sqs_message_is_the_only_batch_item_failure(
    bad_body: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given an SQS batch where one message of three is malformed
    event = {
        "Records": [
            sqs("good-1", json.dumps(s3_notification("a.csv"))),
            sqs("bad", bad_body),
            sqs("good-2", json.dumps(s3_notification("b.csv"))),
        ]
    }
    pipeline = RecordingPipeline()
    # When the handler runs
    with caplog.at_level(logging.INFO):
        summary = handle(event, pipeline)  # type: ignore[arg-type]
    # Then both good objects were loaded, and only the malformed message comes back to SQS
    assert [r.key for r in pipeline.processed] == ["a.csv", "b.csv"]
    assert summary["batchItemFailures"] == [{"itemIdentifier": "bad"}]
    # And the malformed message is reported in the summary and logged at ERROR
    assert len(summary["malformed"]) == 1 and summary["malformed"][0].startswith("SQS message bad")
    assert any(r.levelno == logging.ERROR and "malformed event record" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "event",
    [
        {"Records": ["x"]},
        {"Records": [{"eventSource": "aws:s3", "s3": {}}]},
        {"source": "aws.s3", "detail-type": "Object Created"},
        {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "not json"}}]},
    ],
    ids=["records-of-strings", "record-without-event-name", "eventbridge-without-detail", "sns-not-json"],
)
def test_a_malformed_direct_event_is_reported_and_the_invocation_succeeds(event: dict[str, Any]) -> None:
    # Given a malformed event delivered straight to the function (no SQS)
    pipeline = RecordingPipeline()
    # When the handler runs
    summary = handle(event, pipeline)  # type: ignore[arg-type]
    # Then it returns (no raise), loads nothing and reports the record as malformed
    assert pipeline.processed == [] and len(summary["malformed"]) == 1
    assert "batchItemFailures" not in summary


def test_sns_straight_to_the_function_loads_its_objects() -> None:
    # Given an SNS notification (EventSource aws:sns) carrying an S3 notification
    event = {
        "Records": [
            {"EventSource": "aws:sns", "Sns": {"MessageId": "s1", "Message": json.dumps(s3_notification("in/a+b.csv"))}}
        ]
    }
    pipeline = RecordingPipeline()
    # When the handler runs
    summary = handle(event, pipeline)  # type: ignore[arg-type]
    # Then the object is loaded (not skipped silently)
    assert [(r.key, r.sequencer) for r in pipeline.processed] == [("in/a b.csv", "0A")]
    assert summary["skipped"] == [] and summary["rows_loaded"] == 1
