"""benchmarks/bench_monitoring.py, part 4: the label-free accuracy estimate of a deliberately weak model under covariate
shift, where the truth varies from file to file.

The model: scikit-learn's LogisticRegression on three weak features (``WEAK_FEATURES``; true accuracy near 0.8),
fitted on a stratified half of the 569 labelled rows (half A), whose labels also calibrate the estimate, as an
import's ``reference_csv`` + ``label_column`` would. The files: 300 rows drawn from the other half (half B),
mixing rows the model finds hard (|p - 0.5| below half B's median) and easy ones in fixed shares, so that only the
mix of patients changes (a covariate shift) and the true accuracy runs from about 0.65 to 0.95.

Two ways to the profile: ``build_profile`` directly (every split), and, for one split, the real import
(``tools.commands.import_model.import_model`` on a SavedModel computing sigmoid(x @ w + b), a labelled CSV of half A
as its ``reference_csv``), whose .tflite then scores the files and whose metadata's profile monitors them.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.monitoring_stats import LABELLED, Data, Estimates, Floats, Indices, monitor_file
from monitoring.accuracy import AccuracyEstimate, fit_calibration
from monitoring.profile import build_profile
from pipeline.output import default_column_name
from scoring.metadata import MonitoringProfile

WEAK_FEATURES = ("mean texture", "worst smoothness", "worst symmetry")
HARD_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)  # of a file's rows drawn from the hard pool (|p - 0.5| below the median)
FILE_ROWS = 300


@dataclass(frozen=True)
class WeakModel:
    """sigmoid(x @ w + b) on three weak features: LogisticRegression on standardised features, the
    standardisation folded into w and b (so that the same arithmetic can be a SavedModel)."""

    w: npt.NDArray[np.float32]
    b: float

    def probability(self, x: Floats) -> npt.NDArray[np.float32]:
        z = x.astype(np.float32) @ self.w + np.float32(self.b)
        p: npt.NDArray[np.float32] = (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
        return p


def fit_weak_model(x: Floats, malignant: npt.NDArray[np.bool_]) -> WeakModel:
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    fitted = LogisticRegression().fit((x - mean) / scale, malignant.astype(int))
    coef = fitted.coef_[0] / scale
    return WeakModel(coef.astype(np.float32), float(fitted.intercept_[0] - np.sum(coef * mean)))


def weak_split(data: Data, split: int, seed: int) -> tuple[Indices, Indices]:
    """A stratified half (the labelled rows the model is fitted and calibrated on) and the other half (the files)."""
    from sklearn.model_selection import train_test_split

    half_a, half_b = train_test_split(
        np.arange(len(data.x)), test_size=0.5, stratify=data.malignant.astype(int), random_state=seed + split
    )
    return np.sort(half_a), np.sort(half_b)


def kind_names() -> list[str]:
    return [f"{share:.0%} hard rows" + (" (half B as it is)" if share == 0.5 else "") for share in HARD_SHARES]


Imported = tuple[MonitoringProfile, Callable[[Floats], npt.NDArray[np.float32]]]


def run_split(
    data: Data,
    split: int,
    seed: int,
    files: int,
    out: Estimates,
    imported: Callable[[WeakModel, Indices], Imported] | None = None,
) -> dict[str, Any]:
    """One half/half split: fit, profile, and ``files`` files per hard share into ``out``. The pools and the
    files' rows come from the fitted model's probabilities; with ``imported``, the imported model's .tflite scores
    the files and the import's profile monitors them (the same rows as without)."""
    at = [data.names.index(f) for f in WEAK_FEATURES]
    columns = [default_column_name(f) for f in WEAK_FEATURES]
    half_a, half_b = weak_split(data, split, seed)
    xa, xb = data.x[half_a][:, at], data.x[half_b][:, at]
    ya = data.malignant[half_a]
    model = fit_weak_model(xa, ya)
    pa, pb = model.probability(xa), model.probability(xb)
    if imported is None:
        profile = build_profile(xa, f"half A of split {split}", pa >= 0.5, (pa, ya, f"half A of split {split}"))
        scored = pb
    else:
        profile, score = imported(model, half_a)
        scored = score(xb)
    cb = (scored >= 0.5).astype(np.int8)
    yb = data.malignant[half_b]
    correct = (cb == 1) == yb
    # The oracle: the same estimator calibrated on half B's own labels (what no import can have), to tell the
    # calibration's transfer from half A to half B apart from the rest of the error.
    oracle_calibration = fit_calibration(scored, yb, "half B (oracle)")
    hardness = np.abs(pb - 0.5)
    hard = np.flatnonzero(hardness < np.median(hardness))
    easy = np.setdiff1d(np.arange(len(half_b)), hard)
    for k, share in enumerate(HARD_SHARES):
        rng = np.random.default_rng([seed, 4, split, k])
        n_hard = round(share * FILE_ROWS)
        for _ in range(files):
            r = np.concatenate(
                [hard[rng.integers(0, len(hard), n_hard)], easy[rng.integers(0, len(easy), FILE_ROWS - n_hard)]]
            )
            found = monitor_file(profile, columns, np.asfortranarray(xb[r]), scored[r], cb[r])
            oracle = AccuracyEstimate(oracle_calibration)
            oracle.add(scored[r], cb[r] == 1)
            out.add(k, split, float(correct[r].mean()), found, (oracle.result() or (np.nan,))[0])
    return {
        "split": split,
        "accuracy_half_a": float(np.mean((pa >= 0.5) == ya)),
        "accuracy_half_b": float(correct.mean()),
        "accuracy_hard_pool": float(correct[hard].mean()),
        "accuracy_easy_pool": float(correct[easy].mean()),
        "w": model.w.tolist(),
        "b": model.b,
        "calibration": None if profile.calibration is None else profile.calibration.model_dump(),
    }


def weak_model_accuracy(data: Data, splits: int, files: int, seed: int) -> tuple[Estimates, list[dict[str, Any]]]:
    out = Estimates.empty(kind_names())
    return out, [run_split(data, split, seed, files, out) for split in range(splits)]


# -- the same files through the real import ----------------------------------------------------------------------


def _saved_model(model: WeakModel, path: Path) -> None:
    """sigmoid(x @ w + b) as a SavedModel: a tf.Module, its tf.function the ``serving_default`` signature."""
    import tensorflow as tf

    class Weak(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(model.w.reshape(-1, 1), dtype=tf.float32)
            self.b = tf.Variable(np.float32(model.b), dtype=tf.float32)

        @tf.function(  # type: ignore[untyped-decorator]
            input_signature=[tf.TensorSpec([None, len(WEAK_FEATURES)], tf.float32, name="features")]
        )
        def serve(self, features: Any) -> dict[str, Any]:
            return {"malignant_probability": tf.sigmoid(tf.matmul(features, self.w)[:, 0] + self.b)}

    module = Weak()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def _labelled_csv(rows: Indices, path: Path) -> None:
    """The labelled sample's header and the given rows' lines, as they are."""
    header, *lines = LABELLED.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([header, *(lines[i] for i in rows)]) + "\n", encoding="utf-8")


def weak_via_import(data: Data, seed: int, files: int, split: int = 0) -> dict[str, Any]:
    """Split ``split`` again, through ``import_model``: the import's profile and .tflite against build_profile's
    (the same files, so the estimates can be compared one to one)."""
    from scoring import Scorer
    from tools.commands.import_model import import_model
    from tools.model_import.config import parse_config

    timings: dict[str, float] = {}

    def imported(model: WeakModel, half_a: Indices) -> Imported:
        work = Path(tempfile.mkdtemp(prefix="monitoring-weak-"))
        t0 = time.perf_counter()
        _saved_model(model, work / "saved_model")
        _labelled_csv(half_a, work / "half_a.csv")
        config = parse_config(
            {
                "features": list(WEAK_FEATURES),
                "input": "features",
                "output": "malignant_probability",
                "probability_of": "malignant",
                "reference_csv": str(work / "half_a.csv"),
                "label_column": "diagnosis",
                "label_malignant_value": "malignant",
                "domain": {"all": {"min": 0.0}},
            },
            source="benchmarks/monitoring_weak.py",
        )
        result = import_model(work / "saved_model", config, work / "model", version_prefix="weak-lr")
        timings["import_s"] = time.perf_counter() - t0
        scorer = Scorer.load(result.out)
        profile = scorer.metadata.monitoring
        if profile is None:
            raise RuntimeError("the import wrote no monitoring profile")
        return profile, lambda x: scorer.score(x.astype(np.float32)).malignant_probability

    direct, through = Estimates.empty(kind_names()), Estimates.empty(kind_names())
    run_split(data, split, seed, files, direct)
    info = run_split(data, split, seed, files, through, imported)
    d, t = direct.arrays(), through.arrays()
    return {
        "split": split,
        "files": len(through.truth),
        "import_seconds": timings.get("import_s"),
        "calibration": info["calibration"],
        "summary": through.summary(),
        "max_abs_estimate_difference_vs_build_profile": float(np.max(np.abs(t["estimate"] - d["estimate"]))),
        "same_truth": bool(np.array_equal(t["truth"], d["truth"])),
        "estimates": through,
    }
