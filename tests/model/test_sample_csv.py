"""The committed sample input, data/breast_cancer.csv: the 569 rows as a hospital export, every value text."""

from __future__ import annotations

import csv

import numpy as np

from scoring import ModelMetadata, Scorer
from tests.model.conftest import N_ROWS, SAMPLE_CSV, Dataset


def _read_sample() -> tuple[list[str], list[list[str]]]:
    with SAMPLE_CSV.open(newline="", encoding="utf-8") as fh:
        header, *rows = list(csv.reader(fh))
    return header, rows


def test_header_is_sample_id_then_features_in_model_order(metadata: ModelMetadata, dataset: Dataset) -> None:
    """Given the sample CSV
    When its header is read
    Then it is `sample_id` followed by scikit-learn's feature names, in the model's input order."""
    header, _ = _read_sample()

    assert header == ["sample_id", *metadata.feature_names]
    assert metadata.feature_names == dataset.feature_names


def test_values_are_the_data_set_exactly(dataset: Dataset) -> None:
    """Given the sample CSV
    When its text values are parsed as float64
    Then there are 569 rows with distinct sample ids, equal bit for bit to scikit-learn's data."""
    _, rows = _read_sample()

    ids = [row[0] for row in rows]
    values = np.array([[float(v) for v in row[1:]] for row in rows], dtype=np.float64)

    assert len(rows) == N_ROWS
    assert len(set(ids)) == N_ROWS
    np.testing.assert_array_equal(values, dataset.x)


def test_scoring_the_csv_equals_scoring_the_data_set(scorer: Scorer, dataset: Dataset) -> None:
    """Given the sample CSV parsed from text
    When it is scored
    Then the scores are those of scikit-learn's arrays (what the model tests measure is what the pipeline sees)."""
    _, rows = _read_sample()
    values = np.array([[float(v) for v in row[1:]] for row in rows], dtype=np.float64)

    from_csv = scorer.score(values)
    from_sklearn = scorer.score(dataset.x)

    np.testing.assert_array_equal(from_csv.malignant_probability, from_sklearn.malignant_probability)
    np.testing.assert_array_equal(from_csv.label, from_sklearn.label)


LABELLED_CSV = SAMPLE_CSV.with_name("breast_cancer_labelled.csv")


def test_the_labelled_sample_is_the_sample_with_the_truth_beside_it(dataset: Dataset) -> None:
    """Given data/breast_cancer_labelled.csv, shipped beside the sample for checking a model's accuracy
    When it is read
    Then it is the sample's header and lines as they are, plus a `diagnosis` column that is scikit-learn's truth
    (`malignant` where its target is 0), so the import docs' `label_column` example reads it as written."""
    header, rows = _read_sample()
    with LABELLED_CSV.open(newline="", encoding="utf-8") as fh:
        labelled_header, *labelled = list(csv.reader(fh))

    assert labelled_header == [*header, "diagnosis"]
    assert [row[:-1] for row in labelled] == rows
    assert [row[-1] for row in labelled] == list(dataset.truth_labels)
