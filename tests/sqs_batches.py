"""S3 notifications delivered to the handler as one SQS batch, and what its partial-batch response sends back."""

from __future__ import annotations

import json
from typing import Any


def sqs_batch(events: list[dict[str, Any]]) -> dict[str, Any]:
    """S3 notifications as one SQS batch, as the queue delivers them (one message each: m0, m1, ...)."""
    return {
        "Records": [
            {"eventSource": "aws:sqs", "messageId": f"m{i}", "receiptHandle": f"r{i}", "body": json.dumps(event)}
            for i, event in enumerate(events)
        ]
    }


def failed_messages(summary: dict[str, Any]) -> list[str]:
    """The messages the handler's response sends back to the queue (ReportBatchItemFailures), sorted."""
    return sorted(f["itemIdentifier"] for f in summary["batchItemFailures"])
