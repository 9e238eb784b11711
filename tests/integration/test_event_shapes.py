"""Malformed and SNS-delivered events through the whole function (moto S3 + fakesnow), not a stand-in pipeline."""

from __future__ import annotations

import json
from typing import Any


def sqs(message_id: str, body: str) -> dict[str, Any]:
    return {"eventSource": "aws:sqs", "messageId": message_id, "receiptHandle": "r", "body": body}


def test_a_malformed_sqs_message_fails_alone_while_the_batch_loads(harness: Any, make_csv: Any) -> None:
    # Given an SQS batch: two good S3 notifications around an SNS envelope whose Message is not JSON
    first = harness.put("incoming/batch-a.csv", make_csv(4))
    second = harness.put("incoming/batch-b.csv", make_csv(6))
    event = {
        "Records": [
            sqs("good-1", json.dumps(first)),
            sqs("bad", json.dumps({"Type": "Notification", "Message": "not json"})),
            sqs("good-2", json.dumps(second)),
        ]
    }
    # When it is delivered
    summary = harness.invoke(event)
    # Then both good objects load and only the malformed message comes back as a batch item failure
    assert [o["status"] for o in summary["objects"]] == ["loaded", "loaded"]
    assert summary["rows_loaded"] == 10 and harness.count() == 10
    assert summary["batchItemFailures"] == [{"itemIdentifier": "bad"}]
    assert summary["malformed"] == ["SQS message bad: SNS Message is not JSON"]


def test_sns_delivered_straight_to_the_function_is_loaded(harness: Any, make_csv: Any) -> None:
    # Given an S3 notification published to SNS, and SNS invoking the function directly
    s3_event = harness.put("incoming/via sns.csv", make_csv(9))
    event = {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": "arn:aws:sns:us-east-1:000000000000:t:s",
                "Sns": {"Type": "Notification", "MessageId": "n-1", "Message": json.dumps(s3_event)},
            }
        ]
    }
    # When it is delivered
    summary = harness.invoke(event)
    # Then the object is loaded under its decoded key, not skipped
    assert summary["objects"][0]["key"] == "incoming/via sns.csv" and summary["rows_loaded"] == 9
    assert summary["skipped"] == [] and harness.count() == 9
