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
import json
import sys
from pathlib import Path

from tools.commands.invoke_env import (
    SAMPLE_CSV,
    function_environment,
    function_raised,
    lambda_environment,
    stack_parameters,
)
from tools.commands.invoke_rie import (
    ARTIFACT,
    INIT_PHASE_LIMIT_S,
    RUNTIME_PROVIDED,
    RUNTIME_RIC,
    invoke,
    python313,
    rie_binary,
    run_artifact,
)
from tools.commands.invoke_sam import (
    BUILT_TEMPLATE,
    LOCAL_IMAGE,
    OFFICIAL_IMAGE,
    SAM,
    docker_unusable_reason,
    sam_cli_environment,
    sam_local_invoke,
)
from tools.sam_template import ROOT

# The command's modules: invoke_env.py (the function's environment, what a run returned and left), invoke_rie.py
# (`make invoke`), invoke_sam.py (`make sam-local-invoke`). Their names are importable from here too.
__all__ = [
    "ARTIFACT",
    "BUILT_TEMPLATE",
    "INIT_PHASE_LIMIT_S",
    "LOCAL_IMAGE",
    "OFFICIAL_IMAGE",
    "RUNTIME_PROVIDED",
    "RUNTIME_RIC",
    "SAM",
    "SAMPLE_CSV",
    "docker_unusable_reason",
    "function_environment",
    "function_raised",
    "invoke",
    "lambda_environment",
    "main",
    "python313",
    "rie_binary",
    "run_artifact",
    "sam_cli_environment",
    "sam_local_invoke",
    "stack_parameters",
]


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
