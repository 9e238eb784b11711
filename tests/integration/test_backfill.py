"""tools/commands/backfill.py against moto server + fakesnow: in process (the same idempotent path as the handler, in
parallel), and through the queue (the messages it sends, received and delivered to the handler)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import pytest

from tools.commands.backfill import BackfillError, backfill, backfill_to_queue, find_target, main

ROOT = Path(__file__).resolve().parents[2]


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
    from tools.emulated.s3_events import upload

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
    from tools.emulated.s3_events import lambda_sqs_event

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


READ_ONLY_CALLS = ("List", "Get", "Head", "Describe")


def _rows_in(harness: Any, table: str) -> int:
    """Rows in one of this test's tables; 0 when the table was never created."""
    exists = harness.query(
        "SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = CURRENT_SCHEMA() "
        f"AND TABLE_NAME = '{harness.tables[table]}'"
    )[0][0]
    return harness.count(table) if exists else 0


@pytest.mark.parametrize("mode", ["queue", "in-process"])
def test_a_dry_run_lists_and_sends_loads_and_writes_nothing(
    mode: str, harness: Any, deployed: Deployed, make_csv: Any, monkeypatch: Any, capsys: Any
) -> None:
    """Given 3 objects under the stack's prefix, none loaded yet, and the function's environment
    When `python -m tools.commands.backfill s3://bucket/incoming/ --dry-run` runs through the queue (--stack NAME) or in
    process (--in-process), against moto and fakesnow
    Then it exits 0, lists the 3 objects with their versions and counts them; every AWS call it made only read
    (no message sent, no object written), the queue stays empty, and no row, reject or ledger row exists"""
    keys = [f"{INPUT_PREFIX}dry {i}.csv" for i in range(3)]
    versions = [put(harness, deployed, key, make_csv(4))["Records"][0]["s3"]["object"]["versionId"] for key in keys]
    for name, value in harness.env.items():
        monkeypatch.setenv(name, value)
    from botocore.client import BaseClient

    from pipeline.settings import get_settings

    get_settings.cache_clear()
    calls: list[str] = []
    real_call = BaseClient._make_api_call

    def spy(client: Any, operation: str, params: Any) -> Any:
        calls.append(operation)
        return real_call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", spy)
    how = ["--stack", deployed.name] if mode == "queue" else ["--in-process"]

    code = main([f"s3://{deployed.bucket}/{INPUT_PREFIX}", *how, "--dry-run", "--no-progress"])

    monkeypatch.setattr(BaseClient, "_make_api_call", real_call)
    out = capsys.readouterr().out
    assert code == 0
    for key, version in zip(keys, versions, strict=True):
        assert f"s3://{deployed.bucket}/{key} ({version})" in out
    summary = json.loads(out[out.index("{") :])
    assert (summary["dry_run"], summary["objects"]) == (True, 3)
    assert summary.get("sent", 0) == summary.get("loaded", 0) == 0
    assert calls, "the dry run listed nothing"
    assert [c for c in calls if not c.startswith(READ_ONLY_CALLS)] == []
    attributes = harness.stack.client("sqs").get_queue_attributes(QueueUrl=deployed.queue_url, AttributeNames=["All"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "0"
    assert receive_all(harness, deployed) == []
    assert [_rows_in(harness, table) for table in ("target", "rejects", "ledger")] == [0, 0, 0]


def test_a_local_dry_run_lists_and_loads_nothing(tmp_path: Path) -> None:
    """Given `python -m tools.commands.backfill --local --dry-run` (`make backfill LOCAL=1 DRY_RUN=1`), with the
    emulated Snowflake kept in a folder
    When it runs (its own fresh moto + fakesnow, in a process of its own, as a user runs it)
    Then it exits 0, lists the seeded .csv / .csv.gz objects (not the .txt) and counts them, loads none (not even
    the one the demo pre-loads), and the emulated Snowflake holds no table with a row in it"""
    db = tmp_path / "db"
    proc = _backfill_tool("--local", "--dry-run", "--db-path", str(db))

    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = [line for line in proc.stdout.splitlines() if line.startswith("s3://")]
    assert len([line for line in listed if "/backfill/2026/part-" in line]) == 6  # part-0 twice: pre-load + all
    assert not any(line.endswith("readme.txt") for line in listed)
    summary = json.loads(proc.stdout[proc.stdout.index("{\n") :])
    assert (summary["dry_run"], summary["objects"], summary["loaded"], summary["rows_loaded"]) == (True, 5, 0, 0)
    assert "pre-loaded:" not in proc.stdout
    assert _tables_with_rows(db) == {}


def _tables_with_rows(db: Path) -> dict[str, int]:
    """Tables of the kept emulated Snowflake that hold rows (none when no database file was ever written)."""
    from tools.emulated.local_stack import DATABASE

    if not (db / f"{DATABASE}.db").exists():
        return {}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    query = "SELECT TABLE_NAME, ROW_COUNT FROM INFORMATION_SCHEMA.TABLES WHERE ROW_COUNT > 0"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "commands" / "query.py"), query, "--db-path", str(db)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return {name: int(n) for name, n in (line.split("\t") for line in proc.stdout.splitlines()[1:])}


@pytest.mark.parametrize(
    "mode",
    [
        ["LOCAL=1"],
        ["LOCAL=1", "S3=s3://hospital-drop-local/incoming/mine/"],
        ["S3=s3://b/incoming/", "IN_PROCESS=1"],
        ["S3=s3://b/incoming/", "STACK=s"],
    ],
)
@pytest.mark.parametrize("dry_run", [True, False])
def test_make_backfill_hands_dry_run_to_every_mode(mode: list[str], dry_run: bool) -> None:
    """Given `make backfill` in each mode (LOCAL=1, IN_PROCESS=1, through the queue), with and without DRY_RUN=1
    When make shows its recipe (-n: nothing runs)
    Then the tools.commands.backfill command carries --dry-run exactly when DRY_RUN=1 was given"""
    shown = subprocess.run(
        ["make", "-n", "backfill", *mode, *(["DRY_RUN=1"] if dry_run else [])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.replace("\\\n", " ")

    command = next(line for line in shown.splitlines() if "-m tools.commands.backfill" in line)
    assert ("--dry-run" in command.split()) == dry_run
    assert ("--local" in command.split()) == ("LOCAL=1" in mode)
    assert ("--in-process" in command.split()) == ("IN_PROCESS=1" in mode)
    for setting in mode:
        if setting.startswith("S3="):
            assert setting.removeprefix("S3=") in command.split()


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


# --- a prefix of the running `make local-stack`'s bucket: make backfill LOCAL=1 S3=s3://hospital-drop-local/... ---


def _backfill_tool(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m tools.commands.backfill` as `make backfill` runs it (PYTHONPATH=src:.), in a process of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNOWFLAKE_", "PYTHONPATH"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    return subprocess.run(
        [sys.executable, "-m", "tools.commands.backfill", *args, "--no-progress"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_prefix_of_the_local_stacks_bucket_is_backfilled_once(local_stack_running: Any, make_csv: Any) -> None:
    """Given `make local-stack` running, with the user's files put in its bucket (two under incoming/mine/, one
    elsewhere) as `aws --endpoint-url` would
    When `make backfill LOCAL=1 S3=s3://hospital-drop-local/incoming/mine/` runs, then again
    Then the first run loads exactly the two files of the prefix into the stack's emulated Snowflake, and the second
    finds both in the ledger: duplicates, nothing loaded twice"""
    import boto3

    from tools.emulated.local_stack import BUCKET

    s3 = boto3.client(
        "s3",
        endpoint_url=local_stack_running.aws_endpoint,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        region_name="us-east-1",
    )
    s3.put_object(Bucket=BUCKET, Key="incoming/mine/a.csv", Body=make_csv(7))
    s3.put_object(Bucket=BUCKET, Key="incoming/mine/b.csv.gz", Body=gzip.compress(make_csv(5)))
    s3.put_object(Bucket=BUCKET, Key="incoming/other/c.csv", Body=make_csv(3))
    url = f"s3://{BUCKET}/incoming/mine/"

    first = _backfill_tool("--local", url, "--stack-env", str(local_stack_running.env_file))
    second = _backfill_tool("--local", url, "--stack-env", str(local_stack_running.env_file))

    assert first.returncode == 0, first.stdout + first.stderr
    summary = json.loads(first.stdout[first.stdout.index("{\n") :])
    assert (summary["objects"], summary["loaded"], summary["rows_loaded"]) == (2, 2, 12)
    assert second.returncode == 0, second.stdout + second.stderr
    again = json.loads(second.stdout[second.stdout.index("{\n") :])
    assert (again["objects"], again["duplicate"], again["loaded"], again["rows_loaded"]) == (2, 2, 0, 0)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["--local", "s3://hospital-drop-local/incoming/", "--stack-env", "{tmp}/none.json"],
            "start `make local-stack`",
        ),
        (
            ["--local", "s3://hospital-drop-local/incoming/", "--stack-env", "{tmp}/stale.json"],
            "no local stack answers",
        ),
        (["s3://bucket/incoming/", "--in-process"], "the function's own environment variables configure the load"),
    ],
    ids=["no-local-stack", "local-stack-stopped", "in-process-without-environment"],
)
def test_a_backfill_with_nothing_to_talk_to_says_so_in_one_line(tmp_path: Path, args: list[str], said: str) -> None:
    """Given no running local stack (no env file, or one left by a stack since stopped), or no function environment
    When the backfill is run
    Then it exits 2 with one line saying what to start or set, and no traceback"""
    stale = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "SNOWFLAKE_HOST": "127.0.0.1", "SNOWFLAKE_PORT": "9",
             "SNOWFLAKE_SECRET_NAME": "local/snowflake/tumour-scoring"}  # fmt: skip
    (tmp_path / "stale.json").write_text(json.dumps({"ScoringFunction": stale}))

    proc = _backfill_tool(*[a.format(tmp=tmp_path) for a in args])

    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert said in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
