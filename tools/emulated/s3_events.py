"""Put a file in the local stack's S3 and get the event S3 would send for it: the one way tools, tests and
benchmarks do it. Also the one S3 notification shape ``tools/commands/backfill.py`` sends to the deployed queue, and SQS
messages wrapped as Lambda delivers them."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from tools.emulated.local_stack import BUCKET, REGION, LocalStack

MULTIPART_CHUNK_BYTES = 256 << 20  # big benchmark files go up in a few parts
FAKE_SEQUENCER = "0A1B2C3D4E5F678901"  # the local uploads' events carry one, as S3's do
EVENT_TIME = "2026-11-24T12:00:00.000Z"


def s3_put_event(
    bucket: str,
    key: str,
    etag: str,
    size: int,
    version_id: str | None = None,
    *,
    sequencer: str | None = FAKE_SEQUENCER,
    configuration_id: str = "csv-upload",
    event_time: str = EVENT_TIME,
    region: str = REGION,
) -> dict[str, Any]:
    """An S3 ObjectCreated:Put notification, as S3 sends it (the key URL-encoded with `+` for spaces).

    ``sequencer=None`` leaves it out (a backfill has none: versions are then ordered by Last-Modified);
    ``configuration_id`` is the name of the notification configuration that sent it.
    """
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag}
    if sequencer is not None:
        obj["sequencer"] = sequencer
    if version_id:
        obj["versionId"] = version_id
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": event_time,
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": configuration_id,
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": obj,
                },
            }
        ]
    }


def upload(stack: LocalStack, key: str, body: bytes, bucket: str = BUCKET) -> dict[str, Any]:
    """PUT ``body`` under ``key``; the ObjectCreated event for that version."""
    put = stack.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    return s3_put_event(bucket, key, put["ETag"].strip('"'), len(body), put.get("VersionId"))


def upload_file(s3: Any, bucket: str, path: Path, key: str) -> dict[str, Any]:
    """Upload the file at ``path`` (multipart when big) with the boto3 client ``s3``; the ObjectCreated event."""
    from boto3.s3.transfer import TransferConfig

    s3.upload_file(str(path), bucket, key, Config=TransferConfig(multipart_chunksize=MULTIPART_CHUNK_BYTES))
    head = s3.head_object(Bucket=bucket, Key=key)
    return s3_put_event(bucket, key, head["ETag"].strip('"'), int(head["ContentLength"]), head.get("VersionId"))


def _lambda_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """A message attribute as Lambda's SQS event spells it (camelCase keys, binary as base64)."""

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    attribute: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [b64(v) for v in value.get("BinaryListValues", [])],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = b64(value["BinaryValue"])
    return attribute


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One received message (boto3's ReceiveMessage shape) as a record of Lambda's SQS event."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {k: _lambda_attribute(v) for k, v in message.get("MessageAttributes", {}).items()},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def lambda_sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str = REGION) -> dict[str, Any]:
    """SQS messages as received with boto3 (``receive_message``, ``AttributeNames``/``MessageAttributeNames``
    ``All``) turned into the event Lambda's SQS event source delivers: one record per message."""
    return {"Records": [sqs_record(message, queue_arn, region) for message in messages]}
