"""`make invoke`: the built artifact on one event under aws-lambda-rie + awslambdaric on loopback, no Docker
(tools/commands/invoke.py describes the steps).
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tools.commands.invoke_env import SAMPLE_CSV, count_rows, function_environment, function_raised, lambda_environment
from tools.emulated.sample_events import make_uploader, patch_event
from tools.sam_template import FUNCTION_ID, ROOT

ARTIFACT = ROOT / ".aws-sam" / "build" / FUNCTION_ID
RUNTIME_PROVIDED = ROOT / ".aws-sam" / "runtime-provided"
INIT_PHASE_LIMIT_S = 10.0  # Lambda's init phase budget for on-demand functions

# `make invoke` runs the artifact the way Lambda's python runtime does, without Docker: the Runtime Interface
# Emulator that ships inside the SAM CLI package (aws-lambda-rie, on loopback) starts the runtime,
# `python3.13 -m awslambdaric <handler>` (the Runtime Interface Client, as in /var/runtime/bootstrap of the
# offline image), and the event goes to it over the real Lambda Runtime API.
RUNTIME_RIC = ROOT / ".aws-sam" / "runtime-ric"  # awslambdaric + deps (build/local-image/requirements.txt)
SAM_SITE_PACKAGES = ROOT / "build-cache" / "venv-sam" / "lib"

# Only with list_modules (a test asks which file every module came from): the same runtime, with the handler
# wrapped so that after each invocation it writes sys.modules to INVOKE_MODULES_FILE.
LIST_MODULES_LAUNCHER = r"""
import json, os, runpy, sys
sys.path.insert(0, os.getcwd())  # what -m does: the task root first
import awslambdaric.bootstrap as bootstrap
_get_handler = bootstrap._get_handler
def _listing(handler):
    function = _get_handler(handler)
    def handle(event, context):
        try:
            return function(event, context)
        finally:
            modules = {name: getattr(m, "__file__", None) for name, m in sorted(sys.modules.items())}
            with open(os.environ["INVOKE_MODULES_FILE"], "w", encoding="utf-8") as out:
                json.dump(modules, out)
    return handle
bootstrap._get_handler = _listing
runpy.run_module("awslambdaric", run_name="__main__", alter_sys=True)
"""


def rie_binary() -> Path:
    """aws-lambda-rie from the SAM CLI package (build-cache/venv-sam; `make sam-cli`)."""
    import platform

    arch = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())
    found = sorted(SAM_SITE_PACKAGES.glob(f"python3*/site-packages/samcli/local/rapid/aws-lambda-rie-{arch}"))
    if not found:
        raise SystemExit(f"aws-lambda-rie-{arch} not found under {SAM_SITE_PACKAGES}: run `make sam-cli` first")
    return found[-1]


def python313() -> str:
    """The base python3.13 interpreter (not the venv's: nothing of .venv may leak into the run)."""
    base = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    if sys.version_info[:2] == (3, 13) and base.exists():
        return str(base)
    raise SystemExit("tools.commands.invoke must run under Python 3.13 (the Lambda runtime's version)")


def _listening(port: int) -> bool:
    with contextlib.closing(socket.socket()) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _free_loopback_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _max_rss_mb(pid: int) -> float:
    """Peak resident memory (VmHWM) of the runtime: the emulator's child process, read before it exits."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if parent != pid:
                continue
            for line in (stat.parent / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except (OSError, IndexError, ValueError):
            continue
    return 0.0


def run_artifact(
    *,
    spec: Any,
    env: dict[str, str],
    event: dict[str, Any],
    artifact: Path,
    runtime_dir: Path,
    list_modules: bool = False,
    ric_dir: Path = RUNTIME_RIC,
) -> dict[str, Any]:
    """One invocation of the built artifact under aws-lambda-rie + awslambdaric, both on loopback.

    The runtime is the base python3.13 with -S (no site-packages: nothing of .venv or the system), the task
    root first on sys.path (-m, working directory = the artifact), then awslambdaric and the runtime-provided
    packages (PYTHONPATH, like /var/runtime), then the standard library. No bytecode is written (/var/task is
    read-only on Lambda). Returns {"response" | "error", "duration_ms", "max_rss_mb", "wall_s", "modules"?}.
    """
    import urllib.error
    import urllib.request

    if not (ric_dir / "awslambdaric").is_dir():
        raise SystemExit(f"{ric_dir} is missing awslambdaric: run `make runtime-ric` first")
    rie_port, api_port = _free_loopback_port(), _free_loopback_port()
    with tempfile.TemporaryDirectory(prefix="invoke-") as tmp:
        home = Path(tmp) / "home"  # Lambda: only /tmp is writable
        home.mkdir()
        modules_file = Path(tmp) / "modules.json"
        runtime_env = {
            **env,
            "HOME": str(home),
            "TMPDIR": tmp,
            "PYTHONPATH": f"{ric_dir}:{runtime_dir}",
            "PYTHONDONTWRITEBYTECODE": "1",
            "INVOKE_MODULES_FILE": str(modules_file),
        }
        if list_modules:
            runtime = [python313(), "-S", "-c", LIST_MODULES_LAUNCHER, spec.handler]
        else:
            runtime = [python313(), "-S", "-m", "awslambdaric", spec.handler]
        command = [
            str(rie_binary()),
            "--log-level", "error",
            "--runtime-interface-emulator-address", f"127.0.0.1:{rie_port}",
            "--runtime-api-address", f"127.0.0.1:{api_port}",
            *runtime,
        ]  # fmt: skip
        started = time.monotonic()
        # The emulator's and the runtime's output (the function's logs, START/END/REPORT) go to our stderr:
        # stdout carries only the response, as with SAM.
        rie = subprocess.Popen(command, env=runtime_env, cwd=str(artifact), stdout=sys.stderr, stderr=sys.stderr)
        try:
            while not _listening(rie_port):
                if rie.poll() is not None or time.monotonic() - started > 30:
                    return {"error": {"errorMessage": f"aws-lambda-rie did not start ({rie.returncode})"}}
                time.sleep(0.05)
            request = urllib.request.Request(
                f"http://127.0.0.1:{rie_port}/2015-03-31/functions/function/invocations",
                data=json.dumps(event).encode(),
                headers={"Content-Type": "application/json"},
            )
            sent = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=spec.timeout + INIT_PHASE_LIMIT_S + 60) as reply:
                    body = reply.read()
            except urllib.error.HTTPError as exc:
                body = exc.read()
            duration_ms = (time.monotonic() - sent) * 1000
            max_rss = _max_rss_mb(rie.pid)
        finally:
            rie.terminate()
            try:
                rie.wait(timeout=10)
            except subprocess.TimeoutExpired:
                rie.kill()
                rie.wait()
        try:
            payload = json.loads(body) if body else None
        except json.JSONDecodeError:
            payload = {"errorMessage": "the response is not JSON", "errorType": "InvalidResponse"}
        result: dict[str, Any] = {
            "duration_ms": duration_ms,
            "max_rss_mb": max_rss,
            "wall_s": time.monotonic() - started,
        }
        result["error" if function_raised(payload) else "response"] = payload
        if list_modules and modules_file.exists():
            result["modules"] = json.loads(modules_file.read_text(encoding="utf-8"))
        return result


def invoke(
    event_path: Path,
    *,
    env_vars: Path | None = None,
    artifact: Path = ARTIFACT,
    runtime_dir: Path = RUNTIME_PROVIDED,
    data: Path = SAMPLE_CSV,
    db_path: Path | None = None,
    parameter_overrides: dict[str, str] | None = None,
    list_modules: bool = False,
    env_overrides: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run one event through the built artifact against a fresh local stack; return the result record.

    ``env_overrides``: function variables set last, over the stack's wiring (e.g. a secret it does not hold).
    """
    from tools.emulated.local_stack import local_stack

    for path, what in ((artifact, "make build"), (runtime_dir, "make runtime-provided")):
        if not path.is_dir():
            raise SystemExit(f"{path} is missing: run `{what}` first")
    event = json.loads(event_path.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="invoke-db-") as tmp_db, local_stack(db_path or Path(tmp_db)) as stack:
        spec, function_env = function_environment(env_vars, stack.function_env(), parameter_overrides)
        if spec.runtime != "python3.13":
            raise SystemExit(f"template runtime is {spec.runtime}; this stand-in emulates python3.13 only")
        patched = patch_event(event, make_uploader(stack, data.read_bytes()))
        env = lambda_environment(spec, {**function_env, **(env_overrides or {})}, artifact, runtime_dir)
        result = run_artifact(
            spec=spec, env=env, event=patched, artifact=artifact, runtime_dir=runtime_dir, list_modules=list_modules
        )
        result["rows"] = count_rows(stack, env)
    result["memory_size"] = spec.memory_size
    return result
