"""Event parsing: three shapes, every record, keys URL-decoded, test and delete events skipped."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.events import parse_event


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


# --- malformed messages: reported and skipped, never raised -------------------------------


def sqs(message_id: str, body: Any) -> dict[str, Any]:
    return {
        "eventSource": "aws:sqs",
        "messageId": message_id,
        "body": body if isinstance(body, str) else json.dumps(body),
    }


def sns_envelope(message: Any) -> dict[str, Any]:
    return {"Type": "Notification", "MessageId": "n1", "Message": message}


def sns(message: Any) -> dict[str, Any]:
    return {"EventSource": "aws:sns", "Sns": {"MessageId": "s1", "Type": "Notification", "Message": message}}


def eventbridge(detail: Any = None, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"source": "aws.s3", "detail-type": "Object Created"}
    if detail is not None:
        event["detail"] = detail
    return event | overrides


GOOD_DETAIL = {"bucket": {"name": "bkt"}, "object": {"key": "in/a.csv", "etag": "e1", "size": 3, "sequencer": "0A"}}
NO_EVENT_NAME = {k: v for k, v in s3_record("a.csv").items() if k != "eventName"}
NO_S3 = {k: v for k, v in s3_record("a.csv").items() if k != "s3"}


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"Records": ["x"]}, "record 0 is not an object"),
        ({"Records": [NO_EVENT_NAME]}, "record 0: no eventName"),
        ({"Records": [NO_S3]}, "record 0: no s3.bucket.name"),
        (
            {"Records": [s3_record("a.csv") | {"s3": {"bucket": {"name": "b"}, "object": {"key": 7}}}]},
            "s3.object.key is not a string",
        ),
        (
            {"Records": [s3_record("a.csv") | {"s3": {"bucket": {"name": "b"}, "object": {"key": "k", "size": "9"}}}]},
            "s3.object.size is not an integer",
        ),
        ({"Records": [{"eventSource": "aws:kinesis"}]}, "event source 'aws:kinesis' is not"),
        ({"Records": [{"s3": {}}]}, "record 0: no eventSource"),
        (eventbridge(), "EventBridge event: no detail.bucket.name"),
        (eventbridge("detail"), "EventBridge event: no detail.bucket.name"),
        (eventbridge({"bucket": {"name": "bkt"}}), "EventBridge event: no detail.object.key"),
        (eventbridge({"bucket": {"name": "bkt"}, "object": "k"}), "EventBridge event: no detail.object.key"),
        (eventbridge(GOOD_DETAIL, **{"detail-type": None}), "EventBridge event: no detail-type"),
        ({"Records": [sns("not json")]}, "SNS message s1: SNS Message is not JSON"),
        ({"Records": [sns({"Records": []})]}, "SNS message s1: Sns.Message is missing or not a string"),
        ({"Records": [sns(json.dumps(["x"]))]}, "SNS message s1: content is not a JSON object"),
        ({"Records": [sns(json.dumps({"Records": ["x"]}))]}, "SNS message s1 record 0: is not an object"),
        ("not an object", "event is not a JSON object"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_malformed_event_is_reported_and_skipped_never_raised(event: Any, reason: str) -> None:
    # Given an event (not from SQS) with a malformed record
    # When it is parsed
    parsed = parse_event(event)
    # Then nothing is loaded, and the record is skipped and reported as malformed, with a reason naming the field
    assert parsed.objects == []
    assert len(parsed.malformed) == 1 and reason in parsed.malformed[0], parsed
    assert parsed.skipped == parsed.malformed


MALFORMED_BODIES = {
    "body-not-json": "not json",
    "body-not-a-string": {"Records": [s3_record("x.csv")]},  # an object where SQS always has a string
    "body-a-list": json.dumps([s3_record("x.csv")]),
    "body-unknown-object": json.dumps({"hello": "world"}),
    "records-of-strings": json.dumps({"Records": ["x"]}),
    "record-without-event-name": json.dumps({"Records": [NO_EVENT_NAME]}),
    "record-without-s3": json.dumps({"Records": [NO_S3]}),
    "sns-message-not-json": json.dumps(sns_envelope("{not json")),
    "sns-message-an-object": json.dumps(sns_envelope({"Records": [s3_record("x.csv")]})),
    "eventbridge-without-detail": json.dumps(eventbridge()),
    "eventbridge-without-object": json.dumps(eventbridge({"bucket": {"name": "bkt"}})),
    "body-deeply-nested": "[" * 100_000,
}


@pytest.mark.parametrize("body", MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys())
def test_one_malformed_sqs_message_fails_alone_and_the_batch_loads(body: Any) -> None:
    # Given an SQS batch of a good message, a malformed one, and another good one
    event = {
        "Records": [
            sqs("good-1", {"Records": [s3_record("a.csv")]}),
            {"eventSource": "aws:sqs", "messageId": "bad", "body": body},
            sqs("good-2", sns_envelope(json.dumps({"Records": [s3_record("b.csv")]}))),
        ]
    }
    # When it is parsed
    parsed = parse_event(event)
    # Then the good messages' objects are there with their message ids
    assert [(o.ref.key, o.message_id) for o in parsed.objects] == [("a.csv", "good-1"), ("b.csv", "good-2")]
    # And only the malformed message is a batch item failure, reported with its reason
    assert parsed.bad_messages == ["bad"]
    assert len(parsed.malformed) == 1 and parsed.malformed[0].startswith("SQS message bad")


def test_an_sqs_message_with_one_bad_record_loads_the_good_ones_and_still_fails() -> None:
    # Given one SQS message holding a good record and a malformed one
    event = {"Records": [sqs("m1", {"Records": [s3_record("a.csv"), NO_S3]})]}
    # When it is parsed
    parsed = parse_event(event)
    # Then the good record loads, and the message is failed so the malformed record is kept (redelivery, DLQ);
    # the good record's redelivery is a duplicate
    assert [(o.ref.key, o.message_id) for o in parsed.objects] == [("a.csv", "m1")]
    assert parsed.bad_messages == ["m1"]


def test_an_sqs_message_without_an_id_is_reported_but_cannot_be_a_batch_item_failure() -> None:
    # Given a batch whose second message has no messageId
    event = {"Records": [sqs("m1", {"Records": [s3_record("a.csv")]}), {"eventSource": "aws:sqs", "body": "{}"}]}
    # When it is parsed
    parsed = parse_event(event)
    # Then the first loads and the second is reported (an empty itemIdentifier would fail the whole batch)
    assert [o.message_id for o in parsed.objects] == ["m1"]
    assert parsed.malformed == ["SQS record 1: no messageId"] and parsed.bad_messages == []


# --- SNS straight to the function ------------------------------------------------------------------------------


def test_sns_delivered_straight_to_the_function_is_loaded() -> None:
    # Given an SNS notification (EventSource aws:sns) carrying an S3 notification of two records
    message = json.dumps({"Records": [s3_record("in/a+b.csv"), s3_record("c.csv", "ObjectRemoved:Delete")]})
    event = {"Records": [sns(message)]}
    # When it is parsed
    parsed = parse_event(event)
    # Then the created object is loaded, the deletion skipped, and nothing is malformed
    assert parsed.shape == "sns"
    assert [o.ref.key for o in parsed.objects] == ["in/a b.csv"]
    assert len(parsed.skipped) == 1 and parsed.malformed == []


def test_an_s3_test_event_through_sns_is_skipped_not_malformed() -> None:
    parsed = parse_event({"Records": [sns(json.dumps({"Event": "s3:TestEvent"}))]})
    assert parsed.objects == [] and parsed.skipped == ["s3:TestEvent"] and parsed.malformed == []


# --- the sequencer: S3's ordering of events for one key ---------------------------------------------------------

S3_NOTIFICATION = {
    "Records": [
        s3_record("a.csv")
        | {"s3": {"bucket": {"name": "bkt"}, "object": {"key": "a.csv", "sequencer": "0055AED6DCD90281E5"}}}
    ]
}


@pytest.mark.parametrize(
    "event",
    [
        S3_NOTIFICATION,
        {"Records": [sqs("m1", S3_NOTIFICATION)]},
        {"Records": [sqs("m1", sns_envelope(json.dumps(S3_NOTIFICATION)))]},
        {"Records": [sns(json.dumps(S3_NOTIFICATION))]},
        eventbridge(GOOD_DETAIL | {"object": {"key": "a.csv", "sequencer": "0055AED6DCD90281E5"}}),
        {
            "Records": [
                sqs("m1", eventbridge(GOOD_DETAIL | {"object": {"key": "a.csv", "sequencer": "0055AED6DCD90281E5"}}))
            ]
        },
    ],
    ids=["s3", "sqs", "sns-in-sqs", "sns", "eventbridge", "eventbridge-in-sqs"],
)
def test_the_sequencer_is_read_from_every_shape(event: dict[str, Any]) -> None:
    # Given an S3 notification or EventBridge event whose object has a sequencer
    # When it is parsed, direct or wrapped
    parsed = parse_event(event)
    # Then the object carries it
    assert [(o.ref.key, o.ref.sequencer) for o in parsed.objects] == [("a.csv", "0055AED6DCD90281E5")]


def test_a_record_without_a_sequencer_has_none() -> None:
    parsed = parse_event(eventbridge({"bucket": {"name": "bkt"}, "object": {"key": "a.csv"}}))
    assert [o.ref.sequencer for o in parsed.objects] == [None]


def test_a_rescore_is_an_s3_record_marked_rescore_true() -> None:
    # Given an SQS batch: `make rescore`'s message (the record marked), an ordinary notification, and a record
    # whose marker is not a boolean
    rescore = {**s3_record("a.csv", version="v1"), "rescore": True}
    body = {**s3_record("b.csv"), "rescore": "yes"}
    event = {
        "Records": [
            {"eventSource": "aws:sqs", "messageId": "m1", "body": json.dumps({"Records": [rescore]})},
            {"eventSource": "aws:sqs", "messageId": "m2", "body": json.dumps({"Records": [s3_record("a.csv")]})},
            {"eventSource": "aws:sqs", "messageId": "m3", "body": json.dumps({"Records": [body]})},
        ]
    }
    # When parsed
    parsed = parse_event(event)
    # Then the marked record's object is a rescore, the ordinary one is not, and the bad marker is malformed
    assert [(o.ref.key, o.ref.rescore, o.message_id) for o in parsed.objects] == [
        ("a.csv", True, "m1"),
        ("a.csv", False, "m2"),
    ]
    assert parsed.bad_messages == ["m3"]
    assert "rescore is not true or false" in parsed.malformed[0]
