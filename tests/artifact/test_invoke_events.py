"""Every sample event through the BUILT artifact as `make invoke` runs it: aws-lambda-rie + awslambdaric, no Docker."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from tools.commands.artifact_checks import RUNTIME_PROVIDED
from tools.commands.invoke import RUNTIME_RIC
from tools.sam_template import ROOT

pytestmark = pytest.mark.slow

EVENTS = ROOT / "events"
ROWS = 569  # data/breast_cancer.csv

# event file -> (objects loaded, rows loaded, skipped reasons (prefixes))
EXPECTED: dict[str, tuple[int, int, list[str]]] = {
    "s3-put.json": (1, ROWS, []),
    "s3-put-special-key.json": (1, ROWS, []),
    "s3-multi-record.json": (3, 3 * ROWS, []),
    "sqs-s3-put.json": (1, ROWS, []),
    "eventbridge-object-created.json": (1, ROWS, []),
    "s3-test-event.json": (0, 0, ["s3:TestEvent"]),
    "s3-delete.json": (0, 0, ["ObjectRemoved:Delete"]),
}


def assert_loaded_or_skipped_as_expected(response: dict[str, Any], event: str) -> None:
    """Every object ``event`` names is loaded (EXPECTED's object and row counts), or skipped for its reason."""
    objects, rows, skipped = EXPECTED[event]
    assert [o["status"] for o in response["objects"]] == ["loaded"] * objects, response
    assert response["rows_loaded"] == rows
    assert response["rows_rejected"] == 0
    assert len(response["skipped"]) == len(skipped)
    for reason, expected in zip(response["skipped"], skipped, strict=True):
        assert reason.startswith(expected)


def test_every_event_file_has_an_expectation() -> None:
    files = {p.name for p in EVENTS.glob("*.json")} - {"env.json"}
    assert files == set(EXPECTED)


def run_invoke(event: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tools.commands.invoke", str(EVENTS / event), "--json-out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    result = json.loads(out.read_text()) if out.exists() else {}
    return proc, result


@pytest.mark.parametrize("event", sorted(EXPECTED))
def test_event_runs_from_the_built_artifact(artifact: Path, event: str, tmp_path: Path) -> None:
    # Given a sample event and the local stack with the sample CSV uploaded where the event points
    rows = EXPECTED[event][1]
    # When the built artifact handles it in a fresh python3.13 -I -S process
    proc, result = run_invoke(event, tmp_path)
    # Then it exits 0, prints the response as JSON on stdout and a REPORT line on stderr
    assert proc.returncode == 0, proc.stderr[-4000:]
    response = json.loads(proc.stdout)
    assert "REPORT RequestId:" in proc.stderr
    assert "Init Duration:" in proc.stderr
    # And every object the event names is loaded, or the event is skipped for the expected reason
    assert_loaded_or_skipped_as_expected(response, event)
    # And the rows are in Snowflake (the emulator)
    assert result["rows"]["target"] == rows
    if event == "sqs-s3-put.json":
        assert response["batchItemFailures"] == []


def test_s3_put_keys_are_decoded_like_s3_encodes_them(artifact: Path, tmp_path: Path) -> None:
    # Given a key S3 encodes with '+' for spaces, %2B for '+', and UTF-8 escapes
    proc, _ = run_invoke("s3-put-special-key.json", tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # Then the function reads the object under its real name
    assert json.loads(proc.stdout)["objects"][0]["key"] == "incoming/Ward 7/Müller + Søn (final) – été.csv"


def test_modules_come_only_from_the_artifact_the_runtime_and_the_stdlib_with_bytecode(artifact: Path) -> None:
    # Given a run that imports everything the pipeline needs (three objects, .csv and .csv.gz)
    from tools.commands.invoke import invoke

    result = invoke(EVENTS / "s3-multi-record.json", list_modules=True)
    assert "response" in result, result.get("error")
    stdlib = Path(sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})["stdlib"])
    allowed = (artifact.resolve(), RUNTIME_PROVIDED.resolve(), RUNTIME_RIC.resolve(), stdlib.resolve())
    leaked, without_bytecode = [], []
    for name, file in result["modules"].items():
        if not file:
            continue  # built-in / frozen
        path = Path(file).resolve()
        # Then nothing comes from the dev venv or the source tree (the runtime is awslambdaric, as on Lambda)
        if not any(path.is_relative_to(root) for root in allowed):
            leaked.append(f"{name}: {path}")
        # And every module of the artifact was loaded from precompiled bytecode (sourceless .pyc or __pycache__)
        if path.is_relative_to(artifact.resolve()) and path.suffix == ".py":
            cached = path.parent / "__pycache__" / f"{path.stem}.cpython-313.pyc"
            if not cached.exists():
                without_bytecode.append(name)
    assert not leaked
    assert not without_bytecode, "imported without bytecode (compiled at every cold start)"


def test_a_function_that_raises_makes_invoke_exit_non_zero_with_the_error_payload(artifact: Path) -> None:
    # Given a secret name the local stack does not hold (the function raises SecretUnavailableError)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.commands.invoke",
            str(EVENTS / "s3-put.json"),
            "--env",
            "SNOWFLAKE_SECRET_NAME=no/such",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    # Then the runtime's error payload is the response on stdout, and the exit status says the function raised
    assert proc.returncode == 1, proc.stderr[-4000:]
    error = json.loads(proc.stdout)
    assert error["errorType"] == "SecretUnavailableError"
    # And the emulator's REPORT line is on stderr
    assert "REPORT RequestId:" in proc.stderr
