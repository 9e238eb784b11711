"""Shared fixtures: the local stack (moto server + fakesnow server) and a way to invoke the handler."""

from __future__ import annotations

import gzip
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tools.emulated.local_stack import LambdaContext

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CSV = ROOT / "data" / "breast_cancer.csv"

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "INFO")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def sample_bytes() -> bytes:
    return SAMPLE_CSV.read_bytes()


@pytest.fixture(scope="session")
def stack() -> Iterator[Any]:
    from tools.emulated.local_stack import local_stack

    with local_stack(None) as running:
        yield running


@dataclass
class Harness:
    """One test's view of the stack: its own tables, an uploader, the handler and a query helper."""

    stack: Any
    env: dict[str, str]
    monkeypatch: pytest.MonkeyPatch

    @property
    def bucket(self) -> str:
        return str(self.stack.bucket)

    def put(self, key: str, body: bytes, *, gz: bool = False) -> dict[str, Any]:
        from tools.emulated.s3_events import upload

        return upload(self.stack, key, gzip.compress(body) if gz else body, self.bucket)

    def invoke(self, event: dict[str, Any], context: LambdaContext | None = None, **env: str) -> dict[str, Any]:
        """A cold invocation (settings and pipeline built again) with this test's tables and ``env``."""
        from handler import app
        from pipeline.settings import get_settings

        for name, value in {**self.env, **env}.items():
            self.monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        app.build_pipeline.cache_clear()
        context = context or LambdaContext(aws_request_id="test-request")
        return app.lambda_handler(event, context)  # type: ignore[arg-type]

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        conn = self.stack.snowflake_connect()
        try:
            return list(conn.cursor().execute(sql.format(**self.tables)).fetchall())
        finally:
            conn.close()

    @property
    def tables(self) -> dict[str, str]:
        return {
            "target": self.env["TARGET_TABLE"],
            "rejects": self.env["REJECTS_TABLE"],
            "ledger": self.env["LEDGER_TABLE"],
            "monitoring": self.env["MONITORING_TABLE"],
        }

    def count(self, table: str = "target", where: str = "TRUE") -> int:
        return int(self.query(f"SELECT COUNT(*) FROM {{{table}}} WHERE {where}")[0][0])


@pytest.fixture
def harness(stack: Any, monkeypatch: pytest.MonkeyPatch) -> Harness:
    """Given a running local stack and tables of this test's own (so tests never see each other's rows)."""
    suffix = uuid.uuid4().hex[:8].upper()
    env = stack.function_env() | {
        "TARGET_TABLE": f"SCORES_{suffix}",
        "REJECTS_TABLE": f"REJECTS_{suffix}",
        "LEDGER_TABLE": f"LOADS_{suffix}",
        "MONITORING_TABLE": f"MONITORING_{suffix}",
    }
    return Harness(stack, env, monkeypatch)


@pytest.fixture
def make_csv(sample_bytes: bytes) -> Callable[..., bytes]:
    """Build CSV bytes from the sample: the header and the first ``rows`` data lines, optionally edited."""

    def build(rows: int = 569, edit: Callable[[list[str]], list[str]] | None = None) -> bytes:
        lines = sample_bytes.decode().splitlines()
        body = lines[: rows + 1]
        if edit is not None:
            body = edit(body)
        return ("\n".join(body) + "\n").encode()

    return build


@dataclass
class RunningLocalStack:
    proc: subprocess.Popen[str]
    db_path: Path
    env_file: Path  # the `sam local invoke --env-vars` file it wrote: its endpoints
    aws_endpoint: str


@pytest.fixture
def local_stack_running(tmp_path: Path) -> Iterator[RunningLocalStack]:
    """`make local-stack` (tools.commands.serve_stack) on loopback in a process of its own, with its emulated
    Snowflake and env file under tmp_path; stopped (as Ctrl-C does) after the test."""
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    out = tmp_path / "local-stack"
    db_path, env_file = tmp_path / "db", out / "env.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.commands.serve_stack", "--host", "127.0.0.1", "--aws-port", str(ports[0]),
         "--snowflake-port", str(ports[1]), "--db-path", str(db_path), "--env-file", str(env_file),
         "--events-out", str(out / "events")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "POWERTOOLS_LOG_LEVEL"},
    )  # fmt: skip
    running = RunningLocalStack(proc, db_path, env_file, f"http://127.0.0.1:{ports[0]}")
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("Local stack up"):
            break
    else:
        proc.kill()
        pytest.fail("make local-stack did not come up")
    try:
        yield running
    finally:
        running.proc.send_signal(signal.SIGINT)
        running.proc.wait(timeout=30)
