"""tools/backfill.py against moto server + fakesnow: in process (the same idempotent path as the handler, in
parallel), and through the queue (the messages it sends, received and delivered to the handler)."""

from __future__ import annotations

import gzip
import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import pytest

from tools.backfill import BackfillError, backfill, backfill_to_queue, find_target, main


def test_backfill_skips_objects_already_loaded(harness: Any, make_csv: Any, monkeypatch: Any) -> None:
    # Given 5 objects under a prefix (plain and gzip), 2 of them already loaded through the handler
    prefix = f"backfill-{harness.tables['target'].lower()}/"
    sizes = [50, 60, 70, 80, 90]
    events = [
        harness.put(f"{prefix}part-{i}.csv" + (".gz" if i % 2 else ""), make_csv(n), gz=bool(i % 2))
        for i, n in enumerate(sizes)
    ]
    harness.put(f"{prefix}notes.txt", b"not a CSV, not listed")
    for event in events[:2]:
        assert harness.invoke(event)["objects"][0]["status"] == "loaded"
    assert harness.count() == sizes[0] + sizes[1]

    # When the backfill runs over the prefix with 3 workers
    for name, value in harness.env.items():
        monkeypatch.setenv(name, value)
    from pipeline.settings import get_settings

    get_settings.cache_clear()
    summary = backfill(harness.bucket, prefix, workers=3, progress=False, s3=harness.stack.client("s3"))

    # Then the 3 new objects load, the 2 loaded ones are duplicates, and every row is there exactly once
    assert summary["objects"] == 5
    assert summary["loaded"] == 3
    assert summary["duplicate"] == 2
    assert summary["failed"] == summary["errors"] == 0
    assert summary["rows_loaded"] == sum(sizes[2:])
    assert harness.count() == sum(sizes)
    assert harness.count("ledger", "STATUS = 'LOADED'") == 5

    # And a second backfill finds everything loaded
    again = backfill(harness.bucket, prefix, workers=3, progress=False, s3=harness.stack.client("s3"))
    assert again["duplicate"] == 5
    assert again["loaded"] == 0
    assert harness.count() == sum(sizes)


# --- through the queue: what `make backfill S3=...` sends, delivered to the handler as Lambda delivers it ----------
# moto (server mode) plays CloudFormation, S3 and SQS: the stack here is a small one with the same output names as
# template.yaml (IngestQueueUrl, InputBucketName, parameter InputPrefix), since moto cannot deploy the SAM template.

INPUT_PREFIX = "incoming/"


@dataclass
class Deployed:
    """A moto CloudFormation stack with an ingest queue, and a versioned bucket it reads (as template.yaml's)."""

    name: str
    queue_url: str
    queue_arn: str
    bucket: str


@pytest.fixture
def deployed(harness: Any) -> Deployed:
    suffix = uuid.uuid4().hex[:8]
    bucket = f"backfill-{suffix}"
    s3 = harness.stack.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})  # as deployed
    template = {
        "Parameters": {"InputPrefix": {"Type": "String", "Default": INPUT_PREFIX}},
        "Resources": {"IngestQueue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 60}}},
        "Outputs": {"IngestQueueUrl": {"Value": {"Ref": "IngestQueue"}}, "InputBucketName": {"Value": bucket}},
    }
    name = f"tumour-scoring-{suffix}"
    cfn = harness.stack.client("cloudformation")
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template))
    outputs = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName=name)["Stacks"][0]["Outputs"]}
    url = outputs["IngestQueueUrl"]
    arn = harness.stack.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return Deployed(name, url, arn["QueueArn"], bucket)


def put(harness: Any, deployed: Deployed, key: str, body: bytes) -> dict[str, Any]:
    from tools.s3_events import upload

    return upload(harness.stack, key, gzip.compress(body) if key.endswith(".gz") else body, deployed.bucket)


def send(harness: Any, deployed: Deployed, prefix: str, **options: Any) -> tuple[dict[str, Any], list[int]]:
    """Run the queue backfill over s3://bucket/prefix; its summary, and the entries of each SendMessageBatch."""
    sqs = harness.stack.client("sqs")
    batches: list[int] = []
    sqs.meta.events.register(
        "provide-client-params.sqs.SendMessageBatch", lambda params, **_: batches.append(len(params["Entries"]))
    )
    target = find_target(harness.stack.client("cloudformation"), deployed.name)
    summary = backfill_to_queue(
        harness.stack.client("s3"), sqs, target, deployed.bucket, prefix, progress=False, **options
    )
    return summary, batches


def receive_all(harness: Any, deployed: Deployed) -> list[dict[str, Any]]:
    """Every message waiting in the queue (received, then deleted, as the event source mapping does)."""
    sqs = harness.stack.client("sqs")
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=deployed.queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
    ).get("Messages", []):
        messages.extend(batch)
        sqs.delete_message_batch(
            QueueUrl=deployed.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    return messages


def deliver(harness: Any, deployed: Deployed, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages to the handler in SQS events of up to 10 records (QueueBatchSize's default); each summary."""
    from tools.s3_events import lambda_sqs_event

    return [
        harness.invoke(lambda_sqs_event(messages[i : i + 10], deployed.queue_arn)) for i in range(0, len(messages), 10)
    ]


ODD_KEYS = ["with space.csv", "plus+sign.csv", "ünïcødé ✓.csv.gz", "per%cent & (1).csv", "deep/er/x.csv.gz"]


def test_a_queue_backfill_is_loaded_by_the_handler_and_a_second_one_loads_nothing(
    harness: Any, deployed: Deployed, make_csv: Any
) -> None:
    """Given a versioned bucket with 12 current .csv/.csv.gz objects under the stack's InputPrefix (odd keys
    among them), one overwritten, one deleted, a .txt, a CSV outside the prefix, and one object already loaded
    by its own upload's notification
    When `make backfill` sends s3://bucket/ (wider than InputPrefix) to the stack's queue, and the messages
    received from it are delivered to the handler as Lambda delivers them
    Then 12 messages go in batches of 10 and 2, each one S3 notification naming a current version, every
    object loads once, the one loaded before is a duplicate, and no message fails;
    And a second backfill of the same prefix loads nothing twice"""
    keys = [f"{INPUT_PREFIX}{k}" for k in ODD_KEYS] + [f"{INPUT_PREFIX}part-{i}.csv" for i in range(7)]
    rows = {key: 20 + i for i, key in enumerate(keys)}
    versions = {key: put(harness, deployed, key, make_csv(n))["Records"][0]["s3"]["object"] for key, n in rows.items()}
    overwritten = keys[-1]
    put(harness, deployed, overwritten, make_csv(3))  # version 1 ...
    versions[overwritten] = put(harness, deployed, overwritten, make_csv(rows[overwritten]))["Records"][0]["s3"][
        "object"
    ]  # ... replaced by version 2
    put(harness, deployed, f"{INPUT_PREFIX}deleted.csv", make_csv(5))
    harness.stack.client("s3").delete_object(Bucket=deployed.bucket, Key=f"{INPUT_PREFIX}deleted.csv")
    put(harness, deployed, f"{INPUT_PREFIX}notes.txt", b"not a CSV")
    put(harness, deployed, "elsewhere/outside.csv", make_csv(5))
    live = put(harness, deployed, f"{INPUT_PREFIX}live.csv", make_csv(11))
    assert harness.invoke(live)["objects"][0]["status"] == "loaded"
    keys.append(f"{INPUT_PREFIX}live.csv")
    rows[keys[-1]] = 11
    versions[keys[-1]] = live["Records"][0]["s3"]["object"]

    summary, batches = send(harness, deployed, "")
    messages = receive_all(harness, deployed)

    assert summary["prefix"] == INPUT_PREFIX
    assert (summary["objects"], summary["sent"], summary["failed"], summary["failures"]) == (13, 13, 0, [])
    assert sorted(batches) == [3, 10]
    bodies = [json.loads(m["Body"]) for m in messages]
    assert all(m["MessageAttributes"]["origin"]["StringValue"] == "tools.backfill" for m in messages)
    records = [record for body in bodies for record in body["Records"]]
    assert len(records) == len(bodies) == 13  # one notification per message, as S3 sends
    assert {r["eventSource"] for r in records} == {"aws:s3"}
    assert {r["s3"]["configurationId"] for r in records} == {"backfill"}
    sent = {unquote_plus(r["s3"]["object"]["key"]): r["s3"]["object"] for r in records}
    assert sent.keys() == set(keys)
    for key, obj in sent.items():
        assert obj["key"] == quote_plus(key, safe="/")
        assert obj["versionId"] == versions[key]["versionId"] and obj["eTag"] == versions[key]["eTag"]
        assert obj["size"] == versions[key]["size"] and "sequencer" not in obj

    results = deliver(harness, deployed, messages)

    assert [r["batchItemFailures"] for r in results] == [[], []]
    statuses = {o["key"]: o["status"] for r in results for o in r["objects"]}
    assert statuses == {key: "duplicate" if key.endswith("live.csv") else "loaded" for key in keys}
    assert harness.count() == sum(rows.values())
    assert harness.count("ledger", "STATUS = 'LOADED'") == 13

    again, _ = send(harness, deployed, INPUT_PREFIX)
    results = deliver(harness, deployed, receive_all(harness, deployed))

    assert (again["sent"], again["failed"]) == (13, 0)
    assert [o["status"] for r in results for o in r["objects"]] == ["duplicate"] * 13
    assert harness.count() == sum(rows.values())
    assert harness.count("ledger", "STATUS = 'LOADED'") == 13


def test_a_dry_run_lists_and_sends_nothing(
    harness: Any, deployed: Deployed, make_csv: Any, monkeypatch: Any, capsys: Any
) -> None:
    """Given 3 objects under the stack's prefix
    When `python -m tools.backfill s3://bucket/incoming/ --stack NAME --dry-run` runs (against moto)
    Then it exits 0, lists the 3 objects with their versions, counts them, and the queue stays empty"""
    keys = [f"{INPUT_PREFIX}dry {i}.csv" for i in range(3)]
    versions = [put(harness, deployed, key, make_csv(4))["Records"][0]["s3"]["object"]["versionId"] for key in keys]
    for name, value in harness.stack.function_env().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)

    code = main([f"s3://{deployed.bucket}/{INPUT_PREFIX}", "--stack", deployed.name, "--dry-run", "--no-progress"])

    out = capsys.readouterr().out
    assert code == 0
    for key, version in zip(keys, versions, strict=True):
        assert f"s3://{deployed.bucket}/{key} ({version})" in out
    summary = json.loads(out[out.index("{") :])
    assert (summary["dry_run"], summary["objects"], summary["sent"]) == (True, 3, 0)
    attributes = harness.stack.client("sqs").get_queue_attributes(QueueUrl=deployed.queue_url, AttributeNames=["All"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert receive_all(harness, deployed) == []


def test_a_stack_without_an_ingest_queue_is_refused(harness: Any) -> None:
    """Given no stack of that name, and a stack deployed before the queue (no IngestQueueUrl output)
    When the backfill looks for its queue
    Then it stops with an error that says which, before listing or sending anything"""
    cfn = harness.stack.client("cloudformation")
    old = f"old-{uuid.uuid4().hex[:8]}"
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}, "Outputs": {"X": {"Value": "y"}}}
    cfn.create_stack(StackName=old, TemplateBody=json.dumps(template))

    with pytest.raises(BackfillError, match="no CloudFormation stack"):
        find_target(cfn, f"missing-{uuid.uuid4().hex[:8]}")
    with pytest.raises(BackfillError, match="no IngestQueueUrl output"):
        find_target(cfn, old)


def test_an_in_process_backfill_of_a_versioned_bucket_skips_what_notifications_loaded(
    harness: Any, deployed: Deployed, make_csv: Any, monkeypatch: Any
) -> None:
    """Given a versioned bucket (as deployed) with an object its upload's notification (with versionId) loaded
    When the in-process backfill runs over the prefix
    Then it finds the same load (keyed on the version id, not the ETag): a duplicate, nothing loaded twice"""
    event = put(harness, deployed, f"{INPUT_PREFIX}loaded.csv", make_csv(9))
    assert harness.invoke(event)["objects"][0]["status"] == "loaded"
    for name, value in harness.env.items():
        monkeypatch.setenv(name, value)
    from pipeline.settings import get_settings

    get_settings.cache_clear()

    summary = backfill(deployed.bucket, INPUT_PREFIX, workers=1, progress=False, s3=harness.stack.client("s3"))

    assert (summary["objects"], summary["duplicate"], summary["loaded"]) == (1, 1, 0)
    assert harness.count() == 9
    assert harness.count("ledger") == 1
