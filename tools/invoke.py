"""`make invoke EVENT=events/<file>`: the stand-in for `sam local invoke` on machines without Docker.

    python -m tools.invoke events/s3-put.json [--env-vars events/env.json] [--artifact DIR] [--json-out FILE]

1. Reads the function's Handler, Runtime, Timeout, MemorySize and Environment from template.yaml (parameters
   from their defaults, then env.json's "Parameters"; then env.json's per-function variables, which, as with
   SAM, may only override variables the template declares).
2. Starts the local stack (tools/local_stack.py: moto + fakesnow on loopback) and uploads the sample CSV to
   every bucket/key the event names (gzipped for .gz keys). The event's ETag, size and version id are then
   set to the uploaded object's, as S3 would have written them (the function GETs with If-Match).
3. Runs the BUILT artifact (.aws-sam/build/ScoringFunction), not the source tree, in a fresh python3.13
   started with -I -S: only the standard library is on sys.path, then the bootstrap below puts the artifact
   first and the runtime-provided packages (boto3, botocore, ...; what Lambda's python3.13 runtime ships)
   after it. /var/task is read-only on Lambda, so no bytecode is written.
4. Prints the logs (stderr), the response (stdout) and a REPORT line like Lambda's/SAM's.

Exit status: 0 if the function returned, 1 if it raised or timed out, 2 on a usage or setup problem.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from tools.sam_template import FUNCTION_ID, ROOT, TEMPLATE, function_spec, load_template

ARTIFACT = ROOT / ".aws-sam" / "build" / FUNCTION_ID
RUNTIME_PROVIDED = ROOT / ".aws-sam" / "runtime-provided"
SAMPLE_CSV = ROOT / "data" / "breast_cancer.csv"
INIT_PHASE_LIMIT_S = 10.0  # Lambda's init phase budget for on-demand functions

# Runs inside the fresh interpreter. Emulates the parts of Lambda's python runtime the function can notice.
BOOTSTRAP = r"""
import json, os, resource, signal, sys, time, traceback, uuid
cfg = json.loads(sys.argv[1])
sys.dont_write_bytecode = True           # /var/task is read-only on Lambda
sys.path.insert(0, cfg["task_root"])    # /var/task first ...
sys.path.insert(1, cfg["runtime_dir"])  # ... then what the runtime provides (boto3, botocore, ...)
os.chdir(cfg["task_root"])
module_name, _, function_name = cfg["handler"].rpartition(".")
request_id = cfg["request_id"]

class LambdaContext:
    function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    function_version = "$LATEST"
    invoked_function_arn = f"arn:aws:lambda:{os.environ['AWS_REGION']}:123456789012:function:{function_name}"
    memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
    aws_request_id = request_id
    log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
    log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
    identity = None
    client_context = None
    def __init__(self, deadline):
        self._deadline = deadline
    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))

def emit(**fields):
    with open(cfg["result_file"], "w", encoding="utf-8") as handle:
        json.dump(fields, handle, default=str)

def error_payload(exc):
    return {"errorMessage": str(exc), "errorType": type(exc).__name__, "requestId": request_id,
            "stackTrace": traceback.format_tb(exc.__traceback__)}

def module_files():
    # every loaded module and the file it came from (None for built-in and frozen modules)
    return {name: getattr(module, "__file__", None) for name, module in sorted(sys.modules.items())}

def max_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

t0 = time.perf_counter()
try:
    import importlib
    module = importlib.import_module(module_name)
    handler = getattr(module, function_name)
except BaseException as exc:
    traceback.print_exc()
    emit(phase="init", init_ms=(time.perf_counter() - t0) * 1000, error=error_payload(exc), max_rss_mb=max_rss_mb())
    sys.exit(1)
init_ms = (time.perf_counter() - t0) * 1000
init_modules = sorted(sys.modules) if cfg.get("list_modules") else None

event = json.loads(open(cfg["event_file"], encoding="utf-8").read())
timeout = cfg["timeout"]
start = time.perf_counter()

def on_timeout(signum, frame):
    duration = (time.perf_counter() - start) * 1000
    message = f"Task timed out after {timeout:.2f} seconds"
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {request_id} {message}", file=sys.stderr)
    emit(phase="invoke", init_ms=init_ms, duration_ms=duration, timed_out=True,
         error={"errorMessage": message, "errorType": "Sandbox.Timedout", "requestId": request_id},
         max_rss_mb=max_rss_mb())
    os._exit(1)

signal.signal(signal.SIGALRM, on_timeout)
signal.setitimer(signal.ITIMER_REAL, timeout)
print(f"START RequestId: {request_id} Version: $LATEST", file=sys.stderr, flush=True)
try:
    response = handler(event, LambdaContext(time.monotonic() + timeout))
    signal.setitimer(signal.ITIMER_REAL, 0)
    duration = (time.perf_counter() - start) * 1000
    json.dumps(response)  # Lambda serialises the response; unserialisable is an error there too
    emit(phase="invoke", init_ms=init_ms, duration_ms=duration, response=response, max_rss_mb=max_rss_mb(),
         init_modules=init_modules, modules=module_files() if init_modules else None)
except BaseException as exc:
    signal.setitimer(signal.ITIMER_REAL, 0)
    duration = (time.perf_counter() - start) * 1000
    traceback.print_exc()
    emit(phase="invoke", init_ms=init_ms, duration_ms=duration, error=error_payload(exc), max_rss_mb=max_rss_mb(),
         init_modules=init_modules, modules=module_files() if init_modules else None)
    sys.exit(1)
finally:
    print(f"END RequestId: {request_id}", file=sys.stderr, flush=True)
"""


def python313() -> str:
    """The base python3.13 interpreter (not the venv's: nothing of .venv may leak into the run)."""
    base = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    if sys.version_info[:2] == (3, 13) and base.exists():
        return str(base)
    raise SystemExit("tools.invoke must run under Python 3.13 (the Lambda runtime's version)")


# --- the event: which objects it names, and S3's view of them after upload ----------------------------------


def _s3_records(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The S3 notification records of an event (direct, or each SQS message body), for in-place patching."""
    records: list[dict[str, Any]] = []
    for record in event.get("Records") or []:
        if record.get("eventSource") == "aws:s3":
            records.append(record)
    return records


def patch_event(event: dict[str, Any], upload: Any) -> dict[str, Any]:
    """Upload an object for every ObjectCreated record and write its real ETag/size/version into the event."""
    event = copy.deepcopy(event)
    if event.get("source") == "aws.s3" and "detail" in event:  # EventBridge
        if event.get("detail-type") == "Object Created":
            detail = event["detail"]
            head = upload(detail["bucket"]["name"], unquote_plus(detail["object"]["key"]))
            _write_head(detail["object"], head, etag_key="etag", version_key="version-id")
        return event
    for record in event.get("Records") or []:
        if record.get("eventSource") == "aws:sqs":
            try:
                body = json.loads(record["body"])
            except (KeyError, json.JSONDecodeError):
                continue
            if isinstance(body, dict):
                _patch_s3_records(body, upload)
                record["body"] = json.dumps(body)
    _patch_s3_records(event, upload)
    return event


def _patch_s3_records(event: dict[str, Any], upload: Any) -> None:
    for record in _s3_records(event):
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = record["s3"]
        head = upload(s3["bucket"]["name"], unquote_plus(s3["object"]["key"]))
        _write_head(s3["object"], head, etag_key="eTag", version_key="versionId")


def _write_head(obj: dict[str, Any], head: dict[str, Any], *, etag_key: str, version_key: str) -> None:
    """The uploaded object's real ETag, size and version into an event's object (keys as that event spells them)."""
    obj.update({etag_key: head["etag"], "size": head["size"]})
    obj.pop(version_key, None)
    if head["version"]:
        obj[version_key] = head["version"]


def make_uploader(stack: Any, data: bytes) -> Any:
    s3 = stack.client("s3")
    seen: set[str] = set()

    def upload(bucket: str, key: str) -> dict[str, Any]:
        if bucket not in seen:
            stack.seed(bucket=bucket)
            seen.add(bucket)
        body = gzip.compress(data, mtime=0) if key.endswith(".gz") else data
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        head = s3.head_object(Bucket=bucket, Key=key)
        print(f"[invoke] uploaded s3://{bucket}/{key} ({len(body)} bytes)", file=sys.stderr)
        return {"etag": head["ETag"].strip('"'), "size": head["ContentLength"], "version": head.get("VersionId")}

    return upload


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
    """Template parameters pointed at the local stack (tools/local_stack.py)."""
    from tools import local_stack

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


def run_artifact(
    *,
    spec: Any,
    env: dict[str, str],
    event: dict[str, Any],
    artifact: Path,
    runtime_dir: Path,
    list_modules: bool = False,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="invoke-") as tmp:
        event_file = Path(tmp) / "event.json"
        result_file = Path(tmp) / "result.json"
        home = Path(tmp) / "home"  # Lambda: only /tmp is writable
        home.mkdir()
        event_file.write_text(json.dumps(event), encoding="utf-8")
        cfg = {
            "task_root": str(artifact),
            "runtime_dir": str(runtime_dir),
            "handler": spec.handler,
            "timeout": spec.timeout,
            "event_file": str(event_file),
            "result_file": str(result_file),
            "request_id": str(uuid.uuid4()),
            "list_modules": list_modules,
        }
        env = {**env, "HOME": str(home), "TMPDIR": tmp}
        started = time.monotonic()
        proc = subprocess.run(
            [python313(), "-I", "-S", "-c", BOOTSTRAP, json.dumps(cfg)],
            env=env,
            cwd=str(artifact),
            stdout=sys.stderr,  # the function's logs; our stdout carries only the response, as with SAM
            check=False,
            timeout=spec.timeout + INIT_PHASE_LIMIT_S + 60,
        )
        wall = time.monotonic() - started
        if not result_file.exists():
            return {"error": {"errorMessage": f"runtime exited ({proc.returncode}) without a result"}, "wall_s": wall}
        result: dict[str, Any] = json.loads(result_file.read_text(encoding="utf-8"))
        result.update(returncode=proc.returncode, request_id=cfg["request_id"], wall_s=wall)
        return result


def report_line(result: dict[str, Any], memory_size: int) -> str:
    duration = result.get("duration_ms", 0.0)
    parts = [f"REPORT RequestId: {result.get('request_id', '-')}"]
    parts.append(f"Init Duration: {result.get('init_ms', 0.0):.2f} ms")
    parts.append(f"Duration: {duration:.2f} ms")
    parts.append(f"Billed Duration: {int(-(-duration // 1))} ms")
    parts.append(f"Memory Size: {memory_size} MB")
    parts.append(f"Max Memory Used: {int(result.get('max_rss_mb', 0))} MB")
    if result.get("timed_out"):
        parts.append("Status: timeout")
    return "\t".join(parts)


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
) -> dict[str, Any]:
    """Run one event through the built artifact against a fresh local stack; return the result record."""
    from tools.local_stack import local_stack

    for path, what in ((artifact, "make build"), (runtime_dir, "make runtime-provided")):
        if not path.is_dir():
            raise SystemExit(f"{path} is missing: run `{what}` first")
    event = json.loads(event_path.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="invoke-db-") as tmp_db, local_stack(db_path or Path(tmp_db)) as stack:
        spec, function_env = function_environment(env_vars, stack.function_env(), parameter_overrides)
        if spec.runtime != "python3.13":
            raise SystemExit(f"template runtime is {spec.runtime}; this stand-in emulates python3.13 only")
        patched = patch_event(event, make_uploader(stack, data.read_bytes()))
        env = lambda_environment(spec, function_env, artifact, runtime_dir)
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
    args = parser.parse_args(argv)
    if not args.event.is_file():
        print(f"no such event file: {args.event}", file=sys.stderr)
        return 2
    env_vars = args.env_vars if args.env_vars and args.env_vars.is_file() else None
    result = invoke(
        args.event,
        env_vars=env_vars,
        artifact=args.artifact.resolve(),
        runtime_dir=args.runtime_provided.resolve(),
        data=args.data,
        db_path=args.db_path,
        parameter_overrides=dict(item.split("=", 1) for item in args.parameter_overrides),
    )
    payload = result.get("response", result.get("error"))
    print(report_line(result, result.get("memory_size", 0)), file=sys.stderr)
    if result.get("init_ms", 0) > INIT_PHASE_LIMIT_S * 1000:
        print(f"[invoke] WARNING: init took more than Lambda's {INIT_PHASE_LIMIT_S:.0f} s budget", file=sys.stderr)
    if result.get("max_rss_mb", 0) > result.get("memory_size", 0):
        print("[invoke] WARNING: max memory used exceeds MemorySize; Lambda would kill the function", file=sys.stderr)
    print(f"[invoke] Snowflake rows after the run: {result.get('rows')}", file=sys.stderr)
    print(json.dumps(payload, indent=2, default=str))
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return 0 if "response" in result else 1


if __name__ == "__main__":
    sys.exit(main())
