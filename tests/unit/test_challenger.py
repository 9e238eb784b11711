"""pipeline.challenger: which of the champion's features the challenger reads, how agreement is counted, and that a
failing challenger only ever loses its own scores."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from pipeline.challenger import Challenger, Shadow
from scoring import Scores

CHAMPION = SimpleNamespace(feature_names=["a", "b", "c"])


class FakeScorer:
    """Scores a row by its first column; records what it was given."""

    def __init__(self, features: list[str], version: str = "challenger-1") -> None:
        self.metadata = SimpleNamespace(feature_names=features)
        self.model_version = version
        self.seen: list[np.ndarray] = []

    def score_checked(self, batch: np.ndarray) -> Scores:
        self.seen.append(batch)
        p = batch[:, 0].astype(np.float32)
        c = (p >= 0.5).astype(np.int8)
        return Scores(p, c)


def scores(p: list[float]) -> Scores:
    probability = np.array(p, dtype=np.float32)
    classification = np.where(np.isfinite(probability), probability >= 0.5, -1).astype(np.int8)
    return Scores(probability, classification)


def test_a_challenger_reads_its_own_features_from_the_champions_batch_by_name() -> None:
    # Given a challenger reading c then a, of a champion reading a, b, c
    scorer = FakeScorer(["c", "a"])
    challenger = Challenger(scorer, CHAMPION)  # type: ignore[arg-type]
    # When it is handed the champion's batch
    batch = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32)
    challenger.submit(batch).result()
    # Then it scored columns c and a, in its own order
    assert scorer.seen[0].tolist() == [[3.0, 1.0], [6.0, 4.0]]


def test_a_challenger_needing_a_feature_the_champion_does_not_read_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\['d'\]"):
        Challenger(FakeScorer(["a", "d"]), CHAMPION)  # type: ignore[arg-type]


def test_agreement_counts_the_rows_both_scored_and_the_champion_kept() -> None:
    # Given a challenger answering 0.9, 0.1, NaN, 0.8 for four rows, and a champion that kept rows 0, 2, 3
    shadow = Shadow(Challenger(FakeScorer(["a"]), CHAMPION))  # type: ignore[arg-type]
    pending = shadow.submit(np.array([[0.9, 0, 0], [0.1, 0, 0], [np.nan, 0, 0], [0.8, 0, 0]], dtype=np.float32))
    champion = scores([0.95, 0.7, 0.2])  # rows 0, 2, 3: malignant, malignant, benign
    kept = np.array([True, False, True, True])
    # When collected
    mine = shadow.collect(pending, champion, kept)
    # Then the challenger's scores are the kept rows'; the NaN row is not compared; row 3 disagrees
    assert mine is not None and len(mine) == 3
    assert (shadow.compared, shadow.agreed) == (2, 1)
    assert shadow.columns() == {"CHALLENGER_MODEL_VERSION": "challenger-1", "CHALLENGER_AGREEMENT": 0.5}


def test_a_failure_leaves_the_challenger_out_for_the_rest_of_the_file() -> None:
    # Given a challenger whose scoring raises
    broken: Any = FakeScorer(["a"])
    broken.score_checked = lambda batch: (_ for _ in ()).throw(RuntimeError("interpreter failed on value 12.5"))
    shadow = Shadow(Challenger(broken, CHAMPION))  # type: ignore[arg-type]
    batch = np.ones((2, 3), dtype=np.float32)
    # When a chunk is collected, and another submitted
    assert shadow.collect(shadow.submit(batch), scores([0.9, 0.9]), np.array([True, True])) is None
    # Then it is left out (nothing more is submitted), its failure named by type only, no agreement
    assert shadow.submit(batch) is None
    assert shadow.failure is not None and "RuntimeError" in shadow.failure and "12.5" not in shadow.failure
    assert shadow.columns()["CHALLENGER_AGREEMENT"] is None
