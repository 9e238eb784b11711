"""Timing workloads: calibrated repeats, interleaved so that load on a noisy machine hits every method alike
(bench_scoring.py and its sweep).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any


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
