"""`make sam-local-invoke`: the real `sam local invoke` of the built template, in Docker, against the local stack
on our own Docker network (tools/commands/invoke.py --sam).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tools.commands.invoke_env import SAMPLE_CSV, count_rows, function_raised
from tools.emulated.sample_events import make_uploader, patch_event
from tools.sam_template import FUNCTION_ID, ROOT

SAM = ROOT / "build-cache" / "venv-sam" / "bin" / "sam"
BUILT_TEMPLATE = ROOT / ".aws-sam" / "build" / "template.yaml"
OFFICIAL_IMAGE = "public.ecr.aws/lambda/python:3.13"
LOCAL_IMAGE = "tumour-scoring/lambda-python:3.13-trixie"  # build/local-image/build.sh (`make local-image`)


def docker_unusable_reason() -> str | None:
    """None when a Docker engine answers; otherwise why `sam local invoke` cannot run here."""
    import shutil

    if shutil.which("docker") is None:
        return "no docker client on PATH (apt-get install docker.io)"
    try:
        proc = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return "docker info timed out"
    if proc.returncode != 0 or not proc.stdout.strip():
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return f"no Docker engine: {lines[-1] if lines else 'docker info failed'}"
    return None


def sam_cli_environment() -> dict[str, str]:
    """SAM CLI's environment for a local run: offline, and with credentials for moto only.

    SAM passes its session's credentials into the container, so this shell's are never used: fake ones, which
    moto accepts. Telemetry is off, and SAM's weekly version check (a request to the package index) is
    marked as just done in a SAM config folder of our own, so a local run talks to nothing but the stack.
    """
    app_dir = ROOT / "build-cache" / "sam-cli-config"
    app_dir.mkdir(parents=True, exist_ok=True)
    metadata = app_dir / "metadata.json"
    config = json.loads(metadata.read_text(encoding="utf-8")) if metadata.exists() else {}
    config.update(lastVersionCheck=time.time(), telemetryEnabled=False)
    metadata.write_text(json.dumps(config), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(SAM_CLI_TELEMETRY="0", __SAM_CLI_APP_DIR=str(app_dir))
    env.update(AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
    env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    return env


def sam_local_invoke(
    event_path: Path,
    *,
    stack: Any = None,
    image: str | None = LOCAL_IMAGE,
    env_vars: Path | None = None,
    env_overrides: dict[str, str] | None = None,
    data: Path = SAMPLE_CSV,
    sam: Path = SAM,
    capture_logs: bool = False,
) -> dict[str, Any]:
    """Run one event through the REAL `sam local invoke` of the built artifact, against the local stack.

    The stack (moto + fakesnow) listens on our own Docker network's gateway and the container joins that
    network (`--docker-network`); a running ``stack`` (bound there) is reused, else one is started for this
    call. The sample is uploaded to every object the event names (bucket versioning on, as deployed) and the
    event carries the real ETag, size and version. ``image``: `--invoke-image` (the offline stand-in), or
    None for SAM's official image. Returns {"response" | "error", "returncode", "rows", "stdout", "stderr"}
    (stderr only with ``capture_logs``; otherwise it goes straight to this process's stderr).
    """
    from tools.emulated import containers
    from tools.emulated import local_stack as ls

    if (reason := docker_unusable_reason()) is not None:
        raise SystemExit(f"sam local invoke needs Docker: {reason}")
    for path, what in ((BUILT_TEMPLATE, "make build"), (sam, "make sam-cli")):
        if not path.exists():
            raise SystemExit(f"{path} is missing: run `{what}` first")
    with contextlib.ExitStack() as cleanup:
        if stack is None:
            db = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="sam-local-db-")))
            stack = cleanup.enter_context(ls.local_stack(db, host=containers.docker_network_gateway()))
        tmp = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="sam-local-")))
        event = json.loads(event_path.read_text(encoding="utf-8"))
        patched = patch_event(event, make_uploader(stack, data.read_bytes(), versioned=True))
        (tmp / "event.json").write_text(json.dumps(patched), encoding="utf-8")
        env_json: dict[str, Any] = json.loads(env_vars.read_text(encoding="utf-8")) if env_vars else {}
        function_vars = {
            **env_json.get(FUNCTION_ID, {}),
            **containers.sam_env_vars(stack)[FUNCTION_ID],
            **(env_overrides or {}),
        }
        (tmp / "env.json").write_text(json.dumps({**env_json, FUNCTION_ID: function_vars}), encoding="utf-8")
        command = [
            str(sam), "local", "invoke", FUNCTION_ID,
            "--template", str(BUILT_TEMPLATE),
            "--event", str(tmp / "event.json"),
            "--env-vars", str(tmp / "env.json"),
            "--docker-network", containers.DOCKER_NETWORK,
            "--region", ls.REGION,
        ]  # fmt: skip
        if image:
            command += ["--invoke-image", image, "--skip-pull-image"]
        env = sam_cli_environment()
        started = time.monotonic()
        proc = subprocess.run(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if capture_logs else None,  # SAM's messages, the function's logs, REPORT
            text=True,
            check=False,
            timeout=1200,
        )
        result: dict[str, Any] = {"returncode": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}
        result["wall_s"] = time.monotonic() - started
        try:
            response = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else None
        except json.JSONDecodeError:
            response = None
        if proc.returncode != 0 or response is None:
            result["error"] = {"errorMessage": f"sam local invoke exited {proc.returncode} without a response"}
        elif function_raised(response):
            result["error"] = response
        else:
            result["response"] = response
        result["rows"] = count_rows(stack, function_vars)
        return result
