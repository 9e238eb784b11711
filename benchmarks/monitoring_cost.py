"""benchmarks/bench_monitoring.py, part 5: what monitoring costs against the whole pipeline, in the same run.

* **pipeline**: bench_e2e.py's pipeline measurement (``e2e_harness.run_child``: the handler, warm, in a fresh
  process pinned to one CPU, the local stack on the other; ``pin=False`` shares both CPUs) on a ``rows``-row
  benchmark file (``tools/make_files.py``). Its result carries the pipeline's own ``monitor`` stage (wall time
  around ``FileMonitor.add`` and ``result``) and, with ``monitor_cpu``, the CPU time of the thread inside those
  calls (e2e_child.py wraps them with ``time.thread_time``): what monitoring costs where it runs. The goal is
  judged on that CPU time.
* **monitor alone**: the same calls on ``rows`` rows in ``CHUNK_ROWS`` chunks (column-major float64, as the
  pipeline's converted chunks; the project model's probabilities and classes), timed in this process, pinned to
  the CPU the measured function gets, on arrays it has used before. It is the lower figure: in the pipeline each
  file's first chunk is copied whole (``SystematicSample``: 200,000 x 30 float64, 48 MB) into memory the process
  has not touched yet, which costs several times what the same copy costs into memory reused.

The two alternate, round after round, so that the machine's load hits both alike.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import e2e_harness
from benchmarks.e2e_harness import CpuPlan, run_child, running_stack
from benchmarks.monitoring_stats import CHUNK_ROWS, JITTER, Data
from monitoring import FileMonitor
from scoring import Scorer
from scoring.metadata import MonitoringProfile

COST_GOAL = 0.03  # monitoring <= 3 % of the pipeline's time


def _chunks(data: Data, rows: int, seed: int) -> list[tuple[Any, Any, Any]]:
    """``rows`` benchmark-like rows (real rows with make_files' jitter), scored, in the pipeline's chunks."""
    rng = np.random.default_rng([seed, 5])
    lo, hi = data.x.min(axis=0), data.x.max(axis=0)
    scorer = Scorer.load()
    out = []
    for start in range(0, rows, CHUNK_ROWS):
        n = min(CHUNK_ROWS, rows - start)
        picked = data.x[rng.integers(0, len(data.x), n)]
        values = np.clip(picked + rng.normal(0.0, 1.0, picked.shape) * data.x.std(axis=0) * JITTER, lo, hi)
        scores = scorer.score(values.astype(np.float32))
        out.append((np.asfortranarray(values), scores.malignant_probability, scores.classification))
    return out


def _monitor_once(profile: MonitoringProfile, columns: list[str], chunks: list[tuple[Any, Any, Any]]) -> float:
    start = time.perf_counter()
    monitor = FileMonitor(profile, columns)
    for values, probability, classification in chunks:
        monitor.add(values, probability, classification)
    found = monitor.result()
    seconds = time.perf_counter() - start
    if found.drift_detected is None or found.failed:
        raise RuntimeError(f"monitoring did not run: {found.detail}")
    return seconds


def cost(
    data: Data, rows: int, rounds: int, monitor_repeats: int, files_dir: Path, e2e: bool, seed: int, pin: bool = True
) -> dict[str, Any]:
    profile = data.shipped or data.profile
    chunks = _chunks(data, rows, seed)
    _monitor_once(profile, data.columns, chunks)  # warm-up (first calls of each numpy routine)
    plan = CpuPlan.choose(pin)
    e2e_harness.CPU_PLAN = plan
    monitor_s: list[float] = []
    pipeline: list[dict[str, Any]] = []

    def time_monitor() -> None:
        before = os.sched_getaffinity(0)
        if plan.function is not None:
            os.sched_setaffinity(0, plan.function)
        try:
            monitor_s.extend(_monitor_once(profile, data.columns, chunks) for _ in range(monitor_repeats))
        finally:
            os.sched_setaffinity(0, before)

    if not e2e:
        for _ in range(rounds):
            time_monitor()
    else:
        from tools.make_files import ensure_file

        path = ensure_file(rows, out_dir=files_dir)
        with running_stack() as stack:
            event = stack.upload(path, f"bench/monitoring-{rows}.csv")
            for r in range(rounds):
                run = run_child(stack, "pipeline", event, monitor_cpu=True)
                pipeline.append(run)
                time_monitor()
                print(
                    f"  round {r + 1}: pipeline {run['seconds']:.2f} s (its monitor stage "
                    f"{run['stages'].get('monitor', float('nan')):.3f} s wall, "
                    f"{run['monitor_thread_cpu_s']:.3f} s CPU), monitor alone "
                    f"{statistics.median(monitor_s[-monitor_repeats:]):.3f} s",
                    flush=True,
                )
    out: dict[str, Any] = {
        "rows": rows,
        "chunk_rows": CHUNK_ROWS,
        "profile_rows": profile.rows,
        "cpus": plan.describe(),
        "monitor_alone_s": monitor_s,
        "monitor_alone_median_s": statistics.median(monitor_s),
        "rounds": rounds,
    }
    if pipeline:
        seconds = statistics.median(r["seconds"] for r in pipeline)
        stage = [r["stages"].get("monitor") for r in pipeline]
        out |= {
            "pipeline_s": [r["seconds"] for r in pipeline],
            "pipeline_median_s": seconds,
            "pipeline_stages_median_s": {
                k: statistics.median(r["stages"][k] for r in pipeline) for k in pipeline[0]["stages"]
            },
            "pipeline_rows_loaded": pipeline[0]["rows_loaded"],
            "monitor_stage_s": stage,
            "monitor_stage_median_s": None if None in stage else statistics.median(s for s in stage if s is not None),
            "share_alone": statistics.median(monitor_s) / seconds,
            "share_stage": None if None in stage else statistics.median(s for s in stage if s is not None) / seconds,
            "pipeline_function_cpu_median_s": statistics.median(r["function_cpu_s"] for r in pipeline),
            "monitor_thread_cpu_s": [r["monitor_thread_cpu_s"] for r in pipeline],
            "monitor_thread_cpu_median_s": statistics.median(r["monitor_thread_cpu_s"] for r in pipeline),
            "share_thread_cpu": statistics.median(r["monitor_thread_cpu_s"] for r in pipeline) / seconds,
            "share_of_function_cpu": statistics.median(
                r["monitor_thread_cpu_s"] / r["function_cpu_s"] for r in pipeline
            ),
        }
    return out
