"""bench_e2e.py's throughput mode (the default): the handler against the I/O floor and the naive handler."""

from __future__ import annotations

import argparse
import os
import statistics
from typing import Any

from benchmarks import e2e_harness
from benchmarks.e2e_harness import median_of, run_child, running_stack
from benchmarks.machine import machine_info
from benchmarks.report import verdict

STAGES = ("s3_read", "parse", "convert", "check", "score", "challenger", "monitor", "stage", "publish")
GOAL_VS_NAIVE = 10.0
GOAL_VS_FLOOR = 1.3


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    from tools.make_files import ensure_file

    rows = args.rows
    path = ensure_file(rows, out_dir=args.files_dir)
    runs: dict[str, list[dict[str, Any]]] = {"pipeline": [], "floor": [], "naive": []}
    with running_stack() as stack:
        event = stack.upload(path, f"bench/e2e-{rows}.csv")
        order = ["pipeline", "floor", "naive"]
        for r in range(args.repeats):
            for kind in order[r % 3 :] + order[: r % 3]:  # rotate, so load on the machine hits all alike
                if kind == "naive" and r >= args.naive_repeats:
                    continue
                res = run_child(stack, kind, event, naive_sample=args.naive_sample)
                runs[kind].append(res)
                cpu = (
                    f", CPU function {res['function_cpu_s']:.2f} s + stack {res['stack_cpu_s']:.2f} s"
                    if "stack_cpu_s" in res
                    else ""
                )
                print(
                    f"  {kind:<9} run {r + 1}: {res['seconds']:.2f} s, peak RSS {res['peak_rss_mb']:.0f} MB{cpu}",
                    flush=True,
                )
                if kind == "pipeline" and args.verbose:
                    print("            stages: " + ", ".join(f"{k} {v:.2f}" for k, v in res["stages"].items()))
    pipe_s, floor_s, naive_s = (median_of(runs[k]) for k in ("pipeline", "floor", "naive"))
    stages = {s: statistics.median(r["stages"][s] for r in runs["pipeline"]) for s in STAGES}
    vs_naive = naive_s / pipe_s
    vs_floor = pipe_s / floor_s
    report = {
        "machine": machine_info(),
        "config": {
            "rows": rows,
            "repeats": args.repeats,
            "naive_sample": args.naive_sample,
            "quick": args.quick,
            "cpus": e2e_harness.CPU_PLAN.describe(),
        },
        "median_seconds": {"pipeline": pipe_s, "floor": floor_s, "naive": naive_s},
        "rows_per_s": {"pipeline": rows / pipe_s, "floor": rows / floor_s, "naive": rows / naive_s},
        "pipeline_stages_median_s": stages,
        "cpu_median_s": {
            k: {c: median_of(runs[k], c) for c in ("function_cpu_s", "stack_cpu_s")} for k in ("pipeline", "floor")
        },
        "ratios": {"speedup_vs_naive": vs_naive, "time_vs_floor": vs_floor},
        "goals": {"vs_naive_ge_10x": vs_naive >= GOAL_VS_NAIVE, "vs_floor_le_1_3x": vs_floor <= GOAL_VS_FLOOR},
        "runs": runs,
        "stack_peak_rss_mb": stack.peak_rss_mb,
    }
    n0 = runs["naive"][0]
    print(f"\nEnd to end, {rows:,} rows ({path.stat().st_size / 1e6:.0f} MB), medians of {args.repeats} runs")
    print(f"{'method':<10}{'seconds':>10}{'rows/s':>12}{'peak RSS MB':>13}")
    for kind in ("pipeline", "floor", "naive"):
        print(
            f"{kind:<10}{median_of(runs[kind]):>10.2f}{rows / median_of(runs[kind]):>12,.0f}"
            f"{median_of(runs[kind], 'peak_rss_mb'):>13.0f}"
        )
    print(
        f"naive: read+parse {n0['read_parse_s']:.2f} s, per-row scoring {n0['per_row_score_s_extrapolated']:.2f} s "
        f"(measured on {n0['per_row_sample_rows']:,} rows, extrapolated), write_pandas {n0['write_s']:.2f} s"
    )
    for kind in ("pipeline", "floor"):
        print(
            f"{kind} CPU (median s): function {median_of(runs[kind], 'function_cpu_s'):.2f}, "
            f"local stack {median_of(runs[kind], 'stack_cpu_s'):.2f} (on {os.cpu_count()} cores)"
        )
    print("pipeline stages (median s): " + ", ".join(f"{s} {stages[s]:.2f}" for s in STAGES))
    print(f"speedup vs naive: {vs_naive:.1f}x (goal >= {GOAL_VS_NAIVE:g}x) {verdict(vs_naive >= GOAL_VS_NAIVE)}")
    print(f"time vs floor: {vs_floor:.2f}x (goal <= {GOAL_VS_FLOOR:g}x) {verdict(vs_floor <= GOAL_VS_FLOOR)}")
    return report
