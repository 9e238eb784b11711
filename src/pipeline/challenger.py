"""A challenger in shadow: a second imported model scores the same rows in the same invocation; the champion alone
decides.

Each row the champion scores gets the challenger's ``CHALLENGER_PROBABILITY`` and ``CHALLENGER_CLASSIFICATION``
next to the champion's, with ``CHALLENGER_MODEL_VERSION``; ``CLASSIFICATION`` and ``CONDITION`` stay the
champion's. Per load, the share of rows on which the two agree goes to the monitoring table
(``CHALLENGER_AGREEMENT``) and to the ``ChallengerAgreement`` metric.

The challenger scores on a thread of its own while the champion scores the same batch (LiteRT releases the GIL
while it runs), so its cost is mostly hidden behind the champion's (benchmarks/challenger_cost.py measures it).
It does not scan the champion's batch again, and no label strings are built for a batch (``Scores.label`` is
derived on use): both held the GIL long enough to undo most of what the thread hides.
It never costs the champion's rows: a challenger that cannot be loaded is left out at init (logged); one that
fails on a chunk is left out for the rest of the file, whose rows load with its columns NULL and whose monitoring
row says why (by the error's type, never its text: it might quote a measurement).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.observability import logger
from scoring import ModelLoadError, ModelMetadata, Scorer, Scores

CHALLENGER_COLUMNS: dict[str, str] = {
    "CHALLENGER_PROBABILITY": "FLOAT",
    "CHALLENGER_CLASSIFICATION": "NUMBER(1,0)",
    "CHALLENGER_MODEL_VERSION": "VARCHAR(128)",
}


def load_challenger(model_dir: Path | None, champion: Scorer) -> Challenger | None:
    """The challenger in ``model_dir`` (CHALLENGER_MODEL_DIR), else the one the build shipped, else None. One that
    cannot be loaded is logged and left out: the champion scores alone, its rows never wait on the challenger."""
    model_dir = model_dir or default_challenger_dir()
    if model_dir is None:
        return None
    try:
        return Challenger(Scorer.load(model_dir), champion.metadata)
    except (ModelLoadError, ValueError, OSError) as exc:
        logger.error(
            "the challenger model cannot be loaded; the champion scores alone",
            extra={"challenger_model_dir": str(model_dir), "error": f"{type(exc).__name__}: {exc}"},
        )
        return None


def default_challenger_dir() -> Path | None:
    """Where the build put a challenger (``challenger/`` next to the packages), if it did."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "challenger", here.parent.parent / "challenger"):
        if (candidate / "metadata.json").is_file():
            return candidate
    return None


class Challenger:
    """A second model, fed the champion's feature batches (its own features picked from them by name)."""

    def __init__(self, scorer: Scorer, champion: ModelMetadata) -> None:
        names = champion.feature_names
        missing = [name for name in scorer.metadata.feature_names if name not in names]
        if missing:
            raise ValueError(
                f"the challenger needs features the champion does not read: {missing}; a challenger scores the "
                "champion's rows, so its features must be among the champion's"
            )
        columns = [names.index(name) for name in scorer.metadata.feature_names]
        self._columns: list[int] | None = None if columns == list(range(len(names))) else columns
        self.scorer = scorer
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="challenger")

    @property
    def model_version(self) -> str:
        return self.scorer.model_version

    def submit(self, batch: npt.NDArray[np.float32]) -> Future[Scores]:
        """Start scoring the champion's batch [n, champion features] on the challenger's thread.

        The batch is not scanned again (``Scorer.score_checked``): its scores are read only once the champion's
        own scoring has validated the same batch (``Shadow.collect`` after the champion's ``score``)."""
        features = batch if self._columns is None else np.ascontiguousarray(batch[:, self._columns])
        return self._executor.submit(self.scorer.score_checked, features)


@dataclass
class Shadow:
    """One file's challenger: its scores chunk by chunk, and how often it agreed with the champion."""

    challenger: Challenger
    compared: int = 0  # rows both scored
    agreed: int = 0
    failure: str | None = None

    def submit(self, batch: npt.NDArray[np.float32]) -> Future[Scores] | None:
        if self.failure is not None:
            return None
        try:
            return self.challenger.submit(batch)
        except Exception as exc:  # never the champion's problem (module docstring)
            self.failure = _failure(exc)
            return None

    def collect(self, pending: Future[Scores] | None, champion: Scores, kept: npt.NDArray[np.bool_]) -> Scores | None:
        """The challenger's scores of the rows the champion kept (``kept``, over the submitted batch), or None.

        Call only after the champion scored the same batch: that validated it (``Challenger.submit``)."""
        if pending is None:
            return None
        try:
            scores = pending.result()
            if len(scores) != kept.shape[0]:
                raise ValueError(f"{len(scores)} challenger scores for {kept.shape[0]} rows")
            scores = scores.only(kept)
        except Exception as exc:  # never the champion's problem (module docstring)
            self.failure = _failure(exc)
            return None
        both = scores.scored
        self.compared += int(np.count_nonzero(both))
        self.agreed += int(np.count_nonzero(both & (scores.classification == champion.classification)))
        return scores

    @property
    def agreement(self) -> float | None:
        """The share of rows both scored that the challenger labelled as the champion did (None: none, or it failed)."""
        return (self.agreed / self.compared) if self.compared and self.failure is None else None

    def columns(self) -> dict[str, Any]:
        """The load's challenger columns of the monitoring table."""
        return {"CHALLENGER_MODEL_VERSION": self.challenger.model_version, "CHALLENGER_AGREEMENT": self.agreement}


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__} in the challenger; the champion's rows loaded without its scores"
