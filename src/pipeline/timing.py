"""Seconds spent per stage of one object's load (reported in its result and the benchmarks)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

STAGES = ("s3_read", "parse", "convert", "check", "score", "challenger", "monitor", "stage", "publish")


class StageTimer:
    """``with timer("parse"): ...`` adds the block's wall time to ``seconds["parse"]``."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


class TimedStream(io.RawIOBase):
    """Attributes the time spent waiting on the object source to the s3_read stage."""

    def __init__(self, raw: io.RawIOBase, timer: StageTimer) -> None:
        self._raw = raw
        self._timer = timer

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        start = time.perf_counter()
        try:
            return self._raw.readinto(buffer) or 0
        finally:
            self._timer.seconds["s3_read"] += time.perf_counter() - start
