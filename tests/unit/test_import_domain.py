"""tools/commands/import_model.py: the config's ``domain`` and the training range written per feature.

No TensorFlow here: the config is parsed and the features' metadata computed from rows; the end-to-end import
(SavedModel -> metadata.json) is in tests/model/test_import_model.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from scoring.metadata import Feature
from tools.commands import import_model
from tools.commands.import_model import ModelImportError, TrainingRows, feature_metadata, parse_config

FEATURES = ["mean radius", "mean area", "ratio"]
ROWS = np.array([[10.0, 100.0, 0.0], [20.0, 1100.0, 1.0], [15.0, 600.0, 0.5]])


def config(**changes: Any) -> import_model.ImportConfig:
    return parse_config({"features": FEATURES, **changes})


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        (None, [(None, None)] * 3),
        ({"all": {"min": 0}}, [(0.0, None)] * 3),
        (
            {"all": {"min": 0}, "features": {"ratio": {"max": 1}, "mean area": {"min": 50, "max": 1e6}}},
            [(0.0, None), (50.0, 1e6), (0.0, 1.0)],
        ),
        ({"features": {"ratio": {"min": -1, "max": 1}}}, [(None, None), (None, None), (-1.0, 1.0)]),
    ],
    ids=["none", "all", "all-and-per-feature", "per-feature-only"],
)
def test_the_domain_is_given_for_all_features_or_per_feature(
    domain: dict[str, Any] | None, expected: list[tuple[float | None, float | None]]
) -> None:
    """Given a config with no domain, one for all features, one per feature (whose bounds win over all's)
    When each feature's metadata is written
    Then its domain holds the merged bounds, and the metadata model reads it back."""
    features = feature_metadata(config(domain=domain), None)

    assert [(f["domain"]["min"], f["domain"]["max"]) for f in features] == expected
    assert all("training_range" not in f for f in features)
    assert [Feature.model_validate(f).domain.min for f in features] == [e[0] for e in expected]


@pytest.mark.parametrize(
    ("domain", "message"),
    [
        ({"features": {"radius": {"min": 0}}}, "domain.features names ['radius'], which are not among the features"),
        ({"all": {"min": 0}, "features": {"ratio": {"max": 0}}}, "domain of 'ratio': min 0.0 must be below max 0.0"),
        ({"all": {"min": 2, "max": 1}}, "domain min 2.0 must be below its max 1.0"),
        ({"all": {"minimum": 0}}, "domain.all.minimum: Extra inputs are not permitted"),
        ({"every": {"min": 0}}, "domain.every: Extra inputs are not permitted"),
    ],
    ids=["unknown-feature", "merged-bounds-cross", "all-crossed", "misspelt-bound", "misspelt-key"],
)
def test_a_bad_domain_is_refused(domain: dict[str, Any], message: str) -> None:
    """Given a config whose domain names an unknown feature, crosses its bounds or misspells a key
    When it is parsed
    Then the import refuses it, saying what is wrong."""
    with pytest.raises(ModelImportError, match="config is invalid") as excinfo:
        config(domain=domain)

    assert message in str(excinfo.value)


def test_the_training_range_is_the_training_rows_min_max_and_percentiles() -> None:
    """Given 201 training rows of 0, 1, ..., 200 in every feature
    When the features' metadata is written
    Then each training range is min 0, max 200, 0.5th percentile 1 and 99.5th 199 (numpy's linear percentiles)."""
    values = np.repeat(np.arange(201.0)[:, None], 3, axis=1)

    features = feature_metadata(config(domain={"all": {"min": 0}}), TrainingRows(values, "test rows"))

    assert [f["training_range"] for f in features] == [{"min": 0.0, "max": 200.0, "p0_5": 1.0, "p99_5": 199.0}] * 3


@pytest.mark.parametrize(
    ("domain", "message"),
    [
        ({"all": {"min": 0}, "features": {"mean area": {"min": 200}}}, "'mean area' below the domain min 200"),
        ({"features": {"ratio": {"max": 0.5}}}, "1 of the training rows (test rows) have 'ratio' above the domain max"),
    ],
)
def test_training_rows_outside_the_domain_are_refused(domain: dict[str, Any], message: str) -> None:
    """Given training rows with a mean area of 100 (or a ratio of 1) and a domain that excludes it
    When the features' metadata is written
    Then the import is refused: the domain, or the data, is wrong."""
    with pytest.raises(ModelImportError, match="the domain, or the data, is wrong") as excinfo:
        feature_metadata(config(domain=domain), TrainingRows(ROWS, "test rows"))

    assert message in str(excinfo.value)


def test_the_training_rows_are_given_else_the_reference_else_the_fit_rows() -> None:
    """Given the rows model/train.py trained on, reference_csv rows and standardize.fit_csv rows
    When the training data is chosen
    Then it is the given rows, else the reference rows, else the fit rows, else none (nothing will be flagged)."""
    given = TrainingRows(ROWS, "the training split")
    reference = import_model.Rows(ROWS[:2])
    fit = import_model.Rows(ROWS[1:])
    both = config(reference_csv="data/breast_cancer.csv", standardize={"fit_csv": "data/breast_cancer.csv"})
    fit_only = config(standardize={"fit_csv": "data/breast_cancer.csv"})

    assert import_model.training_rows(given, reference, fit, both) is given
    chosen = import_model.training_rows(None, reference, fit, both)
    assert chosen is not None and chosen.source == "reference_csv data/breast_cancer.csv"
    assert chosen.values is reference.values
    chosen = import_model.training_rows(None, None, fit, fit_only)
    assert chosen is not None and chosen.source == "standardize.fit_csv data/breast_cancer.csv"
    assert import_model.training_rows(None, None, None, config()) is None


def test_generated_check_rows_stay_inside_the_domain() -> None:
    """Given generated check rows' bounds of mean +/- 2 scale that reach below 0 and a domain of >= 0
    When they are clipped to the domain
    Then the low bounds are 0 and the rest is unchanged."""
    low, high = np.array([-3.0, 5.0, -1.0]), np.array([7.0, 9.0, 4.0])

    clipped = import_model.clip_to_domain(
        config(domain={"all": {"min": 0}, "features": {"ratio": {"max": 1}}}), low, high
    )

    assert clipped[0].tolist() == [0.0, 5.0, 0.0]
    assert clipped[1].tolist() == [7.0, 9.0, 1.0]
