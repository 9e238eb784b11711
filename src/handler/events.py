"""Turn any of the three supported event shapes into the S3 objects to load.

* S3 notifications (``Records[].eventSource == aws:s3``): every record, not only the first;
* the same notifications inside SQS messages (``Records[].eventSource == aws:sqs``);
* EventBridge "Object Created" events from S3.

S3 notification keys arrive URL-encoded (``in/my+file%2B1+%C3%A9.csv`` is ``in/my file+1 é.csv``) and
Powertools' per-record ``s3.get_object.key`` does not decode them, so each key is decoded here.
``s3:TestEvent`` and records that are not ObjectCreated are skipped with a reason, never an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event, SQSEvent
from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventBridgeNotificationEvent

from adapters.s3 import ObjectRef


@dataclass(frozen=True)
class EventObject:
    ref: ObjectRef
    message_id: str | None = None  # the SQS message it came in, for partial batch failures


@dataclass
class ParsedEvent:
    shape: str  # s3 | sqs | eventbridge | unknown
    objects: list[EventObject] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bad_messages: list[str] = field(default_factory=list)  # SQS message ids whose body is not an S3 event


def parse_event(event: dict[str, Any]) -> ParsedEvent:
    if event.get("Event") == "s3:TestEvent":
        return ParsedEvent("s3", skipped=["s3:TestEvent"])
    if event.get("source") == "aws.s3" and "detail" in event:
        return _eventbridge(event)
    records = event.get("Records")
    if isinstance(records, list) and records:
        source = records[0].get("eventSource") or records[0].get("EventSource")
        if source == "aws:sqs":
            return _sqs(event)
        if source == "aws:s3":
            parsed = ParsedEvent("s3")
            _s3_records(event, parsed, None)
            return parsed
    return ParsedEvent("unknown", skipped=["event shape not recognised (expected S3, SQS or EventBridge)"])


def _s3_records(event: dict[str, Any], parsed: ParsedEvent, message_id: str | None) -> None:
    for record in S3Event(event).records:
        name = record.event_name
        obj = record.s3.get_object
        key = unquote_plus(obj.key)
        if not name.startswith("ObjectCreated:"):
            parsed.skipped.append(f"{name} s3://{record.s3.bucket.name}/{key}")
            continue
        parsed.objects.append(
            EventObject(
                ObjectRef(
                    bucket=record.s3.bucket.name,
                    key=key,
                    version_id=obj.version_id or None,
                    etag=obj.etag or None,
                    size=obj.get("size"),
                ),
                message_id,
            )
        )


def _sqs(event: dict[str, Any]) -> ParsedEvent:
    parsed = ParsedEvent("sqs")
    for message in SQSEvent(event).records:
        try:
            body = json.loads(message.body)
        except (TypeError, json.JSONDecodeError):
            parsed.bad_messages.append(message.message_id)
            parsed.skipped.append(f"SQS message {message.message_id}: body is not JSON")
            continue
        if isinstance(body, dict) and body.get("Type") == "Notification" and "Message" in body:  # via SNS
            body = json.loads(body["Message"])
        if isinstance(body, dict) and body.get("Event") == "s3:TestEvent":
            parsed.skipped.append("s3:TestEvent")
        elif isinstance(body, dict) and isinstance(body.get("Records"), list):
            _s3_records(body, parsed, message.message_id)
        elif isinstance(body, dict) and body.get("source") == "aws.s3":
            inner = _eventbridge(body)
            parsed.objects += [EventObject(o.ref, message.message_id) for o in inner.objects]
            parsed.skipped += inner.skipped
        else:
            parsed.skipped.append(f"SQS message {message.message_id}: not an S3 event")
    return parsed


def _eventbridge(event: dict[str, Any]) -> ParsedEvent:
    parsed = ParsedEvent("eventbridge")
    bridge = S3EventBridgeNotificationEvent(event)
    if bridge.detail_type != "Object Created":
        parsed.skipped.append(f"{bridge.detail_type} s3://{bridge.detail.bucket.name}/{bridge.detail.object.key}")
        return parsed
    obj = bridge.detail.object
    parsed.objects.append(
        EventObject(
            ObjectRef(
                bucket=bridge.detail.bucket.name,
                key=obj.key,  # Powertools decodes EventBridge keys
                version_id=obj.get("version-id") or None,
                etag=obj.etag or None,
                size=obj.size,
            )
        )
    )
    return parsed
