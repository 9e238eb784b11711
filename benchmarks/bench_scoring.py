"""Scoring benchmark: batched TFLite scoring vs a per-row interpreter loop vs a plain numpy forward pass.

In one run, for each N it measures rows/s of

* ``batched``  ``Scorer.score(x)``: the product path (validation, one ``invoke`` per chunk of
               ``max_batch_rows`` rows, probability, class and label);
* ``per-row``  the same interpreter API, one ``set_tensor``/``invoke``/``get_tensor`` per row,
               input resized to [1, 30] once. Slow, so it is timed on at most ``--per-row-rows``
               rows and its rows/s is extrapolated (the output says "measured on K rows");
* ``numpy``    a plain numpy float32 forward pass over the whole batch with the same weights
               (``model/reference_weights.npz``); checked against the TFLite output first.
               ``numpy-1t`` is the same with numpy's BLAS limited to one thread (threadpoolctl):
               on a busy machine a 2-thread OpenBLAS stalls badly, and the goal is judged against
               whichever numpy variant is faster.

Every measurement is repeated (``--repeats``) with the methods interleaved (their order rotates
between repeats) so that load on a noisy machine hits all of them alike; the table reports the
median and the best (minimum-time) repeat. A second part sweeps the scorer's ``max_batch_rows``
and ``num_threads`` and times diagnostics (the bare interpreter loop, the Scorer's input checks,
chunked and hand-tuned numpy) to show what makes batched scoring fast and what it costs.

Run: ``make bench`` or ``PYTHONPATH=src:. .venv/bin/python benchmarks/bench_scoring.py [--quick]``.
Writes the results as JSON to ``benchmarks/out/scoring.json`` (gitignored).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
for _p in (REPO_ROOT / "src", REPO_ROOT):  # runnable as a plain script, as `make bench` does
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from benchmarks.machine import machine_info as base_machine_info  # noqa: E402
from benchmarks.numpy_forward import NumpyForward  # noqa: E402
from benchmarks.raw_interpreter import RawInterpreter  # noqa: E402
from benchmarks.report import verdict  # noqa: E402
from benchmarks.scoring_format import fmt_rate, parse_sizes, parse_threads, threads_label  # noqa: E402
from benchmarks.scoring_sweep import run_sweep  # noqa: E402
from benchmarks.timing import Timing, Workload, blas_one_thread, run_interleaved  # noqa: E402
from scoring import Scorer  # noqa: E402
from scoring.scorer import default_model_dir  # noqa: E402

SEED = 20_240_602
JITTER = 0.02  # relative measurement noise (sd) applied to resampled rows
PARITY_TOLERANCE = 1e-5  # numpy vs TFLite probability, max abs difference
PER_ROW_FACTOR = 20.0  # goal: batched >= 20x the per-row loop
DEFAULT_SIZES = (569, 100_000, 1_000_000)

F32 = npt.NDArray[np.float32]


# --------------------------------------------------------------------------------------------- data


def load_sample(path: Path, feature_names: list[str]) -> F32:
    """The 569 real rows of ``data/breast_cancer.csv`` (measurements as text), columns in the model's order."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = [[float(row[name]) for name in feature_names] for row in csv.DictReader(fh)]
    return np.asarray(rows, dtype=np.float32)


def make_batch(base: F32, n: int, rng: np.random.Generator) -> F32:
    """N rows: the real rows themselves when N == len(base), else rows drawn with replacement and jittered.

    Jitter is multiplicative (1 + N(0, JITTER)): measurements stay non-negative and zeros stay zero.
    """
    if n == base.shape[0]:
        return np.ascontiguousarray(base)
    idx = rng.integers(0, base.shape[0], size=n)
    noise = rng.normal(1.0, JITTER, size=(n, base.shape[1])).astype(np.float32)
    np.maximum(noise, np.float32(0.0), out=noise)
    out = base[idx] * noise
    return np.ascontiguousarray(out, dtype=np.float32)


# -------------------------------------------------------------------------------------------- context


def machine_info() -> dict[str, Any]:
    """The machine (benchmarks/machine.py), plus numpy's version, its BLAS and the thread settings."""
    info: dict[str, Any] = {
        **base_machine_info(),
        "numpy": np.__version__,
        "env": {
            k: v for k, v in os.environ.items() if "BLAS" in k or k.endswith("NUM_THREADS") or k == "OPENBLAS_CORETYPE"
        },
    }
    try:
        from threadpoolctl import threadpool_info

        info["numpy_blas"] = [
            {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture", "threading_layer")}
            for p in threadpool_info()
        ]
    except ImportError:
        info["numpy_blas"] = None
    return info


def blas_summary(info: dict[str, Any]) -> str:
    blas = info.get("numpy_blas")
    if not blas:
        return "numpy BLAS: unknown (threadpoolctl not installed)"
    return "numpy BLAS: " + ", ".join(
        f"{p['internal_api']} {p['version']} ({p['architecture']}), {p['num_threads']} thread(s)" for p in blas
    )


# ------------------------------------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=parse_sizes, default=None, help="comma list, e.g. 569,100k,1M")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per measurement (default 7)")
    parser.add_argument("--threads", type=parse_threads, default=None, help="interpreter num_threads (default: none)")
    parser.add_argument("--per-row-rows", type=int, default=None, help="rows the per-row loop is timed on (20000)")
    parser.add_argument("--min-time", type=float, default=None, help="seconds one repeat lasts at least (0.2)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the max_batch_rows / num_threads sweep")
    parser.add_argument("--quick", action="store_true", help="smoke run: small N, 1 repeat, tiny budgets")
    parser.add_argument("--check", action="store_true", help="exit 1 if a goal fails (default: report only)")
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "data" / "breast_cancer.csv")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "out" / "scoring.json")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sizes = args.sizes or ([569, 5_000] if args.quick else list(DEFAULT_SIZES))
    repeats = args.repeats or (1 if args.quick else 7)
    per_row_cap = args.per_row_rows or (1_000 if args.quick else 20_000)
    min_time = args.min_time if args.min_time is not None else (0.002 if args.quick else 0.2)
    model_dir = args.model_dir or default_model_dir()

    info = machine_info()
    scorer = Scorer.load(model_dir, num_threads=args.threads)
    base = load_sample(args.data, scorer.metadata.feature_names)
    rng = np.random.default_rng(SEED)
    batches = {n: make_batch(base, n, rng) for n in sizes}
    per_row = RawInterpreter.for_model(model_dir, scorer.metadata, args.threads)
    numpy_fwd = NumpyForward.load(model_dir / "reference_weights.npz")
    blas1 = blas_one_thread()
    methods = ["batched", "per-row", "numpy"] + (["numpy-1t"] if blas1 else [])
    numpy_methods = [m for m in methods if m.startswith("numpy")]

    print("Scoring benchmark")
    print(
        f"machine: {info['nproc']} CPU(s) [{info['cpu_model']}], Python {info['python']}, numpy {info['numpy']}, "
        f"{scorer.interpreter_package}; load average at start {info['load_average_at_start']}"
    )
    print(blas_summary(info) + (f"; env {info['env']}" if info["env"] else ""))
    print(
        f"model {scorer.model_version}; interpreter num_threads={threads_label(args.threads)}, "
        f"Scorer max_batch_rows={scorer.max_batch_rows}; {repeats} repeat(s), methods interleaved, "
        f">= {min_time:g} s per repeat"
    )
    print(
        f"data: N=569 is data/breast_cancer.csv as is; other N are its rows drawn with replacement "
        f"(seed {SEED}) times (1 + N(0, {JITTER})) jitter"
    )
    print(
        "methods: batched = Scorer.score (validation + one invoke per chunk + class + label); "
        "per-row = one set_tensor/invoke/get_tensor per row, input resized to [1, 30] once; "
        "numpy = float32 forward pass over the whole batch, BLAS threads as configured"
        + ("; numpy-1t = the same with BLAS limited to 1 thread" if blas1 else "")
    )

    # ---- parity: the numpy baseline computes what the model computes
    print("\nParity (probability, against batched TFLite):")
    parity: dict[str, Any] = {}
    parity_ok = True
    for n, x in batches.items():
        p_tfl = scorer.score(x).malignant_probability
        p_np = numpy_fwd(x)
        k = min(n, per_row_cap)
        p_row = per_row.per_row(x[:k])
        d_np = float(np.max(np.abs(p_np - p_tfl)))
        d_row = float(np.max(np.abs(p_row - p_tfl[:k])))
        flips = int(np.count_nonzero((p_np >= scorer.threshold) != (p_tfl >= scorer.threshold)))
        ok = d_np <= PARITY_TOLERANCE and d_row <= PARITY_TOLERANCE
        parity_ok &= ok
        parity[str(n)] = {
            "max_abs_diff_numpy_vs_batched": d_np,
            "max_abs_diff_per_row_vs_batched": d_row,
            "per_row_rows_compared": k,
            "class_disagreements_numpy_vs_batched": flips,
            "ok": ok,
        }
        print(
            f"  N={n:>9,}: max|numpy - batched| = {d_np:.2e}, max|per-row - batched| = {d_row:.2e} "
            f"(first {k:,} rows), class disagreements {flips}  [{'ok' if ok else 'MISMATCH'}]"
        )

    # ---- main comparison: every method on every size, interleaved
    timings: dict[int, dict[str, Timing]] = {}
    workloads: dict[str, Workload] = {}
    scorers = {n: Scorer.load(model_dir, num_threads=args.threads) for n in sizes}  # steady state per N
    for n, x in batches.items():
        k = min(n, per_row_cap)
        xk = np.ascontiguousarray(x[:k])
        t = timings[n] = {m: Timing(k if m == "per-row" else n) for m in methods}
        s = scorers[n]
        workloads[f"batched/{n}"] = Workload(lambda s=s, x=x: s.score(x), t["batched"])
        workloads[f"per-row/{n}"] = Workload(lambda xk=xk: per_row.per_row(xk), t["per-row"])
        workloads[f"numpy/{n}"] = Workload(lambda x=x: numpy_fwd(x), t["numpy"])
        if blas1:
            workloads[f"numpy-1t/{n}"] = Workload(lambda x=x: numpy_fwd(x), t["numpy-1t"], blas1)
    t0 = time.perf_counter()
    run_interleaved(workloads, repeats, min_time)
    main_seconds = time.perf_counter() - t0

    header = (
        f"{'method':<9} {'N':>10} {'rows/s median':>14} {'rows/s best':>12} {'ms/call med':>12} "
        f"{'vs numpy*':>10} {'vs per-row':>11}  note"
    )
    print(f"\nResults ({main_seconds:.1f} s of timing; rows/s from the median and the best of {repeats} repeat(s))")
    print(header)
    print("-" * len(header))
    results: dict[str, Any] = {}
    goals: dict[str, Any] = {}
    for n in sizes:
        t = timings[n]
        np_med = max(t[m].median_rps for m in numpy_methods)
        np_best = max(t[m].best_rps for m in numpy_methods)
        row_med, row_best = t["per-row"].median_rps, t["per-row"].best_rps
        results[str(n)] = {}
        for m in methods:
            tm = t[m]
            note = ""
            if m == "per-row":
                note = f"measured on {tm.rows:,} rows, rows/s extrapolated" if tm.rows < n else "all N rows timed"
            print(
                f"{m:<9} {n:>10,} {fmt_rate(tm.median_rps):>14} {fmt_rate(tm.best_rps):>12} "
                f"{n / tm.median_rps * 1e3:>12.3f} {tm.median_rps / np_med:>9.2f}x {tm.median_rps / row_med:>10.1f}x"
                f"  {note}".rstrip()
            )
            results[str(n)][m] = tm.as_json() | {
                "vs_numpy": tm.median_rps / np_med,
                "vs_per_row": tm.median_rps / row_med,
            }
        b_med, b_best = t["batched"].median_rps, t["batched"].best_rps
        goals[str(n)] = {
            "batched_vs_numpy_median": b_med / np_med,
            "batched_vs_numpy_best": b_best / np_best,
            "batched_vs_per_row_median": b_med / row_med,
            "batched_vs_per_row_best": b_best / row_best,
            "batched_ge_numpy": b_med >= np_med and b_best >= np_best,
            "batched_ge_20x_per_row": b_med >= PER_ROW_FACTOR * row_med and b_best >= PER_ROW_FACTOR * row_best,
        }
        print()
    print("* vs the faster numpy variant at that N (median). ms/call for per-row is extrapolated to N rows.")

    all_np = all(g["batched_ge_numpy"] for g in goals.values())
    all_row = all(g["batched_ge_20x_per_row"] for g in goals.values())
    print("\nGoals (this run; ratios median/median and best/best, numpy = its faster variant; both must hold):")
    print(
        f"  {verdict(all_np)}  batched >= numpy forward:   "
        + ", ".join(
            f"N={n:,} {goals[str(n)]['batched_vs_numpy_median']:.2f}x/{goals[str(n)]['batched_vs_numpy_best']:.2f}x"
            for n in sizes
        )
    )
    print(
        f"  {verdict(all_row)}  batched >= {PER_ROW_FACTOR:g}x per-row loop:  "
        + ", ".join(
            f"N={n:,} {goals[str(n)]['batched_vs_per_row_median']:.0f}x/{goals[str(n)]['batched_vs_per_row_best']:.0f}x"
            for n in sizes
        )
    )
    print(
        f"  {verdict(parity_ok)}  numpy baseline and per-row loop agree with batched TFLite (<= {PARITY_TOLERANCE:g})"
    )

    sweep = [] if args.no_sweep else run_sweep(args, sizes, batches, model_dir, per_row, numpy_fwd, repeats, min_time)

    report = {
        "benchmark": "scoring",
        "machine": info,
        "model_version": scorer.model_version,
        "interpreter_package": scorer.interpreter_package,
        "config": {
            "sizes": sizes,
            "repeats": repeats,
            "num_threads": args.threads,
            "max_batch_rows": scorer.max_batch_rows,
            "per_row_max_rows": per_row_cap,
            "min_time_per_repeat_s": min_time,
            "seed": SEED,
            "jitter_relative_sd": JITTER,
            "quick": args.quick,
        },
        "parity": parity,
        "results": results,
        "goals": {
            "per_size": goals,
            "batched_ge_numpy": all_np,
            "batched_ge_20x_per_row": all_row,
            "parity": parity_ok,
        },
        "sweep": sweep,
    }
    load_end = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    report["machine"]["load_average_at_end"] = load_end
    print(f"\nload average at end {load_end} (a load near or above the CPU count means other work shared the CPUs)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nJSON: {args.out}")

    if not parity_ok:
        print("the numpy baseline does not match the TFLite model: the comparison is not valid", file=sys.stderr)
        return 2
    if args.check and not (all_np and all_row):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
