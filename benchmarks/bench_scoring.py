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
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
for _p in (REPO_ROOT / "src", REPO_ROOT):  # runnable as a plain script, as `make bench` does
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from benchmarks.machine import machine_info as base_machine_info  # noqa: E402
from benchmarks.numpy_forward import FoldedNumpyForward, NumpyForward, chunked  # noqa: E402
from scoring import Scorer  # noqa: E402
from scoring.interpreter import interpreter_class  # noqa: E402
from scoring.scorer import DEFAULT_MAX_BATCH_ROWS, default_model_dir  # noqa: E402

SEED = 20_240_602
JITTER = 0.02  # relative measurement noise (sd) applied to resampled rows
PARITY_TOLERANCE = 1e-5  # numpy vs TFLite probability, max abs difference
PER_ROW_FACTOR = 20.0  # goal: batched >= 20x the per-row loop
DEFAULT_SIZES = (569, 100_000, 1_000_000)
SWEEP_CHUNKS = (4096, 16_384, 65_536)  # plus the default and "whole" (= N)

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


# ------------------------------------------------------------------------------------------ methods


class RawInterpreter:
    """The model's interpreter driven directly, without the Scorer (same interpreter API as the Scorer).

    ``per_row`` is the naive alternative to batching: one invocation per row, the input resized to
    [1, 30] once. ``chunked`` is the Scorer's invoke loop with nothing around it (no validation, no
    class or label), to show how much of ``Scorer.score`` is the interpreter and how much is Python.
    """

    def __init__(self, model_content: bytes, signature_key: str, input_name: str, num_threads: int | None) -> None:
        cls, self.package = interpreter_class()
        self._content, self._key, self._input_name = model_content, signature_key, input_name
        self.interpreter = cls(model_content=model_content, num_threads=num_threads)
        runner = self.interpreter.get_signature_runner(signature_key)
        self.input_index = int(runner.get_input_details()[input_name]["index"])
        self.output_index = int(runner.get_output_details()["malignant_probability"]["index"])
        self.n_features = int(runner.get_input_details()[input_name]["shape_signature"][1])
        del runner  # it holds views into the interpreter, which forbid resizing
        self._rows = 0
        self._resize(1)

    def clone(self, num_threads: int | None = None) -> RawInterpreter:
        """A fresh interpreter for the same model."""
        return RawInterpreter(self._content, self._key, self._input_name, num_threads)

    def _resize(self, rows: int) -> None:
        if rows != self._rows:
            self.interpreter.resize_tensor_input(self.input_index, [rows, self.n_features], strict=True)
            self.interpreter.allocate_tensors()
            self._rows = rows

    def per_row(self, x: F32) -> F32:
        """One set_tensor / invoke / get_tensor per row; the input stays [1, 30] (resized once, at init)."""
        self._resize(1)  # a no-op unless chunked() ran on this interpreter
        interpreter, i_in, i_out = self.interpreter, self.input_index, self.output_index
        out = np.empty(x.shape[0], dtype=np.float32)
        for i in range(x.shape[0]):
            interpreter.set_tensor(i_in, x[i : i + 1])
            interpreter.invoke()
            out[i] = interpreter.get_tensor(i_out)[0]
        return out

    def chunked(self, x: F32, rows: int) -> F32:
        """One invocation per chunk of ``rows`` rows, exactly the Scorer's loop minus its checks and labels."""
        out = np.empty(x.shape[0], dtype=np.float32)
        for start in range(0, x.shape[0], rows):
            chunk = x[start : start + rows]
            self._resize(chunk.shape[0])
            self.interpreter.set_tensor(self.input_index, chunk)
            self.interpreter.invoke()
            out[start : start + chunk.shape[0]] = self.interpreter.get_tensor(self.output_index).reshape(-1)
        return out

    def tensor_megabytes(self, rows: int) -> float:
        """Sum of every tensor's size when the input is [rows, 30] (an upper bound: the arena reuses buffers)."""
        cls, _ = interpreter_class()
        probe = cls(model_content=self._content, num_threads=1)
        probe.resize_tensor_input(self.input_index, [rows, self.n_features], strict=True)
        probe.allocate_tensors()
        total = sum(int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize for d in probe.get_tensor_details())
        return float(total) / 1e6


# --------------------------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """Repeated timings of one workload; each sample is seconds per call (a call scores ``rows`` rows)."""

    rows: int
    number: int = 1  # calls per repeat, calibrated so a repeat lasts at least --min-time
    samples: list[float] = field(default_factory=list)

    @property
    def median_rps(self) -> float:
        return self.rows / statistics.median(self.samples)

    @property
    def best_rps(self) -> float:
        return self.rows / min(self.samples)

    def as_json(self) -> dict[str, Any]:
        return {
            "rows_timed": self.rows,
            "calls_per_repeat": self.number,
            "seconds_per_call": self.samples,
            "rows_per_s_median": self.median_rps,
            "rows_per_s_best": self.best_rps,
        }


@dataclass
class Workload:
    fn: Callable[[], object]
    timing: Timing
    context: Callable[[], AbstractContextManager[Any]] = nullcontext  # entered outside the timer


def calibrate(fn: Callable[[], object], min_time: float) -> int:
    """How many calls make one repeat last at least ``min_time`` (at least one call)."""
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    return max(1, math.ceil(min_time / max(once, 1e-9)))


def time_once(fn: Callable[[], object], number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def run_interleaved(workloads: dict[str, Workload], repeats: int, min_time: float) -> None:
    """Warm up and calibrate every workload, then time them ``repeats`` times, rotating their order."""
    names = list(workloads)
    for name in names:
        w = workloads[name]
        with w.context():
            w.fn()  # warm-up: allocation, page faults, thread pools
            w.timing.number = calibrate(w.fn, min_time)
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            w = workloads[name]
            with w.context():
                w.timing.samples.append(time_once(w.fn, w.timing.number))


def blas_one_thread() -> Callable[[], AbstractContextManager[Any]] | None:
    """A context limiting numpy's BLAS to one thread (threadpoolctl), or None when that is not installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return lambda: threadpool_limits(limits=1, user_api="blas")


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


# ---------------------------------------------------------------------------------------------- output


def fmt_rate(rps: float) -> str:
    if rps >= 1e6:
        return f"{rps / 1e6:,.2f} M"
    if rps >= 1e3:
        return f"{rps / 1e3:,.1f} k"
    return f"{rps:,.0f}"


def parse_sizes(text: str) -> list[int]:
    sizes = []
    for part in text.replace("_", "").split(","):
        part = part.strip().lower()
        if not part:
            continue
        mult = 1
        if part[-1] in "km":
            mult = 1000 if part[-1] == "k" else 1_000_000
            part = part[:-1]
        sizes.append(int(float(part) * mult))
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"bad --sizes {text!r}")
    return sizes


def parse_threads(text: str) -> int | None:
    return None if text.lower() in {"none", "default", ""} else int(text)


def threads_label(threads: int | None) -> str:
    return "default" if threads is None else str(threads)


def chunk_label(chunk: int, n: int) -> str:
    return f"whole ({n})" if chunk >= n else str(chunk)


# ------------------------------------------------------------------------------------------------ main


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


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
    content = (model_dir / scorer.metadata.tflite_file).read_bytes()
    sig = scorer.metadata.signature
    per_row = RawInterpreter(content, sig.key, sig.input.name, args.threads)
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


def run_sweep(
    args: argparse.Namespace,
    sizes: list[int],
    batches: dict[int, F32],
    model_dir: Path,
    per_row: RawInterpreter,
    numpy_fwd: NumpyForward,
    repeats: int,
    min_time: float,
) -> list[dict[str, Any]]:
    """Scorer.score over max_batch_rows x num_threads, plus diagnostics, interleaved per N."""
    sweep_sizes = [n for n in sizes if n >= 65_536] or [max(sizes)]
    cpu = os.cpu_count() or 1
    thread_options: list[int | None] = [None, 1, 2] + ([cpu] if cpu > 2 else [])
    blas1 = blas_one_thread() or nullcontext
    folded = FoldedNumpyForward.load(model_dir / "reference_weights.npz")
    out: list[dict[str, Any]] = []
    print(
        "\nSweep: Scorer(max_batch_rows=..., num_threads=...).score(x), interleaved; median (best) rows/s.\n"
        "  num_threads=default (None) gives XNNPACK no thread pool, i.e. the same as 1."
    )
    for n in sweep_sizes:
        x = batches[n]
        chunks = sorted({c for c in (*SWEEP_CHUNKS, DEFAULT_MAX_BATCH_ROWS) if c < n} | {n})
        grid: dict[tuple[int, int | None], Timing] = {}
        workloads: dict[str, Workload] = {}
        for c in chunks:
            for th in thread_options:
                s = Scorer.load(model_dir, max_batch_rows=c, num_threads=th)
                grid[(c, th)] = Timing(n)
                workloads[f"scorer/{c}/{th}"] = Workload(lambda s=s, x=x: s.score(x), grid[(c, th)])
        diag_chunk = min(16_384, n)
        ref = Scorer.load(model_dir)
        default_chunk = min(DEFAULT_MAX_BATCH_ROWS, n)
        raw_small, raw_default = per_row.clone(), per_row.clone()
        p_model = ref.score(x).malignant_probability

        def drift(forward: Callable[[F32], F32], x: F32 = x, p_model: F32 = p_model) -> float:
            return float(np.max(np.abs(forward(x) - p_model)))

        diagnostics: dict[str, tuple[Workload, float | None]] = {
            "Scorer.validate(x) alone (the input checks inside score)": (
                Workload(lambda x=x, ref=ref: ref.validate(x), Timing(n)),
                None,
            ),
            f"interpreter alone (no Scorer checks or labels), chunks of {diag_chunk}": (
                Workload(lambda x=x, r=raw_small, c=diag_chunk: r.chunked(x, c), Timing(n)),
                drift(lambda v, r=raw_small, c=diag_chunk: r.chunked(v, c)),
            ),
            f"interpreter alone (no Scorer checks or labels), chunks of {default_chunk}": (
                Workload(lambda x=x, r=raw_default, c=default_chunk: r.chunked(x, c), Timing(n)),
                drift(lambda v, r=raw_default, c=default_chunk: r.chunked(v, c)),
            ),
            "numpy, whole batch, BLAS threads as configured (the baseline)": (
                Workload(lambda x=x: numpy_fwd(x), Timing(n)),
                drift(numpy_fwd),
            ),
            "numpy, whole batch, 1 BLAS thread": (
                Workload(lambda x=x: numpy_fwd(x), Timing(n), blas1),
                drift(numpy_fwd),
            ),
            f"numpy, chunks of {diag_chunk}, 1 BLAS thread": (
                Workload(lambda x=x, c=diag_chunk: chunked(numpy_fwd, x, c), Timing(n), blas1),
                drift(lambda v, c=diag_chunk: chunked(numpy_fwd, v, c)),
            ),
            f"numpy, normalisation folded into W1, chunks of {diag_chunk}, 1 BLAS thread": (
                Workload(lambda x=x, c=diag_chunk: chunked(folded, x, c), Timing(n), blas1),
                drift(folded),
            ),
        }
        for name, (w, _) in diagnostics.items():
            workloads[name] = w
        run_interleaved(workloads, repeats, min_time)

        default = grid[(min(DEFAULT_MAX_BATCH_ROWS, n), None)]
        col = 21
        print(f"\n  N={n:,}")
        print(
            f"  {'max_batch_rows':<16} {'tensor MB':>9} "
            + "".join(f"{'threads=' + threads_label(th):>{col}}" for th in thread_options)
        )
        for c in chunks:
            mb = per_row.tensor_megabytes(c)
            cells = ""
            for th in thread_options:
                tm = grid[(c, th)]
                cells += f"{fmt_rate(tm.median_rps) + ' (' + fmt_rate(tm.best_rps) + ')':>{col}}"
                out.append(
                    {
                        "n": n,
                        "kind": "scorer",
                        "max_batch_rows": c,
                        "num_threads": th,
                        "tensor_mb_upper_bound": mb,
                        **tm.as_json(),
                        "vs_default_scorer": tm.median_rps / default.median_rps,
                    }
                )
            print(f"  {chunk_label(c, n):<16} {mb:>9.1f} {cells}")
        best_key = max(grid, key=lambda key: grid[key].median_rps)
        best = grid[best_key]
        print(
            f"  best median: max_batch_rows={chunk_label(best_key[0], n)}, num_threads={threads_label(best_key[1])}: "
            f"{fmt_rate(best.median_rps)} rows/s = {best.median_rps / default.median_rps:.2f}x the default "
            f"(max_batch_rows={DEFAULT_MAX_BATCH_ROWS}, num_threads=default)"
        )
        print(
            "  tensor MB: sum of the interpreter's tensor sizes at that chunk (an upper bound; the arena reuses some)"
        )
        print(f"  diagnostics (vs the default Scorer, {fmt_rate(default.median_rps)} rows/s):")
        for name, (w, diff) in diagnostics.items():
            tm = w.timing
            if diff is None:  # a part of score(), not an alternative to it
                extra = f"  = {default.median_rps / tm.median_rps:.0%} of the default Scorer's time"
            else:
                extra = f"{tm.median_rps / default.median_rps:>5.2f}x, max|p - TFLite| {diff:.1e}"
            print(f"    {name:<72} {fmt_rate(tm.median_rps):>9} ({fmt_rate(tm.best_rps)}) rows/s  {extra}")
            out.append(
                {
                    "n": n,
                    "kind": "diagnostic",
                    "name": name,
                    **tm.as_json(),
                    "vs_default_scorer": tm.median_rps / default.median_rps,
                    "max_abs_diff_vs_tflite": diff,
                }
            )
    return out


if __name__ == "__main__":
    sys.exit(main())
