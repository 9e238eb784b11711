"""Staging in the background: chunk k is written to the warehouse while chunk k+1 is parsed and scored."""

from __future__ import annotations

import contextlib
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pandas as pd

from pipeline.ports import ObjectStaging
from pipeline.timing import StageTimer


class BackgroundStager:
    """Stages chunk k on one worker thread while the caller parses, converts and scores chunk k+1.

    At most one write is in flight (memory stays at about two chunks). Writes keep their order on the one
    connection, which only this thread uses meanwhile. A failed write is re-raised in the caller at the next
    submit or at the end; on the way out everything in flight is waited for, so nothing writes after the
    caller has moved on (to a rollback, cleanup or the publish).
    """

    def __init__(self, session: ObjectStaging, staged_columns: list[tuple[str, str]], timer: StageTimer) -> None:
        self._session = session
        self._columns = staged_columns
        self._timer = timer
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stage")
        self._pending: Future[None] | None = None

    def __enter__(self) -> BackgroundStager:
        return self

    def submit(self, frame: pd.DataFrame | None, rejects: pd.DataFrame | None) -> None:
        self._wait()
        self._pending = self._pool.submit(self._write, frame, rejects)

    def _write(self, frame: pd.DataFrame | None, rejects: pd.DataFrame | None) -> None:
        with self._timer("stage"):
            if frame is not None:
                self._session.stage_rows(frame, self._columns)
            if rejects is not None:
                self._session.stage_rejects(rejects)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self._wait()
            elif self._pending is not None:
                # The caller's error is the one that matters; the in-flight write only has to be finished.
                with contextlib.suppress(BaseException):
                    self._pending.result()
                self._pending = None
        finally:
            self._pool.shutdown(wait=True)
