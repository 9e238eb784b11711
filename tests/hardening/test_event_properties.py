"""Property-based tests of event parsing (pipeline.events): no event, however malformed, makes it raise.

* Any JSON-ish event (random nesting of objects, lists, strings, numbers, in and around the known envelope shapes:
  S3, SQS, SNS in SQS, SNS, EventBridge) is parsed into well-formed objects plus skipped items; every record is
  accounted for, and every SQS message that is failed names a message of the batch.
* In an SQS batch of good and broken messages, every good message's objects are there with its id and it is not
  failed, and every broken message (one required field missing or of the wrong type) is a batch item failure.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.events import ParsedEvent, parse_event

ABSENT = object()  # a field left out of the event

leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def field(draw: st.DrawFn, junk: int, valid: st.SearchStrategy[Any]) -> Any:
    """A valid value, or (``junk`` times in 100) any JSON value or nothing at all (ABSENT)."""
    if draw(st.integers(0, 99)) >= junk:
        return draw(valid)
    return draw(st.one_of(json_values, st.just(ABSENT)))


def item(draw: st.DrawFn, junk: int, valid: st.SearchStrategy[Any]) -> Any:
    """A list element: a valid value, or any JSON value."""
    value = field(draw, junk, valid)
    return draw(json_values) if value is ABSENT else value


def obj(draw: st.DrawFn, junk: int, **fields: st.SearchStrategy[Any]) -> dict[str, Any]:
    drawn = {name: field(draw, junk, valid) for name, valid in fields.items()}
    return {name: value for name, value in drawn.items() if value is not ABSENT}


# Composites rather than nested strategy objects: Hypothesis' reprs of deeply nested strategies run to megabytes.
names = st.sampled_from(["ObjectCreated:Put", "ObjectCreated:CompleteMultipartUpload", "ObjectRemoved:Delete"])
keys = st.text(min_size=1, max_size=12)
tags = st.text(max_size=8)
sizes = st.integers(min_value=0)


@st.composite
def buckets(draw: st.DrawFn, junk: int) -> dict[str, Any]:
    return obj(draw, junk, name=st.just("bkt"))


@st.composite
def s3_records(draw: st.DrawFn, junk: int) -> dict[str, Any]:
    @st.composite
    def s3(draw: st.DrawFn, junk: int) -> dict[str, Any]:
        @st.composite
        def s3_object(draw: st.DrawFn, junk: int) -> dict[str, Any]:
            return obj(draw, junk, key=keys, size=sizes, eTag=tags, versionId=tags, sequencer=tags)

        return obj(draw, junk, bucket=buckets(junk), object=s3_object(junk))

    return obj(draw, junk, eventSource=st.just("aws:s3"), eventName=names, s3=s3(junk))


@st.composite
def s3_notifications(draw: st.DrawFn, junk: int) -> dict[str, Any]:
    @st.composite
    def record_lists(draw: st.DrawFn, junk: int) -> list[Any]:
        return [item(draw, junk, s3_records(junk)) for _ in range(draw(st.integers(0, 3)))]

    return obj(draw, junk, Records=record_lists(junk))


@st.composite
def eventbridge_events(draw: st.DrawFn, junk: int) -> dict[str, Any]:
    @st.composite
    def detail(draw: st.DrawFn, junk: int) -> dict[str, Any]:
        @st.composite
        def bridge_object(draw: st.DrawFn, junk: int) -> dict[str, Any]:
            return obj(draw, junk, key=keys, size=sizes, etag=tags, sequencer=tags, **{"version-id": tags})

        return obj(draw, junk, bucket=buckets(junk), object=bridge_object(junk))

    types = st.sampled_from(["Object Created", "Object Deleted"])
    return obj(draw, junk, source=st.just("aws.s3"), detail=detail(junk), **{"detail-type": types})


@st.composite
def message_texts(draw: st.DrawFn, junk: int) -> str:
    """The text of an SQS body or an SNS Message: mostly JSON of a known shape, else any text."""
    content = st.one_of(s3_notifications(junk), eventbridge_events(junk), st.just({"Event": "s3:TestEvent"}))
    return (
        draw(content.map(json.dumps))
        if draw(st.integers(0, 99)) >= junk
        else draw(st.text(max_size=20) | json_values.map(json.dumps))
    )


@st.composite
def sqs_records(draw: st.DrawFn, junk: int) -> dict[str, Any]:
    @st.composite
    def sns_envelope(draw: st.DrawFn, junk: int) -> str:
        return json.dumps(obj(draw, junk, Type=st.just("Notification"), Message=message_texts(junk)))

    body = st.one_of(message_texts(junk), sns_envelope(junk))
    return obj(draw, junk, eventSource=st.just("aws:sqs"), messageId=st.text(min_size=1, max_size=6), body=body)


@st.composite
def sns_records(draw: st.DrawFn, junk: int) -> dict[str, Any]:
    @st.composite
    def sns(draw: st.DrawFn, junk: int) -> dict[str, Any]:
        return obj(draw, junk, MessageId=st.text(min_size=1, max_size=6), Message=message_texts(junk))

    return obj(draw, junk, EventSource=st.just("aws:sns"), Sns=sns(junk))


@st.composite
def events(draw: st.DrawFn) -> Any:
    junk = draw(st.sampled_from([0, 3, 10, 30]))  # how often a field is junk or missing, in percent
    shape = draw(st.sampled_from(["s3", "eventbridge", "sqs", "sns", "any"]))  # "any": JSON, no envelope
    if shape == "s3":
        return draw(s3_notifications(junk))
    if shape == "eventbridge":
        return draw(eventbridge_events(junk))
    if shape == "any":
        return draw(json_values)
    record = sqs_records(junk) if shape == "sqs" else sns_records(junk)
    return {"Records": [item(draw, junk, record) for _ in range(draw(st.integers(1, 4)))]}


def assert_well_formed(parsed: ParsedEvent, event: Any) -> None:
    for item in parsed.objects:
        ref = item.ref
        assert isinstance(ref.bucket, str) and ref.bucket and isinstance(ref.key, str) and ref.key
        assert all(v is None or (isinstance(v, str) and v) for v in (ref.version_id, ref.etag, ref.sequencer))
        assert ref.size is None or (isinstance(ref.size, int) and not isinstance(ref.size, bool))
    # every malformed record is also a skipped one
    assert all(parsed.skipped.count(r) >= parsed.malformed.count(r) for r in parsed.malformed)
    records = event.get("Records") if isinstance(event, dict) else None
    if isinstance(records, list):
        # nothing vanishes: every record is loaded or skipped (a message may hold several records)
        assert len(parsed.objects) + len(parsed.skipped) >= len(records)
        ids = {r.get("messageId") for r in records if isinstance(r, dict) and isinstance(r.get("messageId"), str)}
        assert {o.message_id for o in parsed.objects} <= ids | {None}
        assert set(parsed.bad_messages) <= ids
        assert len(parsed.bad_messages) == len(set(parsed.bad_messages))
        for message_id in parsed.bad_messages:
            assert any(r.startswith(f"SQS message {message_id}") for r in parsed.malformed)
    else:
        assert parsed.objects or parsed.skipped


@settings(max_examples=400, deadline=None)
@given(event=events())
def test_any_json_ish_event_is_parsed_or_reported_never_raised(event: Any) -> None:
    # Given any JSON-ish event, in or around the known envelope shapes
    # When it is parsed (it must not raise)
    parsed = parse_event(event)
    # Then its objects are well formed, and every record is loaded, skipped or reported
    assert_well_formed(parsed, event)


# --- good and broken messages in one SQS batch ---------------------------------------------------------------

REQUIRED_LEAVES = [("eventName",), ("s3", "bucket", "name"), ("s3", "object", "key")]
REQUIRED_OBJECTS = [("s3",), ("s3", "bucket"), ("s3", "object")]
not_a_name = json_values.filter(lambda v: not (isinstance(v, str) and v))  # absent, empty, or not a string
not_an_object = json_values.filter(lambda v: not isinstance(v, dict))


def good_record(key: str) -> dict[str, Any]:
    return {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "bkt"}, "object": {"key": key, "eTag": "e", "sequencer": "0A"}},
    }


@st.composite
def broken_body(draw: st.DrawFn, key: str) -> str:
    """A body that was a good S3 notification until one required field went missing or got the wrong type."""
    how = draw(st.sampled_from(["leaf", "object", "records", "sns-message", "body"]))
    if how == "body":
        return draw(st.text(max_size=20).filter(lambda t: not _is_json(t)) | not_an_object.map(json.dumps))
    if how == "sns-message":
        message = draw(st.text(max_size=20).filter(lambda t: not _is_json(t)) | not_an_object.map(json.dumps))
        return json.dumps(
            {
                "Type": "Notification",
                "Message": draw(st.one_of(st.just(message), json_values.filter(lambda v: not isinstance(v, str)))),
            }
        )
    notification: dict[str, Any] = {"Records": [good_record(key)]}
    if how == "records":
        notification["Records"] = draw(st.lists(not_an_object, min_size=1, max_size=3))
        return json.dumps(notification)
    path, replacement = (
        (draw(st.sampled_from(REQUIRED_LEAVES)), draw(st.one_of(st.just(ABSENT), not_a_name)))
        if how == "leaf"
        else (draw(st.sampled_from(REQUIRED_OBJECTS)), draw(st.one_of(st.just(ABSENT), not_an_object)))
    )
    parent = notification["Records"][0]
    for name in path[:-1]:
        parent = parent[name]
    if replacement is ABSENT:
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return json.dumps(notification)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@settings(max_examples=200, deadline=None)
@given(data=st.data(), good=st.lists(st.booleans(), min_size=1, max_size=8))
def test_broken_sqs_messages_fail_alone_and_every_good_one_loads(data: st.DataObject, good: list[bool]) -> None:
    # Given an SQS batch mixing good messages and broken ones (one required field missing or mistyped)
    records = []
    for i, is_good in enumerate(good):
        body = json.dumps({"Records": [good_record(f"k{i}.csv")]}) if is_good else data.draw(broken_body(f"k{i}.csv"))
        records.append({"eventSource": "aws:sqs", "messageId": f"m{i}", "body": body})
    # When it is parsed
    parsed = parse_event({"Records": records})
    # Then every good message's object is there with its id, and only the broken messages are failed
    assert [(o.ref.key, o.message_id) for o in parsed.objects] == [
        (f"k{i}.csv", f"m{i}") for i, is_good in enumerate(good) if is_good
    ]
    assert parsed.bad_messages == [f"m{i}" for i, is_good in enumerate(good) if not is_good]
    # And every reported reason names a broken message (a message of several bad records has several)
    broken = [f"SQS message m{i}" for i, is_good in enumerate(good) if not is_good]
    assert all(any(r.startswith(b + " ") or r.startswith(b + ":") for b in broken) for r in parsed.malformed)
