"""An event's objects through a stand-in pipeline: which SQS messages come back, and when the invocation raises.

These pin the behaviour pipeline/batch.py keeps from the hand-written loop it replaced (they pass on both).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pipeline.batch import handle
from pipeline.errors import SourceUnavailableError, UnusableFileError
from pipeline.ports import ObjectRef
from pipeline.process import ObjectResult
from tests.unit.stand_ins import OneByOne


class FailingPipeline(OneByOne):
    """Loads every object except those named in ``errors``, which raise the given exception."""

    def __init__(self, errors: dict[str, Exception]) -> None:
        self.errors = errors
        self.processed: list[str] = []

    def process(self, ref: ObjectRef) -> ObjectResult:
        self.processed.append(ref.key)
        if ref.key in self.errors:
            raise self.errors[ref.key]
        return ObjectResult(ref.bucket, ref.key, ref.version, "loaded", rows_loaded=2, rows_rejected=1)


def notification(*keys: str) -> dict[str, Any]:
    s3 = [{"bucket": {"name": "b"}, "object": {"key": k, "eTag": "e"}} for k in keys]
    return {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": o} for o in s3]}


def sqs_batch(*messages: tuple[str, list[str]]) -> dict[str, Any]:
    return {
        "Records": [
            {"eventSource": "aws:sqs", "messageId": mid, "body": json.dumps(notification(*keys))}
            for mid, keys in messages
        ]
    }


RETRIABLE = SourceUnavailableError("S3 GET timed out")


@pytest.mark.parametrize(
    ("messages", "errors", "failures", "processed"),
    [
        ([("m1", ["a"]), ("m2", ["b"]), ("m3", ["c"])], {"b": RETRIABLE}, ["m2"], ["a", "b", "c"]),
        ([("m1", ["a", "b"]), ("m2", ["c"])], {"a": RETRIABLE}, ["m1"], ["a", "b", "c"]),
        ([("m1", ["a"]), ("m2", ["b"])], {"a": RETRIABLE, "b": RETRIABLE}, ["m1", "m2"], ["a", "b"]),
        ([("m1", ["a"])], {"a": UnusableFileError("no header")}, ["m1"], ["a"]),
        ([("m1", ["a"]), ("m2", ["b"])], {}, [], ["a", "b"]),
    ],
    ids=["one-of-three", "one-object-of-a-two-object-message", "every-message", "permanent-raised", "none"],
)
def test_an_sqs_message_comes_back_when_one_of_its_objects_raised(
    messages: list[tuple[str, list[str]]], errors: dict[str, Exception], failures: list[str], processed: list[str]
) -> None:
    # Given an SQS batch whose objects raise the given pipeline errors
    pipeline = FailingPipeline(errors)
    # When the batch is handled
    summary = handle(sqs_batch(*messages), pipeline)
    # Then every object was tried, only the messages holding a failed object come back, and nothing is raised
    assert pipeline.processed == processed
    assert summary["batchItemFailures"] == [{"itemIdentifier": m} for m in failures]
    # And each failed object is an error result with its reason code; the loaded ones count their rows
    statuses = {r["key"]: (r["status"], r.get("reason_code")) for r in summary["objects"]}
    assert statuses == {k: ("error", errors[k].reason) if k in errors else ("loaded", None) for k in processed}
    loaded = len(processed) - len(errors)
    assert (summary["rows_loaded"], summary["rows_rejected"]) == (2 * loaded, loaded)


def test_a_direct_event_raises_its_first_pipeline_error_after_trying_every_object() -> None:
    # Given an S3 notification of three objects, the first two of which raise
    second = SourceUnavailableError("second")
    pipeline = FailingPipeline({"a": RETRIABLE, "b": second})
    # When it is handled / Then the first error is raised, after the third object was loaded
    with pytest.raises(SourceUnavailableError) as raised:
        handle(notification("a", "b", "c"), pipeline)
    assert raised.value is RETRIABLE and pipeline.processed == ["a", "b", "c"]


@pytest.mark.parametrize("event", [sqs_batch(("m1", ["a"]), ("m2", ["b"])), notification("a", "b")], ids=["sqs", "s3"])
def test_an_error_that_is_not_a_pipeline_error_fails_the_invocation(event: dict[str, Any]) -> None:
    # Given a pipeline with a bug: loading "a" raises something that is not a PipelineError
    pipeline = FailingPipeline({"a": KeyError("bug")})
    # When the event is handled / Then the bug is raised (the whole delivery comes back), not swallowed
    with pytest.raises(KeyError):
        handle(event, pipeline)
