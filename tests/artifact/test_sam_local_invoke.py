"""Every sample event through the REAL `sam local invoke` of the built artifact, against the local stack.

Runs only where a Docker engine answers (`.ci/run` installs docker.io and starts dockerd when it can); skipped
with the reason otherwise. One stack (moto + fakesnow on our Docker network's gateway) serves every event;
its buckets are versioned, as deployed, so each upload is a new object version and loads. The emulation image
is SAM's official one when this machine has it, else the offline stand-in (`make local-image`, built once and
reused while its recipe is unchanged).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.artifact.conftest import make_command
from tests.artifact.test_invoke_events import EVENTS, EXPECTED, assert_loaded_or_skipped_as_expected
from tools.commands.invoke import LOCAL_IMAGE, OFFICIAL_IMAGE, docker_unusable_reason, sam_local_invoke
from tools.emulated.containers import docker_network_gateway
from tools.emulated.local_stack import LocalStack, _free_port
from tools.sam_template import ROOT

pytestmark = pytest.mark.slow


def _image() -> str | None:
    """None (SAM's official image) when this machine has it, else the offline stand-in."""
    present = subprocess.run(["docker", "image", "inspect", OFFICIAL_IMAGE], capture_output=True, check=False)
    return None if present.returncode == 0 else LOCAL_IMAGE


@pytest.fixture(scope="session")
def docker_image(artifact: Path) -> str | None:
    reason = docker_unusable_reason()
    if reason is not None:
        pytest.skip(f"sam local invoke needs a Docker engine: {reason}")
    image = _image()
    subprocess.run(make_command("sam-cli", *(["local-image"] if image else [])), cwd=ROOT, check=True)
    return image


@pytest.fixture(scope="session")
def container_stack(docker_image: str | None) -> Iterator[LocalStack]:
    """`make local-stack`'s own server, in a process of its own.

    Not in this process: moto's backends and fakesnow's server instance are process-wide, so an in-process
    stack here would share buckets (and their versioning) and the emulator with the other tests' stack.
    """
    host = docker_network_gateway()
    aws_port, sf_port = _free_port(host), _free_port(host)
    with tempfile.TemporaryDirectory(prefix="sam-local-") as tmp:
        env_file = Path(tmp) / "sam-env.json"
        command = [sys.executable, "-m", "tools.commands.serve_stack", "--aws-port", str(aws_port)]
        command += ["--snowflake-port", str(sf_port), "--db-path", f"{tmp}/db", "--env-file", str(env_file)]
        command += ["--events-out", f"{tmp}/events"]
        server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while not env_file.exists():  # written once the stack is up and seeded
                assert server.poll() is None, "the local stack exited before it was up"
                assert time.monotonic() < deadline, "the local stack did not come up in 120 s"
                time.sleep(0.2)
            yield LocalStack(
                aws_endpoint=f"http://{host}:{aws_port}",
                snowflake_host=host,
                snowflake_port=sf_port,
                snowflake_db_path=Path(tmp) / "db",
            )
        finally:
            server.send_signal(signal.SIGTERM)  # the stack's own Ctrl-C path
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _rows(stack: LocalStack) -> int:
    conn = stack.snowflake_connect()
    try:
        cur = conn.cursor()
        try:
            cur.execute("SELECT COUNT(*) FROM TUMOUR_SCORES")
            return int(cur.fetchone()[0])
        except Exception:
            return 0  # not created yet: nothing loaded
    finally:
        conn.close()


@pytest.mark.parametrize("event", sorted(EXPECTED))
def test_event_runs_through_sam_local_invoke(container_stack: LocalStack, docker_image: str | None, event: str) -> None:
    # Given a sample event, the sample CSV uploaded where it points, and the stack the container can reach
    rows = EXPECTED[event][1]
    before = _rows(container_stack)
    # When the real `sam local invoke` runs the built artifact on it
    result = sam_local_invoke(
        EVENTS / event, stack=container_stack, image=docker_image, env_vars=EVENTS / "env.json", capture_logs=True
    )
    # Then SAM exits 0 with the function's response on stdout, and the logs and REPORT line on stderr
    assert result["returncode"] == 0, result["stderr"][-4000:]
    assert "response" in result, (result.get("error"), result["stderr"][-4000:])
    response: dict[str, Any] = result["response"]
    assert "REPORT RequestId:" in result["stderr"]
    # And every object the event names is loaded, or the event is skipped for the expected reason
    assert_loaded_or_skipped_as_expected(response, event)
    # And the rows are in Snowflake (the emulator), once
    assert _rows(container_stack) - before == rows


def test_a_function_that_raises_makes_sam_local_invoke_exit_non_zero(docker_image: str | None) -> None:
    # Given a secret name the stack does not hold (the function raises SecretUnavailableError)
    command = [sys.executable, "-m", "tools.commands.invoke", "--sam", str(EVENTS / "s3-put.json")]
    command += ["--invoke-image", docker_image or "official", "--env", "SNOWFLAKE_SECRET_NAME=no/such"]
    # When `make sam-local-invoke`'s command runs it (its own stack, started and stopped for the call)
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    # Then it exits 1 with the runtime's error payload on stdout, the logs and REPORT on stderr
    assert proc.returncode == 1, proc.stderr[-4000:]
    assert json.loads(proc.stdout)["errorType"] == "SecretUnavailableError"
    assert "REPORT RequestId:" in proc.stderr
