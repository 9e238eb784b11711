"""The second part of bench_scoring.py: Scorer.score over max_batch_rows x num_threads, and diagnostics (the bare
interpreter loop, the Scorer's input checks, chunked and hand-tuned numpy), interleaved per N.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.numpy_forward import FoldedNumpyForward, NumpyForward, chunked
from benchmarks.raw_interpreter import RawInterpreter
from benchmarks.scoring_format import chunk_label, fmt_rate, threads_label
from benchmarks.timing import Timing, Workload, blas_one_thread, run_interleaved
from scoring import Scorer
from scoring.scorer import DEFAULT_MAX_BATCH_ROWS

F32 = npt.NDArray[np.float32]


SWEEP_CHUNKS = (4096, 16_384, 65_536)  # plus the default and "whole" (= N)


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
