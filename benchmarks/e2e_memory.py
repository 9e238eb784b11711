"""bench_e2e.py --memory and --plot: peak RSS of the function's process against file size, and its plot."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks import e2e_harness
from benchmarks.e2e_harness import run_child, running_stack
from benchmarks.machine import machine_info
from benchmarks.report import verdict

GOAL_MEMORY_RATIO = 1.25


def memory(args: argparse.Namespace) -> dict[str, Any]:
    from tools.make_files import ensure_file

    results: list[dict[str, Any]] = []
    for rows in sorted(args.memory):
        for gz in (False, True) if not args.no_gzip else (False,):
            path = ensure_file(rows, gz=gz, out_dir=args.files_dir)
            with running_stack() as stack:  # a fresh stack per file: its memory is not the function's anyway
                event = stack.upload(path, f"bench/{path.name}")
                res = run_child(stack, "pipeline", event)
            res |= {"file": path.name, "gzip": gz, "bytes": path.stat().st_size, "stack_peak_rss_mb": stack.peak_rss_mb}
            res["rows_per_s"] = res["rows"] / res["seconds"]
            results.append(res)
            print(
                f"  {path.name:<24} {res['rows']:>10,} rows {res['seconds']:8.1f} s {res['rows_per_s']:>9,.0f} rows/s "
                f"peak RSS {res['peak_rss_mb']:6.0f} MB (after init {res['rss_after_init_mb']:.0f}; "
                f"stack {stack.peak_rss_mb or 0:.0f})",
                flush=True,
            )
    ratios = {}
    for gz in {r["gzip"] for r in results}:
        sel = sorted((r for r in results if r["gzip"] == gz), key=lambda r: r["rows"])
        ratios["gzip" if gz else "plain"] = sel[-1]["peak_rss_mb"] / sel[0]["peak_rss_mb"]
    worst = max(ratios.values())
    print(
        "peak RSS ratio largest/smallest: "
        + ", ".join(f"{k} {v:.2f}" for k, v in sorted(ratios.items()))
        + f" (goal <= {GOAL_MEMORY_RATIO}) {verdict(worst <= GOAL_MEMORY_RATIO)}"
    )
    return {
        "machine": machine_info(),
        "cpus": e2e_harness.CPU_PLAN.describe(),
        "results": results,
        "ratios": ratios,
        "goals": {"memory_ratio_le_1_25": worst <= GOAL_MEMORY_RATIO},
    }


def plot(memory_json: Path, out: Path) -> None:
    """Throughput and peak RSS of the function's process against file size (from memory mode's JSON)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = json.loads(memory_json.read_text(encoding="utf-8"))["results"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=80)
    for gz, style in ((False, "o-"), (True, "s--")):
        sel = sorted((r for r in results if r["gzip"] == gz), key=lambda r: r["rows"])
        if not sel:
            continue
        label = "gzip" if gz else "plain"
        rows = [r["rows"] for r in sel]
        ax1.plot(rows, [r["rows_per_s"] / 1000 for r in sel], style, label=label)
        ax2.plot(rows, [r["peak_rss_mb"] for r in sel], style, label=label)
    sizes = sorted({r["rows"] for r in results})
    for ax, title in ((ax1, "throughput (k rows/s)"), (ax2, "peak RSS of the function (MB)")):
        ax.set_xscale("log")
        ax.set_xticks(sizes, [f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k" for n in sizes])
        ax.minorticks_off()
        ax.set_xlabel("rows in the file")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(f"wrote {out}")
