"""The project's model's valid domain and training range (metadata.json), against its data.

The domain says every measurement is >= 0; the training range is the min, max and 0.5th / 99.5th percentiles of
the rows model/train.py trained on. With the default OUT_OF_RANGE_MARGIN, the sample export (all 569 real rows,
the 114 held-out ones included) and any row drawn from the data are never flagged.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipeline.csv_reader import CsvChunks
from pipeline.features import ConvertedFeatures, convert_features
from pipeline.plausibility import PlausibilityCheck
from pipeline.settings import DEFAULT_OUT_OF_RANGE_MARGIN, OutOfRange
from scoring import ModelMetadata
from tests.model.conftest import SAMPLE_CSV, Dataset
from tools.make_files import make_file


def _check(metadata: ModelMetadata) -> PlausibilityCheck:
    return PlausibilityCheck(
        metadata, [f.column for f in metadata.features], OutOfRange.FLAG, DEFAULT_OUT_OF_RANGE_MARGIN
    )


def _flagged_and_rejected(metadata: ModelMetadata, data: bytes) -> tuple[int, int, int]:
    """(rows, flagged, rejected) of a CSV read and converted as the function does, then checked."""
    chunks = CsvChunks(
        io.BytesIO(data), required=metadata.feature_names, chunk_rows=100_000, max_uncompressed_bytes=1 << 30
    )
    rows = flagged = rejected = 0
    for chunk in chunks:
        converted = convert_features(chunk.table, metadata.feature_names, decimal_mark=chunks.decimal_mark)
        assert converted.all_ok
        checked = _check(metadata).check(converted)
        rows += chunk.num_rows
        flagged += checked.rows_flagged
        rejected += len(checked.converted.problems)
    return rows, flagged, rejected


def test_the_committed_ranges_are_the_training_rows(metadata: ModelMetadata, dataset: Dataset) -> None:
    """Given the committed metadata and the split model/train.py trained on (everything but held_out_indices)
    When each feature's domain and training range are compared with the training rows
    Then the domain is >= 0 (no upper bound), and min, max and the 0.5th / 99.5th percentiles are those rows'."""
    training = np.delete(dataset.x, metadata.held_out_indices, axis=0)
    assert training.shape == (455, 30)

    for j, feature in enumerate(metadata.features):
        assert (feature.domain.min, feature.domain.max) == (0.0, None), feature.name
        assert feature.training_range is not None
        seen = feature.training_range
        assert (seen.min, seen.max) == (training[:, j].min(), training[:, j].max()), feature.name
        assert (seen.p0_5, seen.p99_5) == tuple(np.percentile(training[:, j], [0.5, 99.5])), feature.name
    assert (metadata.model_extra or {})["training_data"]["rows"] == 455


def test_the_sample_export_produces_no_flag(metadata: ModelMetadata) -> None:
    """Given data/breast_cancer.csv, the 569 real rows (114 of them never trained on)
    When it is read, converted and checked as the function does, with the default margin
    Then no row is flagged or rejected."""
    assert _flagged_and_rejected(metadata, SAMPLE_CSV.read_bytes()) == (569, 0, 0)


def test_the_benchmark_files_produce_no_flag(metadata: ModelMetadata, tmp_path: Path) -> None:
    """Given 20,000 rows as tools/make_files.py makes them (real rows resampled, with 5 % jitter)
    When they are checked with the default margin
    Then no row is flagged or rejected."""
    path = make_file(20_000, tmp_path / "rows.csv", seed=11)

    assert _flagged_and_rejected(metadata, path.read_bytes()) == (20_000, 0, 0)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_no_row_drawn_from_the_data_is_flagged(metadata: ModelMetadata, dataset: Dataset, data: st.DataObject) -> None:
    """Given rows drawn from the 569 real rows, each feature of each row taken from any real row (so new
    combinations of real values)
    When they are checked with the default margin
    Then none is flagged or rejected."""
    n = data.draw(st.integers(min_value=1, max_value=64))
    picks = data.draw(arrays(np.int64, (n, 30), elements=st.integers(min_value=0, max_value=568)))
    values = np.asfortranarray(np.take_along_axis(dataset.x, picks, axis=0))
    converted = ConvertedFeatures(values=values, ok=np.ones(n, bool), blank=np.zeros(n, bool), problems=[])

    checked = _check(metadata).check(converted)

    assert checked.rows_flagged == 0
    assert checked.converted.problems == []
