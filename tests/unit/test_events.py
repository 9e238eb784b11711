"""Event parsing: three shapes, every record, keys URL-decoded, test and delete events skipped."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handler.events import parse_event


def s3_record(key: str, name: str = "ObjectCreated:Put", version: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": key, "size": 10, "eTag": "abc123", "sequencer": "1"}
    if version:
        obj["versionId"] = version
    return {
        "eventSource": "aws:s3",
        "eventName": name,
        "eventTime": "t",
        "s3": {"bucket": {"name": "bkt"}, "object": obj},
    }


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("in/my+file%2B1+%C3%A9.csv", "in/my file+1 é.csv"),
        ("in/sam%20generate%20event.csv", "in/sam generate event.csv"),
        ("in/100%25.csv", "in/100%.csv"),
        ("in/plain.csv", "in/plain.csv"),
    ],
)
def test_s3_keys_are_url_decoded(encoded: str, decoded: str) -> None:
    # Given an S3 notification with an encoded key / When parsed / Then the key is decoded
    parsed = parse_event({"Records": [s3_record(encoded)]})
    assert [o.ref.key for o in parsed.objects] == [decoded]


def test_every_record_is_taken_and_non_created_ones_are_skipped() -> None:
    event = {
        "Records": [s3_record("a.csv"), s3_record("b.csv", "ObjectRemoved:Delete"), s3_record("c.csv", version="v9")]
    }
    parsed = parse_event(event)
    assert [(o.ref.key, o.ref.version) for o in parsed.objects] == [("a.csv", "abc123"), ("c.csv", "v9")]
    assert len(parsed.skipped) == 1 and "ObjectRemoved:Delete" in parsed.skipped[0]


def test_sqs_wrapped_notifications_keep_their_message_ids() -> None:
    body = json.dumps({"Records": [s3_record("x+y.csv")]})
    event = {
        "Records": [
            {"eventSource": "aws:sqs", "messageId": "m1", "body": body},
            {"eventSource": "aws:sqs", "messageId": "m2", "body": "not json"},
            {"eventSource": "aws:sqs", "messageId": "m3", "body": json.dumps({"Event": "s3:TestEvent"})},
        ]
    }
    parsed = parse_event(event)
    assert parsed.shape == "sqs"
    assert [(o.ref.key, o.message_id) for o in parsed.objects] == [("x y.csv", "m1")]
    assert parsed.bad_messages == ["m2"]
    assert "s3:TestEvent" in parsed.skipped


def test_eventbridge_object_created() -> None:
    event = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": "bkt"}, "object": {"key": "in/a+b.csv", "etag": "e1", "size": 3}},
    }
    parsed = parse_event(event)
    assert [(o.ref.bucket, o.ref.key, o.ref.version) for o in parsed.objects] == [("bkt", "in/a b.csv", "e1")]


@pytest.mark.parametrize(
    "event",
    [{"Event": "s3:TestEvent", "Service": "Amazon S3"}, {"hello": "world"}, {"Records": []}],
    ids=["test-event", "unknown", "empty-records"],
)
def test_events_without_objects_are_skipped_not_errors(event: dict[str, Any]) -> None:
    parsed = parse_event(event)
    assert parsed.objects == []
    assert len(parsed.skipped) == 1
