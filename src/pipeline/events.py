"""Turn any of the supported event shapes into the S3 objects to load, and never raise on a malformed one.

* S3 notifications (``Records[].eventSource == aws:s3``): every record, not only the first;
* the same notifications inside SQS messages (``Records[].eventSource == aws:sqs``), raw or in an SNS envelope;
* the same notifications in SNS messages delivered straight to the function (``Records[].EventSource == aws:sns``);
* EventBridge "Object Created" events from S3, direct or inside SQS messages.

S3 notification keys arrive URL-encoded (``in/my+file%2B1+%C3%A9.csv`` is ``in/my file+1 é.csv``) and
Powertools' per-record ``s3.get_object.key`` does not decode them, so each key is decoded here.

Every record ends as exactly one of:

* an object to load (``objects``), with the SQS message it came in;
* a skip with a reason (``skipped``): ``s3:TestEvent`` and records that are not ObjectCreated;
* a malformed record (also in ``skipped``, and in ``malformed`` so pipeline/batch.py reports it loudly): a missing or
  wrongly typed field, a body or SNS ``Message`` that is not JSON, an unknown shape. Where SQS is the source its
  message id goes to ``bad_messages``, so it comes back as a batch item failure (and ends in the queue's DLQ,
  kept) while the good messages of the batch load.

A rescore (``make rescore``, tools/commands/rescore.py) is an S3 notification record that also carries
``"rescore": true`` (RESCORE_FIELD: a field S3 never writes): its object is loaded again for the served model
(``ObjectRef.rescore``; docs/exactly-once.md). Any other value of the field is a malformed record.

A malformed record's reason names the record (its index, SQS or SNS message id) and the field, not the field's
value (an unknown eventSource is quoted, cut to 40 characters).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventBridgeNotificationEvent, S3EventRecord
from aws_lambda_powertools.utilities.data_classes.sns_event import SNSEventRecord
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from pipeline.ports import ObjectRef

RESCORE_FIELD = "rescore"  # in an S3 notification record: true asks for the served model's rescore


@dataclass(frozen=True)
class EventObject:
    ref: ObjectRef
    message_id: str | None = None  # the SQS message it came in, for partial batch failures


@dataclass
class ParsedEvent:
    shape: str  # s3 | sqs | sns | eventbridge | unknown
    objects: list[EventObject] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # every record not loaded, with its reason
    malformed: list[str] = field(default_factory=list)  # the skipped reasons that are malformed input
    bad_messages: list[str] = field(default_factory=list)  # SQS message ids holding a malformed record

    def skip(self, reason: str) -> None:
        self.skipped.append(reason)

    def reject(self, reason: str, message_id: str | None = None) -> None:
        """A malformed record: skipped, reported, and its SQS message (if any) failed."""
        self.skipped.append(reason)
        self.malformed.append(reason)
        if message_id is not None and message_id not in self.bad_messages:
            self.bad_messages.append(message_id)


_MISSING = object()


def _get(data: Any, path: str) -> Any:
    """``data[a][b]`` for ``path`` "a.b", or _MISSING when any step is absent or not an object."""
    for name in path.split("."):
        if not isinstance(data, dict) or name not in data:
            return _MISSING
        data = data[name]
    return data


def _problem(data: Any, required: tuple[str, ...], optional: tuple[str, ...] = (), sizes: tuple[str, ...] = ()) -> str:
    """What is wrong with a record before Powertools reads it ("" if nothing): each field named, never its value.

    ``required`` must be non-empty strings; ``optional`` strings when present and not null; ``sizes`` integers.
    """
    for path in required:
        value = _get(data, path)
        if value is _MISSING or value is None:
            return f"no {path}"
        if not isinstance(value, str):
            return f"{path} is not a string"
        if not value:
            return f"{path} is empty"
    for path in optional:
        value = _get(data, path)
        if value is not _MISSING and value is not None and not isinstance(value, str):
            return f"{path} is not a string"
    for path in sizes:
        value = _get(data, path)
        if value is not _MISSING and value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return f"{path} is not an integer"
    return ""


def _describe(value: Any) -> str:
    """A record's source for a reason: short, so a reason never carries a record's content."""
    text = value if isinstance(value, str) else type(value).__name__
    return text if len(text) <= 40 else text[:40] + "..."


def parse_event(event: Any) -> ParsedEvent:
    if not isinstance(event, dict):
        parsed = ParsedEvent("unknown")
        parsed.reject("event is not a JSON object")
        return parsed
    if event.get("Event") == "s3:TestEvent":
        return ParsedEvent("s3", skipped=["s3:TestEvent"])
    if event.get("source") == "aws.s3":
        parsed = ParsedEvent("eventbridge")
        _eventbridge(event, parsed, None, "EventBridge event")
        return parsed
    records = event.get("Records")
    if isinstance(records, list) and records:
        return _records(records)
    parsed = ParsedEvent("unknown")
    parsed.reject("event shape not recognised (expected S3, SQS, SNS or EventBridge)")
    return parsed


def _source(record: Any) -> Any:
    return record.get("eventSource") or record.get("EventSource") if isinstance(record, dict) else None


def _records(records: list[Any]) -> ParsedEvent:
    """Lambda never mixes sources in one event; each record is still read by its own source."""
    parsed = ParsedEvent(_shape(records))
    for index, record in enumerate(records):
        add_record(parsed, index, record)
    return parsed


def _shape(records: list[Any]) -> str:
    sources = [_source(r) for r in records]
    return next((s for s in ("aws:sqs", "aws:sns", "aws:s3") if s in sources), "unknown").removeprefix("aws:")


def sqs_records(event: Any) -> list[Any] | None:
    """The records of an event parse_event would read as SQS (one message each), else None."""
    if not isinstance(event, dict) or event.get("Event") == "s3:TestEvent" or event.get("source") == "aws.s3":
        return None
    records = event.get("Records")
    return records if isinstance(records, list) and records and _shape(records) == "sqs" else None


def add_record(parsed: ParsedEvent, index: int, record: Any) -> None:
    """Read the event's record number ``index`` into ``parsed`` (as parse_event does for each)."""
    where = f"record {index}"
    source = _source(record)
    if not isinstance(record, dict):
        parsed.reject(f"{where} is not an object")
    elif source == "aws:sqs":
        _sqs_message(SQSRecord(record), parsed, where)
    elif source == "aws:sns":
        _sns_message(SNSEventRecord(record), parsed, where)
    elif source == "aws:s3":
        _s3_record(record, parsed, None, where)
    elif source is None:
        parsed.reject(f"{where}: no eventSource")
    else:
        parsed.reject(f"{where}: event source {_describe(source)!r} is not aws:s3, aws:sqs or aws:sns")


def _sqs_message(message: SQSRecord, parsed: ParsedEvent, where: str) -> None:
    message_id = _get(message.raw_event, "messageId")
    if not isinstance(message_id, str) or not message_id:
        # Without an id the message cannot be named in batchItemFailures: reported, and left to SQS.
        parsed.reject(f"SQS {where}: no messageId")
        return
    where = f"SQS message {message_id}"
    if not isinstance(_get(message.raw_event, "body"), str):
        parsed.reject(f"{where}: body is not a string", message_id)
        return
    try:
        body = json.loads(message.body)
    except (ValueError, RecursionError):  # JSONDecodeError, an over-long integer, nesting too deep
        parsed.reject(f"{where}: body is not JSON", message_id)
        return
    _notification(body, parsed, message_id, where, sns_envelope_allowed=True)


def _sns_message(record: SNSEventRecord, parsed: ParsedEvent, where: str) -> None:
    """SNS delivered straight to the function: its Message is the S3 notification (one record per invocation)."""
    message_id = _get(record.raw_event, "Sns.MessageId")
    where = f"SNS message {message_id}" if isinstance(message_id, str) and message_id else f"SNS {where}"
    if not isinstance(_get(record.raw_event, "Sns.Message"), str):
        parsed.reject(f"{where}: Sns.Message is missing or not a string")
        return
    _sns_body(record.sns.message, parsed, None, where)


def _sns_body(message: str, parsed: ParsedEvent, message_id: str | None, where: str) -> None:
    try:
        body = json.loads(message)
    except (ValueError, RecursionError):
        parsed.reject(f"{where}: SNS Message is not JSON", message_id)
        return
    _notification(body, parsed, message_id, where, sns_envelope_allowed=False)


def _notification(
    body: Any, parsed: ParsedEvent, message_id: str | None, where: str, *, sns_envelope_allowed: bool
) -> None:
    """The content of an SQS body or SNS Message: an S3 notification, an EventBridge event, or an SNS envelope."""
    if not isinstance(body, dict):
        parsed.reject(f"{where}: content is not a JSON object", message_id)
    elif sns_envelope_allowed and body.get("Type") == "Notification" and "Message" in body:  # SNS -> SQS
        if not isinstance(body["Message"], str):
            parsed.reject(f"{where}: SNS Message is not a string", message_id)
        else:
            _sns_body(body["Message"], parsed, message_id, where)
    elif body.get("Event") == "s3:TestEvent":
        parsed.skip("s3:TestEvent")
    elif body.get("source") == "aws.s3":
        _eventbridge(body, parsed, message_id, where)
    elif isinstance(body.get("Records"), list) and body["Records"]:
        for index, record in enumerate(body["Records"]):
            _s3_record(record, parsed, message_id, f"{where} record {index}")
    else:
        parsed.reject(f"{where}: not an S3 notification or EventBridge event", message_id)


def _fields_problem(data: Any, kind: str, prefix: str, version: str, etag: str) -> str:
    """_problem for an "object created" record: what happened, bucket and key required; version id, ETag and
    sequencer optional strings; size an optional integer (under ``prefix``: s3 or EventBridge's detail)."""
    if not isinstance(data, dict):
        return "is not an object"
    obj = f"{prefix}.object."
    required = (kind, f"{prefix}.bucket.name", obj + "key")
    return _problem(data, required, optional=(obj + version, obj + etag, obj + "sequencer"), sizes=(obj + "size",))


def _s3_record(data: Any, parsed: ParsedEvent, message_id: str | None, where: str) -> None:
    if problem := _fields_problem(data, "eventName", "s3", "versionId", "eTag"):
        parsed.reject(f"{where}: {problem}", message_id)
        return
    rescore = data.get(RESCORE_FIELD, False)
    if not isinstance(rescore, bool):
        parsed.reject(f"{where}: {RESCORE_FIELD} is not true or false", message_id)
        return
    record = S3EventRecord(data)
    s3 = record.s3.get_object
    version, etag, size, sequencer = s3.version_id, s3.etag, s3.get("size"), s3.get("sequencer")
    # Powertools' per-record key is not decoded
    ref = ObjectRef(
        record.s3.bucket.name, unquote_plus(s3.key), version or None, etag or None, size, sequencer or None, rescore
    )
    _created(parsed, message_id, record.event_name, record.event_name.startswith("ObjectCreated:"), ref)


def _eventbridge(event: dict[str, Any], parsed: ParsedEvent, message_id: str | None, where: str) -> None:
    if problem := _fields_problem(event, "detail-type", "detail", "version-id", "etag"):
        parsed.reject(f"{where}: {problem}", message_id)
        return
    bridge = S3EventBridgeNotificationEvent(event)
    obj = bridge.detail.object
    ref = ObjectRef(
        bridge.detail.bucket.name,
        obj.key,  # Powertools decodes EventBridge keys
        obj.get("version-id") or None,
        obj.etag or None,
        obj.size,
        obj.get("sequencer") or None,
    )
    _created(parsed, message_id, bridge.detail_type, bridge.detail_type == "Object Created", ref)


def _created(parsed: ParsedEvent, message_id: str | None, what: str, created: bool, ref: ObjectRef) -> None:
    """An object to load if the record says it was created; else a skip naming what happened to it."""
    if created:
        parsed.objects.append(EventObject(ref, message_id))
    else:
        parsed.skip(f"{what} s3://{ref.bucket}/{ref.key}")
