"""Rescoring history (tools/commands/rescore.py, `make rescore`) against moto server + fakesnow: a version an earlier
model version loaded, loaded once more for the served model, exactly once per (object version, model version)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_backfill import INPUT_PREFIX, Deployed, deployed, put, receive_all
from tests.ledger_invariant import check_every_delivery
from tools.commands.rescore import main, rescore_notification

ROOT = Path(__file__).resolve().parents[2]
__all__ = ["deployed"]  # the fixture, shared with test_backfill.py


def model_copy(tmp_path: Path, version: str) -> Path:
    """The shipped model under another model_version: to the function, another import (`make import-model`)."""
    model = tmp_path / version
    model.mkdir()
    for name in ("model.tflite", "metadata.json"):
        (model / name).write_bytes((ROOT / "model" / name).read_bytes())
    metadata = json.loads((model / "metadata.json").read_text())
    (model / "metadata.json").write_text(json.dumps({**metadata, "model_version": version}))
    return model


@pytest.fixture(autouse=True)
def _ledger_tells_the_truth(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """After every delivery to the handler: the ledger's counts are the rows each load (rescores included) put in
    the tables, and the monitoring table has one row per load (tests/ledger_invariant.py)."""
    if "harness" in request.fixturenames:
        check_every_delivery(request.getfixturevalue("harness"), monkeypatch)


@pytest.fixture
def models(tmp_path: Path) -> tuple[Path, Path]:
    """Two model versions: the one that loaded the history, and the one served now."""
    tag = uuid.uuid4().hex[:8]
    return model_copy(tmp_path, f"old-{tag}"), model_copy(tmp_path, f"new-{tag}")


def as_rescore(event: dict[str, Any]) -> dict[str, Any]:
    """An S3 event's object as `make rescore` sends it (the marker in each record; no sequencer)."""
    obj = event["Records"][0]["s3"]
    from pipeline.ports import ObjectRef

    ref = ObjectRef(obj["bucket"]["name"], obj["object"]["key"], obj["object"].get("versionId"), obj["object"]["eTag"],
                    obj["object"]["size"])  # fmt: skip
    return rescore_notification(ref, region="us-east-1", event_time="2026-01-01T00:00:00.000Z")


def model_versions(harness: Any, table: str = "target") -> dict[str, int]:
    rows = harness.query(f"SELECT MODEL_VERSION, COUNT(*) FROM {{{table}}} GROUP BY 1")
    return {str(m): int(n) for m, n in rows}


def ledger(harness: Any) -> list[tuple[Any, ...]]:
    """The ledger's loads (LOADED or FAILED). A STARTED row is an attempt that published nothing (a retry on a
    loaded machine leaves one): a record, not a load (docs/exactly-once.md)."""
    return harness.query(
        "SELECT STATUS, MODEL_VERSION, LOAD_ID, RESCORE_OF FROM {ledger} WHERE STATUS IN ('LOADED', 'FAILED') "
        "ORDER BY STARTED_AT"
    )


def test_a_rescore_loads_a_version_once_more_for_the_served_model_and_once_only(
    harness: Any, make_csv: Any, models: tuple[Path, Path]
) -> None:
    """Given a file loaded by its notification under model version "old"
    When it is rescored with "new" served, then rescored again, and its notification is delivered again
    Then the rescore loads it once more (append: both model versions' rows, told apart by MODEL_VERSION), the
    ledger's row for it is a rescore of the first load (RESCORE_OF), the monitoring table has a row for each load;
    the second rescore and the redelivery are duplicates, and nothing more lands"""
    old, new = models
    event = harness.put("incoming/history.csv", make_csv(30))
    first = harness.invoke(event, MODEL_DIR=str(old))["objects"][0]
    assert first["status"] == "loaded"

    rescored = harness.invoke(as_rescore(event), MODEL_DIR=str(new))["objects"][0]

    assert (rescored["status"], rescored["rescore"], rescored["rows_loaded"]) == ("loaded", True, 30)
    assert model_versions(harness) == {old.name: 30, new.name: 30}
    assert ledger(harness) == [
        ("LOADED", old.name, first["load_id"], None),
        ("LOADED", new.name, rescored["load_id"], first["load_id"]),
    ]
    assert model_versions(harness, "monitoring") == {old.name: 1, new.name: 1}

    again = harness.invoke(as_rescore(event), MODEL_DIR=str(new))["objects"][0]
    redelivered = harness.invoke(event, MODEL_DIR=str(new))["objects"][0]

    assert (again["status"], again["load_id"]) == ("duplicate", rescored["load_id"])
    assert (redelivered["status"], redelivered["load_id"]) == ("duplicate", first["load_id"])
    assert model_versions(harness) == {old.name: 30, new.name: 30}
    assert harness.count("ledger", "STATUS IN ('LOADED', 'FAILED')") == 2
    assert harness.count("monitoring") == 2


def test_a_rescore_of_what_the_served_model_loaded_is_a_duplicate(
    harness: Any, make_csv: Any, models: tuple[Path, Path]
) -> None:
    """Given a file its notification loaded under the served model
    When it is rescored for that same model
    Then it is a duplicate of that load: nothing loads twice under one model version"""
    _, new = models
    event = harness.put("incoming/current.csv", make_csv(12))
    first = harness.invoke(event, MODEL_DIR=str(new))["objects"][0]

    rescored = harness.invoke(as_rescore(event), MODEL_DIR=str(new))["objects"][0]

    assert (rescored["status"], rescored["load_id"]) == ("duplicate", first["load_id"])
    assert harness.count() == 12
    assert harness.count("ledger", "STATUS IN ('LOADED', 'FAILED')") == 1


def test_a_rescore_of_a_version_never_loaded_is_its_ordinary_load(
    harness: Any, make_csv: Any, models: tuple[Path, Path]
) -> None:
    """Given a file whose notification never reached the function
    When it is rescored
    Then it loads as the version's ordinary load (no RESCORE_OF), so that its notification, delivered later, and a
    second rescore are duplicates of it"""
    _, new = models
    event = harness.put("incoming/never.csv", make_csv(9))

    rescored = harness.invoke(as_rescore(event), MODEL_DIR=str(new))["objects"][0]
    late = harness.invoke(event, MODEL_DIR=str(new))["objects"][0]
    again = harness.invoke(as_rescore(event), MODEL_DIR=str(new))["objects"][0]

    assert (rescored["status"], rescored["rescore"], rescored["rows_loaded"]) == ("loaded", False, 9)
    assert ledger(harness) == [("LOADED", new.name, rescored["load_id"], None)]
    assert (late["status"], late["load_id"]) == ("duplicate", rescored["load_id"])
    assert (again["status"], again["load_id"]) == ("duplicate", rescored["load_id"])
    assert harness.count() == 9


def test_a_rescore_in_upsert_mode_replaces_the_earlier_models_rows(
    harness: Any, make_csv: Any, models: tuple[Path, Path]
) -> None:
    """Given a file loaded in upsert mode (merge key SAMPLE_ID) under "old", with S3's sequencer
    When the same version is rescored under "new" (no sequencer: ordered by the same Last-Modified)
    Then its rows are replaced, not kept out as superseded: the same keys, every row "new"'s, no reject"""
    old, new = models
    upsert = {"LOAD_MODE": "upsert", "MERGE_KEYS": "SAMPLE_ID"}
    event = harness.put("incoming/upsert.csv", make_csv(20))
    assert harness.invoke(event, MODEL_DIR=str(old), **upsert)["objects"][0]["status"] == "loaded"

    rescored = harness.invoke(as_rescore(event), MODEL_DIR=str(new), **upsert)["objects"][0]

    assert (rescored["status"], rescored["rows_loaded"], rescored["rows_rejected"]) == ("loaded", 20, 0)
    assert model_versions(harness) == {new.name: 20}
    assert harness.count("target", "TRUE") == int(harness.query("SELECT COUNT(DISTINCT SAMPLE_ID) FROM {target}")[0][0])
    assert harness.count("rejects") == 0


def test_a_redelivery_in_the_same_batch_as_the_rescore_is_a_duplicate(
    harness: Any, make_csv: Any, models: tuple[Path, Path]
) -> None:
    """Given a file loaded under "old"
    When one SQS batch brings both its rescore and its original notification again (the function serving "new")
    Then the rescore loads and the redelivery is a duplicate of the first load"""
    from tools.emulated.s3_events import lambda_sqs_event

    old, new = models
    event = harness.put("incoming/both.csv", make_csv(7))
    first = harness.invoke(event, MODEL_DIR=str(old))["objects"][0]
    messages = [
        {"MessageId": str(uuid.uuid4()), "ReceiptHandle": "r", "Body": json.dumps(body), "Attributes": {},
         "MD5OfBody": "x"}
        for body in (as_rescore(event), event)
    ]  # fmt: skip

    summary = harness.invoke(
        lambda_sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:ingest"), MODEL_DIR=str(new)
    )

    assert summary["batchItemFailures"] == []
    statuses = sorted((o["rescore"], o["status"], o["load_id"]) for o in summary["objects"])
    assert statuses[0] == (False, "duplicate", first["load_id"])
    assert statuses[1][:2] == (True, "loaded")
    assert model_versions(harness) == {old.name: 7, new.name: 7}


# --- the tool: through the queue, as `make rescore S3=...` runs it ----------------------------------------------


def test_a_queue_rescore_sends_marked_messages_and_a_dry_run_sends_nothing(
    harness: Any, deployed: Deployed, make_csv: Any, models: tuple[Path, Path], monkeypatch: Any, capsys: Any
) -> None:
    """Given two files under the stack's prefix loaded under "old", and "new" served
    When `make rescore S3=s3://bucket/incoming/ DRY_RUN=1` runs, then without DRY_RUN, and the messages are
    delivered to the function
    Then the dry run lists both and the queue stays empty; the run sends one rescore message each (the marker in
    the record, configurationId and origin "rescore"), and the function loads each once more under "new\""""
    from tools.emulated.s3_events import lambda_sqs_event

    old, new = models
    events = [put(harness, deployed, f"{INPUT_PREFIX}r{i}.csv", make_csv(5 + i)) for i in range(2)]
    for event in events:
        assert harness.invoke(event, MODEL_DIR=str(old))["objects"][0]["status"] == "loaded"
    monkeypatch.setenv("MODEL_DIR", str(new))
    url = f"s3://{deployed.bucket}/{INPUT_PREFIX}"
    capsys.readouterr()  # the function's log lines

    assert main([url, "--stack", deployed.name, "--dry-run", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert receive_all(harness, deployed) == []
    assert out.count(f"s3://{deployed.bucket}/{INPUT_PREFIX}r") == 2
    dry = json.loads(out[out.index("{") :])
    assert (dry["dry_run"], dry["would_rescore"], dry["model_version"], dry["listed_from"]) == (
        True, 2, new.name, "bucket",
    )  # fmt: skip
    assert "skips" in dry["note"]

    assert main([url, "--stack", deployed.name, "--no-progress"]) == 0
    sent = json.loads(capsys.readouterr().out)
    messages = receive_all(harness, deployed)

    assert (sent["sent"], sent["failed"]) == (2, 0)
    assert {m["MessageAttributes"]["origin"]["StringValue"] for m in messages} == {"tools.rescore"}
    records = [r for m in messages for r in json.loads(m["Body"])["Records"]]
    assert [(r["rescore"], r["s3"]["configurationId"]) for r in records] == [(True, "rescore")] * 2
    summary = harness.invoke(lambda_sqs_event(messages, deployed.queue_arn), MODEL_DIR=str(new))
    assert sorted(o["status"] for o in summary["objects"]) == ["loaded", "loaded"]
    assert model_versions(harness) == {old.name: 11, new.name: 11}


# --- the tool on the running `make local-stack`: make rescore LOCAL=1 S3=... --------------------------------------


def _rescore_tool(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m tools.commands.rescore` as `make rescore` runs it (PYTHONPATH=src:.), in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "tools.commands.rescore", *args, "--no-progress"],
        cwd=ROOT,
        env=_rescore_tool_env() | (env or {}),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _rescore_tool_env() -> dict[str, str]:
    """The environment a user's shell gives the tools: no stack wired in (the tools find it), PYTHONPATH=src:."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNOWFLAKE_", "PYTHONPATH", "MODEL_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    return env


def _ledger_rows(env_file: Path) -> list[tuple[Any, ...]]:
    """Every row of the running local stack's ledger."""
    from tools.commands.backfill_in_process import local_stack_environment
    from tools.commands.rescore import _local_ledger

    env = local_stack_environment(env_file)
    conn = _local_ledger(env)
    try:
        return list(conn.cursor().execute("SELECT * FROM TUMOUR_SCORE_LOADS ORDER BY LOAD_ID").fetchall())
    finally:
        conn.close()


def _summary(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(json.loads(proc.stdout[proc.stdout.index("{\n") :]))


def test_a_local_rescore_lists_from_the_ledger_loads_once_and_a_dry_run_changes_nothing(
    local_stack_running: Any, make_csv: Any, models: tuple[Path, Path]
) -> None:
    """Given `make local-stack` running, two files under incoming/mine/ loaded under "old" (`make backfill LOCAL=1`)
    and a third outside the prefix (incoming/mine-too/)
    When `make rescore LOCAL=1 S3=.../incoming/mine/ DRY_RUN=1` runs with "new" served, then without DRY_RUN,
    then again
    Then the dry run lists exactly the two versions with the model that loaded them and writes nothing; the
    rescore loads both under "new"; the second rescore finds nothing left to rescore"""
    import boto3

    from tools.emulated.local_stack import BUCKET

    old, new = models
    s3 = boto3.client("s3", endpoint_url=local_stack_running.aws_endpoint, aws_access_key_id="local",
                      aws_secret_access_key="local", region_name="us-east-1")  # fmt: skip
    s3.put_object(Bucket=BUCKET, Key="incoming/mine/a.csv", Body=make_csv(7))
    s3.put_object(Bucket=BUCKET, Key="incoming/mine/b.csv", Body=make_csv(5))
    s3.put_object(Bucket=BUCKET, Key="incoming/mine-too/c.csv", Body=make_csv(3))
    stack_env = ["--stack-env", str(local_stack_running.env_file)]
    backfilled = subprocess.run(
        [sys.executable, "-m", "tools.commands.backfill", "--local", f"s3://{BUCKET}/incoming/mine", *stack_env,
         "--no-progress"],
        cwd=ROOT, env={**_rescore_tool_env(), "MODEL_DIR": str(old)}, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert _summary(backfilled)["loaded"] == 3
    url = f"s3://{BUCKET}/incoming/mine/"

    before = _ledger_rows(local_stack_running.env_file)
    dry = _rescore_tool("--local", url, *stack_env, "--dry-run", env={"MODEL_DIR": str(new)})
    after_dry_run = _ledger_rows(local_stack_running.env_file)
    listed = [line for line in dry.stdout.splitlines() if line.startswith("s3://")]
    first = _rescore_tool("--local", url, *stack_env, env={"MODEL_DIR": str(new)})
    second = _rescore_tool("--local", url, *stack_env, env={"MODEL_DIR": str(new)})

    dry_summary = _summary(dry)
    assert (dry_summary["dry_run"], dry_summary["would_rescore"], dry_summary["listed_from"]) == (True, 2, "ledger")
    assert sorted(line.split()[0] for line in listed) == [f"s3://{BUCKET}/incoming/mine/a.csv",
                                                          f"s3://{BUCKET}/incoming/mine/b.csv"]  # fmt: skip
    assert all(line.endswith(f"loaded under {old.name}") for line in listed)
    assert after_dry_run == before
    done = _summary(first)
    assert (done["objects"], done["loaded"], done["rows_loaded"], done["model_version"]) == (2, 2, 12, new.name)
    again = _summary(second)
    assert (again["objects"], again["loaded"]) == (0, 0)
    assert again["left_out"] == {"already scored by the served model": 2}


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["bucket/incoming/", "--stack", "s"], "expected s3://bucket/prefix"),
        ([], "give s3://bucket/prefix"),
        (
            ["s3://hospital-drop-local/incoming/", "--local", "--stack-env", "{tmp}/none.json"],
            "start `make local-stack`",
        ),
    ],
    ids=["bad-s3-url", "no-s3-url", "no-local-stack"],
)
def test_a_rescore_that_cannot_start_says_so_in_one_line(tmp_path: Path, args: list[str], said: str) -> None:
    """Given a bad S3 URL, none, or no running local stack
    When `make rescore` runs
    Then it exits 2 with one line saying what is wrong, and no traceback"""
    proc = _rescore_tool(*[a.format(tmp=tmp_path) for a in args])

    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert said in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "mode", [["LOCAL=1"], ["STACK=s"], ["STACK=s", "REAL=1"], []], ids=["local", "stack", "real", "default"]
)
@pytest.mark.parametrize("dry_run", [True, False])
def test_make_rescore_hands_its_options_to_the_tool(mode: list[str], dry_run: bool) -> None:
    """Given `make rescore S3=...` in each mode, with and without DRY_RUN=1
    When make shows its recipe (-n: nothing runs)
    Then the tools.commands.rescore command carries the URL, and --dry-run, --local, --stack and --real-account
    exactly when asked"""
    shown = subprocess.run(
        ["make", "-n", "rescore", "S3=s3://b/incoming/", *mode, *(["DRY_RUN=1"] if dry_run else [])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.replace("\\\n", " ")

    command = next(line for line in shown.splitlines() if "-m tools.commands.rescore" in line).split()
    assert "s3://b/incoming/" in command
    assert ("--dry-run" in command) == dry_run
    assert ("--local" in command) == ("LOCAL=1" in mode)
    assert ("--stack" in command) == ("STACK=s" in mode)
    assert ("--real-account" in command) == ("REAL=1" in mode)
