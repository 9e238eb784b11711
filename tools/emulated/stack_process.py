"""A local stack in a process of its own: the benchmarks measure its CPU and memory apart from the function's."""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.emulated.local_stack import LocalStack, local_stack
from tools.emulated.s3_events import upload_file

REPO_ROOT = Path(__file__).resolve().parents[2]


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds a process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without AWS_/SNOWFLAKE_ settings, plus ``extra``: for a child process that
    runs the function (``extra`` = a stack's ``function_env()``) or the stack itself; quiet by default."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SNOWFLAKE_"))}
    env.update(extra)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT)])
    env.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    env.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def stack_from_env(env: Mapping[str, str]) -> LocalStack:
    """The stack a function environment (``LocalStack.function_env()``) points at: for a child process."""
    return LocalStack(
        aws_endpoint=env["AWS_ENDPOINT_URL"],
        snowflake_host=env["SNOWFLAKE_HOST"],
        snowflake_port=int(env["SNOWFLAKE_PORT"]),
        snowflake_db_path=None,
        secret_name=env["SNOWFLAKE_SECRET_NAME"],
    )


def serve_until_stdin_closes() -> int:
    """In the stack's process: start moto + fakesnow (in memory), print the function's environment as one JSON
    line, run until stdin closes, then print this process's peak RSS as one more JSON line."""
    import sys

    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    warnings.simplefilter("ignore")
    with local_stack(None) as stack:
        print(json.dumps({"env": stack.function_env(), "bucket": stack.bucket, "pid": os.getpid()}), flush=True)
        sys.stdin.read()
        print(json.dumps({"peak_rss_mb": peak_rss_mb()}), flush=True)
    return 0


@dataclass
class StackProcess:
    """A stack running in a process of its own (``stack_process``): its endpoints, its pid, its peak RSS."""

    proc: Any  # subprocess.Popen[str]
    env: dict[str, str]
    bucket: str
    peak_rss_mb: float | None = None

    @property
    def stack(self) -> LocalStack:
        return stack_from_env(self.env)

    def cpu_s(self) -> float:
        """CPU seconds the stack's process has used so far."""
        return process_cpu_s(int(self.proc.pid))

    def upload(self, path: Path, key: str) -> dict[str, Any]:
        """Upload ``path`` (multipart for big files) and return the S3 ObjectCreated event for it."""
        return upload_file(self.stack.client("s3"), self.bucket, path, key)


@contextlib.contextmanager
def stack_process(preexec_fn: Any = None) -> Iterator[StackProcess]:
    """moto + fakesnow in a child process for the duration of the block; its peak RSS is read when it stops.

    ``preexec_fn``: run in the child before exec (the benchmarks pin the stack's CPUs with it).
    """
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from tools.emulated.stack_process import serve_until_stdin_closes as s; sys.exit(s())",
        ],
        preexec_fn=preexec_fn,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=child_env({}),
        cwd=REPO_ROOT,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    running = StackProcess(proc=proc, env=info["env"], bucket=info["bucket"])
    try:
        yield running
    finally:
        proc.stdin.close()
        line = proc.stdout.readline()
        if line.strip():
            running.peak_rss_mb = json.loads(line)["peak_rss_mb"]
        proc.wait(timeout=60)
