"""`make invoke` (no Docker) and `make sam-local-invoke` (the real `sam local invoke`): the built artifact on one event.

    python -m tools.commands.invoke events/s3-put.json [--env-vars events/env.json] [--json-out FILE]
    python -m tools.commands.invoke --sam events/s3-put.json [--invoke-image IMAGE|official] [--env NAME=VALUE ...]

Without --sam (`make invoke`, no Docker):
1. Reads the function's Handler, Runtime, Timeout, MemorySize and Environment from template.yaml (parameters
   from their defaults, then env.json's "Parameters"; then env.json's per-function variables, which, as with
   SAM, may only override variables the template declares).
2. Starts the local stack (tools/emulated/local_stack.py: moto + fakesnow on loopback) and uploads the sample CSV to
   every bucket/key the event names (gzipped for .gz keys). The event's ETag, size and version id are then
   set to the uploaded object's, as S3 would have written them (the function GETs with If-Match).
3. Runs the BUILT artifact (.aws-sam/build/ScoringFunction), not the source tree, the way Lambda does: the
   Runtime Interface Emulator shipped in the SAM CLI package (aws-lambda-rie, on loopback) starts
   `python3.13 -S -m awslambdaric <handler>` in the artifact, with awslambdaric and the runtime-provided
   packages (boto3, botocore, ...; what Lambda's python3.13 runtime ships) after it on sys.path, and the
   event goes through the real Lambda Runtime API. /var/task is read-only on Lambda: no bytecode is written.
4. The logs and the emulator's START/END/REPORT lines go to stderr, the response to stdout.

With --sam (`make sam-local-invoke`, needs Docker): the same upload and patching, then the real
`sam local invoke` of the built template in a container on our own Docker network, against the stack
listening on that network's gateway (sam_local_invoke below).

Exit status: 0 if the function returned, 1 if it raised or timed out, 2 on a usage or setup problem.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from tools.emulated.sample_events import make_uploader, patch_event
from tools.sam_template import FUNCTION_ID, ROOT, TEMPLATE, function_spec, load_template

ARTIFACT = ROOT / ".aws-sam" / "build" / FUNCTION_ID
RUNTIME_PROVIDED = ROOT / ".aws-sam" / "runtime-provided"
SAMPLE_CSV = ROOT / "data" / "breast_cancer.csv"
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


# --- the environment -----------------------------------------------------------------------------------------


def function_environment(
    env_vars_file: Path | None,
    stack_env: dict[str, str],
    parameter_overrides: dict[str, str] | None = None,
    logical_id: str = FUNCTION_ID,
) -> tuple[Any, dict[str, str]]:
    """The function's environment as `sam local invoke --env-vars F --parameter-overrides P` would build it."""
    template = load_template(TEMPLATE)
    env_json: dict[str, Any] = json.loads(env_vars_file.read_text(encoding="utf-8")) if env_vars_file else {}
    spec = function_spec(template, logical_id, {**stack_parameters(), **(parameter_overrides or {})})
    env = dict(spec.environment)
    # env.json: "Parameters" applies to every function, then the function's own section. As with SAM, only
    # variables the template declares can be set this way.
    overrides = {**env_json.get("Parameters", {}), **env_json.get(logical_id, {})}
    for name, value in overrides.items():
        if name in env or name in spec.unresolved:
            env[name] = str(value)
        else:
            print(f"[invoke] env.json: {name} is not declared in template.yaml; SAM would ignore it", file=sys.stderr)
    # The local stack's wiring (endpoints, fake credentials) wins: it is what makes this run offline.
    env.update(stack_env)
    return spec, env


def stack_parameters() -> dict[str, str]:
    """Template parameters pointed at the local stack (tools/emulated/local_stack.py)."""
    from tools.emulated import local_stack

    return {
        "SnowflakeSecretName": local_stack.SECRET_NAME,
        "SnowflakeDatabase": local_stack.DATABASE,
        "SnowflakeSchema": local_stack.SCHEMA,
        "SnowflakeWarehouse": local_stack.WAREHOUSE,
    }


def lambda_environment(spec: Any, function_env: dict[str, str], artifact: Path, runtime_dir: Path) -> dict[str, str]:
    """What Lambda itself sets, then the function's variables (a clean environment: nothing of this shell)."""
    name = f"tumour-scoring-{spec.logical_id}"
    region = function_env.get("AWS_REGION", "us-east-1")
    base = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(artifact),
        "LAMBDA_RUNTIME_DIR": str(runtime_dir),
        "_HANDLER": spec.handler,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_SAM_LOCAL": "true",  # as `sam local invoke` sets it (Powertools then skips X-Ray)
    }
    return {**base, **function_env}


# --- running it ----------------------------------------------------------------------------------------------


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


def function_raised(response: Any) -> bool:
    """Whether a response is the runtime's error payload (the function raised), as Lambda reports it."""
    return isinstance(response, dict) and {"errorMessage", "errorType"} <= set(response)


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
        result["rows"] = _count_rows(stack, env)
    result["memory_size"] = spec.memory_size
    return result


def _count_rows(stack: Any, env: dict[str, str]) -> dict[str, int]:
    """Rows in the target, rejects and ledger tables afterwards (for the summary and the tests)."""
    counts: dict[str, int] = {}
    tables = {
        "target": env.get("TARGET_TABLE") or "TUMOUR_SCORES",
        "rejects": env.get("REJECTS_TABLE") or "TUMOUR_SCORE_REJECTS",
        "ledger": env.get("LEDGER_TABLE") or "TUMOUR_SCORE_LOADS",
    }
    try:
        conn = stack.snowflake_connect()
    except Exception as exc:  # the counts are informational
        print(f"[invoke] cannot count rows: {exc}", file=sys.stderr)
        return counts
    try:
        cur = conn.cursor()
        for what, table in tables.items():
            try:
                cur.execute(f"SELECT COUNT(*) FROM {table}")
                counts[what] = int(cur.fetchone()[0])
            except Exception:
                counts[what] = 0  # not created: nothing was written there
    finally:
        conn.close()
    return counts


# --- the real `sam local invoke`, in Docker ----------------------------------------------------------------

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
        result["rows"] = _count_rows(stack, function_vars)
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("event", type=Path, help="event JSON, e.g. events/s3-put.json")
    parser.add_argument("--env-vars", type=Path, default=ROOT / "events" / "env.json", help="SAM-style env.json")
    parser.add_argument("--artifact", type=Path, default=ARTIFACT, help="the built function (sam build output)")
    parser.add_argument("--runtime-provided", type=Path, default=RUNTIME_PROVIDED)
    parser.add_argument("--data", type=Path, default=SAMPLE_CSV, help="CSV uploaded for every object named")
    parser.add_argument("--db-path", type=Path, help="keep fakesnow's DuckDB files here (default: a temp dir)")
    parser.add_argument("--json-out", type=Path, help="also write the full result record here")
    parser.add_argument(
        "--parameter-overrides", nargs="*", default=[], metavar="KEY=VALUE", help="template parameters (as SAM)"
    )
    parser.add_argument("--sam", action="store_true", help="run the real `sam local invoke` (needs Docker)")
    parser.add_argument(
        "--invoke-image",
        default=LOCAL_IMAGE,
        help=f"with --sam: the emulation image (default: the offline stand-in); 'official' = {OFFICIAL_IMAGE}",
    )
    parser.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE", help="function variables, set last")
    args = parser.parse_args(argv)
    if not args.event.is_file():
        print(f"no such event file: {args.event}", file=sys.stderr)
        return 2
    env_vars = args.env_vars if args.env_vars and args.env_vars.is_file() else None
    if args.sam:
        return _main_sam(args, env_vars)
    result = invoke(
        args.event,
        env_vars=env_vars,
        artifact=args.artifact.resolve(),
        runtime_dir=args.runtime_provided.resolve(),
        data=args.data,
        db_path=args.db_path,
        parameter_overrides=dict(item.split("=", 1) for item in args.parameter_overrides),
        env_overrides=dict(item.split("=", 1) for item in args.env),
    )
    payload = result.get("response", result.get("error"))
    rss, memory = result.get("max_rss_mb", 0), result.get("memory_size", 0)
    print(f"[invoke] runtime process peak RSS (VmHWM): {rss:.0f} MB of {memory} MB", file=sys.stderr)
    if rss > memory:
        print("[invoke] WARNING: max memory used exceeds MemorySize; Lambda would kill the function", file=sys.stderr)
    print(f"[invoke] Snowflake rows after the run: {result.get('rows')}", file=sys.stderr)
    print(json.dumps(payload, indent=2, default=str))
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return 0 if "response" in result else 1


def _main_sam(args: argparse.Namespace, env_vars: Path | None) -> int:
    image = None if args.invoke_image == "official" else args.invoke_image
    result = sam_local_invoke(
        args.event,
        image=image,
        env_vars=env_vars,
        env_overrides=dict(item.split("=", 1) for item in args.env),
        data=args.data,
    )
    print(f"[sam-local-invoke] Snowflake rows after the run: {result.get('rows')}", file=sys.stderr)
    if "error" in result and result["returncode"] != 0:
        print(f"[sam-local-invoke] {result['error']['errorMessage']}", file=sys.stderr)
    print(json.dumps(result.get("response", result.get("error")), indent=2, default=str))
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return 0 if "response" in result else 1


if __name__ == "__main__":
    sys.exit(main())
