"""An expected skip (S3's test event, a delete notification) is quiet: no error, no warning, a metric."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest

SKIPPED_EVENTS = [
    {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "t", "Bucket": "b", "RequestId": "r", "HostId": "h"},
    {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectRemoved:Delete",
                "eventTime": "t",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "incoming/x.csv", "sequencer": "1"}},
            }
        ]
    },
]


@pytest.mark.parametrize("event", SKIPPED_EVENTS, ids=["s3-test-event", "delete"])
def test_an_expected_skip_warns_nothing_and_counts_a_metric(
    harness: Any, event: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an event that names nothing to load, and the handler imported (its init logs an error of its own
    # when imported without the function's environment, as tests do; that is not the delivery's)
    import handler.app  # noqa: F401

    capsys.readouterr()

    # When it is delivered, with every warning recorded
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = harness.invoke(event)

    # Then it is skipped without any warning or error log, and the skip is counted as a metric
    assert summary["objects"] == [] and len(summary["skipped"]) == 1
    assert [str(w.message) for w in caught] == []
    printed = capsys.readouterr()
    assert '"level":"ERROR"' not in printed.out + printed.err
    blobs = [json.loads(line) for line in printed.out.splitlines() if line.startswith('{"_aws"')]
    assert [blob.get("RecordsSkipped") for blob in blobs] == [[1.0]]
