"""Batch invariance: a row's score does not depend on the batch it is in, its position, or the chunking.

Measured with LiteRT's XNNPACK delegate on this project's CPU: scores are bit-identical for every batch size,
position, max_batch_rows and thread count tried, so the tests compare exactly. If another CPU ever breaks this,
the honest fallback bound is 1e-6 (probabilities are float32, ~6e-8 ulp near 0.5) — not silence.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from scoring import Scorer, Scores
from tests.model.conftest import MODEL_DIR, N_ROWS, Dataset


def _assert_same_scores(actual: Scores, expected: Scores) -> None:
    np.testing.assert_array_equal(actual.malignant_probability, expected.malignant_probability)
    np.testing.assert_array_equal(actual.classification, expected.classification)
    np.testing.assert_array_equal(actual.label, expected.label)


def _concat(parts: list[Scores]) -> Scores:
    return Scores(
        np.concatenate([p.malignant_probability for p in parts]),
        np.concatenate([p.classification for p in parts]),
        parts[0].names,
    )


@pytest.fixture(scope="module")
def alone(scorer: Scorer, dataset: Dataset) -> Scores:
    """Each of the 569 rows scored on its own, in a batch of one: the reference for every other arrangement."""
    return _concat([scorer.score(dataset.x[i : i + 1]) for i in range(N_ROWS)])


@pytest.mark.parametrize("batch_size", [2, 3, 7, 32, 100, 284, 568, N_ROWS])
def test_score_is_independent_of_batch_size(batch_size: int, scorer: Scorer, dataset: Dataset, alone: Scores) -> None:
    """Given the 569 rows cut into consecutive batches of one size (the last one shorter)
    When each batch is scored
    Then every row's probability, class and label equal those of the row scored alone."""
    parts = [scorer.score(dataset.x[i : i + batch_size]) for i in range(0, N_ROWS, batch_size)]

    _assert_same_scores(_concat(parts), alone)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_score_is_independent_of_position(seed: int, scorer: Scorer, dataset: Dataset, alone: Scores) -> None:
    """Given the 569 rows shuffled into a random order
    When the shuffled batch is scored
    Then each row's scores equal those of the row scored alone."""
    order = np.random.default_rng(seed).permutation(N_ROWS)

    shuffled = scorer.score(dataset.x[order])

    _assert_same_scores(shuffled, Scores(alone.malignant_probability[order], alone.classification[order], alone.names))


def test_score_is_independent_of_neighbours(scorer: Scorer, dataset: Dataset, alone: Scores) -> None:
    """Given one row placed first, in the middle and last of a batch of other rows, and repeated
    When the batch is scored
    Then every copy of the row scores as the row alone."""
    row = 123
    others = dataset.x[np.arange(N_ROWS) != row][:99]
    batch = np.vstack(
        [dataset.x[row : row + 1], others[:50], dataset.x[row : row + 1], others[50:], dataset.x[row : row + 1]]
    )
    positions: npt.NDArray[np.intp] = np.array([0, 51, batch.shape[0] - 1])

    scores = scorer.score(batch)

    np.testing.assert_array_equal(
        scores.malignant_probability[positions], np.repeat(alone.malignant_probability[row], 3)
    )


@pytest.mark.parametrize("max_batch_rows", [1, 7, 64, 568, N_ROWS, 10_000])
def test_score_is_independent_of_chunking(max_batch_rows: int, dataset: Dataset, alone: Scores) -> None:
    """Given a scorer that cuts batches into chunks of max_batch_rows (7 leaves a short last chunk of 2)
    When all 569 rows are scored in one call
    Then every row's scores equal those of the row scored alone."""
    chunked = Scorer.load(MODEL_DIR, max_batch_rows=max_batch_rows)

    _assert_same_scores(chunked.score(dataset.x), alone)


@pytest.mark.parametrize("num_threads", [1, 2, 4])
def test_score_is_independent_of_thread_count(num_threads: int, dataset: Dataset, alone: Scores) -> None:
    """Given a scorer with a given interpreter thread count
    When all 569 rows are scored in one call
    Then every row's scores equal those of the row scored alone (on the default scorer)."""
    threaded = Scorer.load(MODEL_DIR, num_threads=num_threads)

    _assert_same_scores(threaded.score(dataset.x), alone)


def test_rescoring_after_other_batch_sizes_is_stable(scorer: Scorer, dataset: Dataset) -> None:
    """Given a scorer that has scored the full set, then a batch of 1 and of 7 (input resized each time)
    When the full set is scored again
    Then the result is identical to the first time (no state leaks from earlier resizes)."""
    first = scorer.score(dataset.x)
    scorer.score(dataset.x[:1])
    scorer.score(dataset.x[:7])

    _assert_same_scores(scorer.score(dataset.x), first)
