"""Cold start of the BUILT Lambda artifact, with and without precompiled bytecode, and first vs second invocation.

1. Init time: ``.aws-sam/build/ScoringFunction`` (``make build``) is imported the way
   Lambda's init phase does it (``handler.app``: imports, settings, model load, boto3 client, Snowflake
   connector) in a clean ``python3.13 -I -S`` process with ``sys.dont_write_bytecode`` (``/var/task`` is
   read-only), ``--runs`` times each, for

   * the artifact as built (precompiled ``.pyc``), and
   * the same artifact built with ``build/build_artifact.py --no-bytecode`` (``.py`` only, compiled on every
     cold start, as when nothing is precompiled).

   The timer is ``tools.commands.artifact_checks.init_times`` (the SAM helper's, shared so both report the same
   figure). Goal: median with bytecode ≤ 0.4× the median without.
2. First vs second invocation (dev venv, local moto + fakesnow in a process of its own): one fresh process
   imports the handler, then handles two small events; the first pays whatever init left for later (the
   Snowflake login, which needs the secret and the network, is the deliberate exception).

Run: ``PYTHONPATH=src:. .venv/bin/python benchmarks/cold_start.py [--runs 7] [--quick]``.
Writes benchmarks/out/cold_start.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
for _p in (REPO_ROOT / "src", REPO_ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from benchmarks.report import write_report  # noqa: E402

OUT = REPO_ROOT / "benchmarks" / "out" / "cold_start.json"
GOAL = 0.4
SAMPLE = REPO_ROOT / "data" / "breast_cancer.csv"


def artifact_problem(artifact: Path) -> str | None:
    """Why the built artifact cannot be timed, or None."""
    if not (artifact / "handler" / "app.py").exists() and not (artifact / "handler" / "app.pyc").exists():
        return f"{artifact} has no handler: build it with `make build`"
    if not any(artifact.glob("**/*.pyc")):
        return f"{artifact} has no bytecode: it was built with --no-bytecode"
    return None


def init_figures(runs: int) -> dict[str, Any]:
    from tools.commands.artifact_checks import ARTIFACT, RUNTIME_PROVIDED, build_variant, init_times

    problem = artifact_problem(ARTIFACT)
    if problem is None and not RUNTIME_PROVIDED.exists():
        problem = f"{RUNTIME_PROVIDED} is missing: `make runtime-provided`"
    if problem:
        return {"skipped": problem}
    with_bc: list[float] = []
    without: list[float] = []
    with tempfile.TemporaryDirectory(prefix="artifact-no-bytecode-") as tmp:
        variant = Path(tmp) / ARTIFACT.name
        t0 = time.perf_counter()
        build_variant(variant, "--no-bytecode")
        build_s = time.perf_counter() - t0
        for _ in range(runs):  # interleaved, so load on the machine hits both alike
            with_bc += init_times(ARTIFACT, 1)
            without += init_times(variant, 1)
    med_with, med_without = statistics.median(with_bc), statistics.median(without)
    return {
        "artifact": str(ARTIFACT.relative_to(REPO_ROOT)),
        "runs": runs,
        "init_ms_with_bytecode": with_bc,
        "init_ms_without_bytecode": without,
        "median_ms_with_bytecode": med_with,
        "median_ms_without_bytecode": med_without,
        "ratio": med_with / med_without,
        "pass": med_with / med_without <= GOAL,
        "no_bytecode_build_s": build_s,
    }


_INVOKE_TWICE = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
events = json.loads(sys.argv[1])
t0 = time.perf_counter()
from handler import app
init_ms = (time.perf_counter() - t0) * 1000
class Ctx:
    function_name = "cold"; memory_limit_in_mb = 2048; aws_request_id = "cold"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:cold"
    def get_remaining_time_in_millis(self): return 900_000  # template.yaml's Timeout
out = {"init_ms": init_ms, "invocations_ms": []}
for event in events:
    t = time.perf_counter()
    summary = app.lambda_handler(event, Ctx())
    out["invocations_ms"].append((time.perf_counter() - t) * 1000)
    assert summary["objects"][0]["status"] == "loaded", summary
print(json.dumps({"cold": out}))
"""


def invocation_figures(runs: int) -> dict[str, Any]:
    from tools.emulated.stack_process import child_env, stack_process

    first: list[float] = []
    second: list[float] = []
    init: list[float] = []
    with stack_process() as stack:
        for r in range(runs):
            events = [stack.upload(SAMPLE, f"cold/{r}/{i}.csv") for i in range(2)]
            env = child_env(
                stack.env | {"TARGET_TABLE": f"COLD_{r}", "REJECTS_TABLE": f"COLD_R_{r}", "LEDGER_TABLE": f"COLD_L_{r}"}
            )
            proc = subprocess.run(
                [sys.executable, "-c", _INVOKE_TWICE, json.dumps(events)],
                env=env,
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith('{"cold"')), None)
            if proc.returncode or line is None:
                raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
            res = json.loads(line)["cold"]
            init.append(res["init_ms"])
            first.append(res["invocations_ms"][0])
            second.append(res["invocations_ms"][1])
    return {
        "runs": runs,
        "rows_per_event": 569,
        "init_ms": init,
        "first_ms": first,
        "second_ms": second,
        "median_init_ms": statistics.median(init),
        "median_first_ms": statistics.median(first),
        "median_second_ms": statistics.median(second),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="1 run of each part (smoke test)")
    parser.add_argument("--skip-artifact", action="store_true", help="only the first/second invocation part")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    runs = 1 if args.quick else max(5, args.runs)

    report: dict[str, Any] = {"config": {"runs": runs, "quick": args.quick}}
    report["init"] = {"skipped": "--skip-artifact"} if args.skip_artifact else init_figures(runs)
    init = report["init"]
    if "skipped" in init:
        print(f"init time of the built artifact: SKIPPED ({init['skipped']})")
    else:
        print(f"init time of {init['artifact']}, clean python3.13 -I -S, median of {runs}:")
        print(f"  with bytecode     {init['median_ms_with_bytecode']:8.0f} ms")
        print(f"  without bytecode  {init['median_ms_without_bytecode']:8.0f} ms")
        verdict = "PASS" if init["pass"] else "FAIL"
        print(f"  ratio {init['ratio']:.2f} (goal <= {GOAL}) {verdict}")
    inv = invocation_figures(runs)
    report["invocations"] = inv
    print(f"dev venv, one process, median of {runs}: init {inv['median_init_ms']:.0f} ms, ")
    print(
        f"  first invocation {inv['median_first_ms']:.0f} ms, second {inv['median_second_ms']:.0f} ms "
        f"(569 rows each; the first includes the Snowflake login)"
    )
    write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
