"""monitoring/: the drift verdict and the label-free accuracy estimate of one file, against a reference profile.

Synthetic references (seeded numpy draws, no model trained here): the assertions are about behaviour with wide
statistical margins (a false-alarm rate far below a bound, a gross error always caught), never about digits.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from monitoring.accuracy import AccuracyEstimate, fit_calibration
from monitoring.drift import FALSE_ALARM_RATE, kolmogorov_quantile, ks_threshold
from monitoring.monitor import FileMonitor, LoadMonitoring, SystematicSample
from monitoring.profile import MAX_POINTS, build_profile, feature_reference
from scoring.metadata import ModelMetadata

K = 8  # features
COLUMNS = [f"F{j}" for j in range(K)]


def reference(rng: np.random.Generator, m: int = 500) -> np.ndarray:
    """Positive, skewed, correlated measurements, like tumour sizes."""
    base = rng.lognormal(mean=2.5, sigma=0.3, size=(m, 1))
    return base * rng.lognormal(mean=0.0, sigma=0.2, size=(m, K))


def monitor_file(profile, values: np.ndarray, probability=None, malignant=None) -> LoadMonitoring:  # type: ignore[no-untyped-def]
    n = values.shape[0]
    probability = np.full(n, 0.1, np.float32) if probability is None else probability
    classification = np.zeros(n, np.int8) if malignant is None else malignant.astype(np.int8)
    monitor = FileMonitor(profile, COLUMNS)
    monitor.add(values, probability, classification)
    return monitor.result()


@pytest.mark.parametrize("rows", [20, 50, 200, 1000])
def test_files_drawn_from_the_reference_distribution_rarely_alarm(rows: int) -> None:
    # Given a profile of 500 reference rows, and 400 files drawn from the same distribution
    rng = np.random.default_rng(rows)
    profile = build_profile(reference(rng), "synthetic", np.zeros(500, bool), None)
    # When each is monitored
    alarms = sum(bool(monitor_file(profile, reference(rng, rows)).drift_detected) for _ in range(400))
    # Then the alarms stay far below 4 % (the design rate is at most 1 %: 4 of 400 expected at worst)
    assert alarms <= 16, f"{alarms} of 400 files from the reference distribution alarmed"


def test_a_unit_error_in_one_feature_is_detected_and_named() -> None:
    # Given a profile, and 200-row files from the reference distribution with feature F3 divided by 10
    rng = np.random.default_rng(7)
    profile = build_profile(reference(rng), "synthetic", np.zeros(500, bool), None)
    for _ in range(50):
        values = reference(rng, 200)
        values[:, 3] /= 10
        # When monitored
        result = monitor_file(profile, values)
        # Then drift is detected, F3 is named, and its score passes 1
        assert result.drift_detected is True
        assert result.drifted_features is not None and "F3" in result.drifted_features.split(",")
        assert result.drift_score is not None and result.drift_score > 1
        detail = result.detail["features"]["F3"]
        assert detail["drifted"] is True and 0.05 < detail["median_ratio"] < 0.2


def test_the_threshold_falls_with_the_files_rows_and_is_bounded_by_the_references() -> None:
    # Given a reference of 500 rows / When the threshold is computed for more and more rows
    thresholds = [ks_threshold(n, 500, FALSE_ALARM_RATE / 30) for n in (20, 200, 2000, 200_000)]
    # Then it falls, but never below what the reference's own size allows
    assert thresholds == sorted(thresholds, reverse=True)
    assert thresholds[-1] > kolmogorov_quantile(FALSE_ALARM_RATE / 30) / (500**0.5 + 1)
    # And the Kolmogorov quantile matches the textbook value at 5 % (1.358)
    assert kolmogorov_quantile(0.05) == pytest.approx(1.358, abs=1e-3)


def test_the_sample_of_a_long_file_is_bounded_and_spread_evenly() -> None:
    # Given a sample capped at 100 rows / When 1,000 rows arrive in blocks of odd sizes
    sample = SystematicSample(cap=100)
    rows = np.arange(1000, dtype=np.float64).reshape(-1, 1)
    for start, stop in [(0, 7), (7, 333), (333, 334), (334, 1000)]:
        sample.add(rows[start:stop])
    kept = sample.rows()[:, 0]
    # Then between cap/2 and cap rows are kept, every stride-th row from the first
    assert 50 <= kept.size <= 100
    assert np.array_equal(kept, np.arange(0, 1000, sample.stride, dtype=np.float64))


def test_a_short_file_is_tested_on_every_row() -> None:
    sample = SystematicSample(cap=100)
    sample.add(np.arange(60, dtype=np.float64).reshape(-1, 2))
    assert sample.rows().shape == (30, 2) and sample.stride == 1


def test_the_reference_distribution_is_exact_for_a_small_reference_and_percentiles_for_a_large_one() -> None:
    # Given a small reference with ties, and a large one
    small = feature_reference(np.array([3.0, 1.0, 2.0, 2.0]))
    large = feature_reference(np.random.default_rng(1).normal(size=10_000))
    # Then the small one keeps every distinct value with its exact cdf
    assert small.points == [1.0, 2.0, 3.0] and small.cdf == [0.25, 0.75, 1.0]
    # And the large one at most MAX_POINTS points, its min and max included, ending at cdf 1
    assert len(large.points) <= MAX_POINTS and large.cdf[-1] == 1.0
    assert large.points[0] == pytest.approx(min(large.points))


def test_the_accuracy_estimate_follows_the_truth_on_files_of_easy_and_hard_rows() -> None:
    # Given a calibrated model (P(malignant) = p exactly) calibrated on 2,000 labelled rows
    rng = np.random.default_rng(11)
    p = rng.uniform(0.01, 0.99, 2000)
    truth = rng.uniform(size=2000) < p
    calibration = fit_calibration(p, truth, "synthetic")

    def estimate(file_p: np.ndarray) -> tuple[float, float, float, float]:
        y = rng.uniform(size=file_p.size) < file_p
        called = file_p >= 0.5
        accuracy = AccuracyEstimate(calibration)
        accuracy.add(file_p[: file_p.size // 2], called[: file_p.size // 2])  # two chunks
        accuracy.add(file_p[file_p.size // 2 :], called[file_p.size // 2 :])
        result = accuracy.result()
        assert result is not None
        return (*result, float(np.mean(called == y)))

    # When files of 300 rows the model finds easy (p near 0 or 1) and hard (p near 0.5) are estimated
    easy = estimate(np.concatenate([rng.uniform(0.01, 0.1, 150), rng.uniform(0.9, 0.99, 150)]))
    hard = estimate(rng.uniform(0.35, 0.65, 300))
    # Then each estimate lies within 0.08 of the truth, its interval around it, and easy ranks above hard
    for est, low, high, true in (easy, hard):
        assert abs(est - true) < 0.08 and low <= est <= high
    assert easy[0] > hard[0] + 0.2


def test_a_model_imported_without_labels_gets_drift_only_and_says_so() -> None:
    rng = np.random.default_rng(3)
    profile = build_profile(reference(rng), "synthetic", np.zeros(500, bool), None)
    result = monitor_file(profile, reference(rng, 100))
    assert result.drift_detected is not None
    assert result.estimated_accuracy is None and result.estimated_accuracy_low is None
    assert "labelled" in result.detail["accuracy_not_estimated"]
    assert result.predicted_malignant_share == 0.0 and result.reference_malignant_share == 0.0


def test_without_a_profile_or_without_rows_nothing_is_tested() -> None:
    # Given no profile: only the predicted share is known
    monitor = FileMonitor(None, COLUMNS)
    monitor.add(np.ones((4, K)), np.array([0.9, 0.9, 0.1, 0.1], np.float32), np.array([1, 1, 0, 0], np.int8))
    result = monitor.result()
    assert result.drift_detected is None and result.estimated_accuracy is None
    assert result.predicted_malignant_share == 0.5 and "reference profile" in result.detail["not_tested"]
    # And a file of no scored rows: every verdict NULL, ROWS_SCORED 0
    empty = FileMonitor(None, COLUMNS).result().columns()
    assert empty["ROWS_SCORED"] == 0 and empty["DRIFT_DETECTED"] is None
    assert json.loads(empty["DRIFT_DETAIL"])["not_tested"]


def test_monitoring_columns_are_the_tables() -> None:
    from pipeline.ports import MONITORING_COLUMNS

    values = monitor_file(None, np.ones((3, K))).columns()
    lineage = {"LOAD_ID", "SOURCE_BUCKET", "SOURCE_KEY", "SOURCE_VERSION", "MODEL_VERSION", "MONITORED_AT"}
    challenger = {"CHALLENGER_MODEL_VERSION", "CHALLENGER_AGREEMENT"}  # the pipeline's shadow fills them
    assert set(values) | lineage | challenger == {name for name, _ in MONITORING_COLUMNS}


def test_metadata_with_a_profile_of_other_features_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pathlib import Path

    from scoring import ModelLoadError

    model = json.loads((Path(__file__).resolve().parents[2] / "model" / "metadata.json").read_text())
    model["monitoring"]["features"] = model["monitoring"]["features"][:-1]
    (tmp_path / "metadata.json").write_text(json.dumps(model))
    with pytest.raises(ModelLoadError, match="feature references"):
        ModelMetadata.load(tmp_path / "metadata.json")
