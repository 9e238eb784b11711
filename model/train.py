"""Train, export and convert the breast-cancer classifier (``make model``).

Development-only: this is the one place that imports TensorFlow, Keras and scikit-learn.
It writes, next to itself:

* ``saved_model/``   TensorFlow SavedModel, tag ``serve``, signature ``serving_default``
                     (input ``features`` float32 [None, 30]; outputs ``malignant_probability``
                     and ``classification``).
* ``model.tflite``   the TFLite conversion of that SavedModel, scored in Lambda by LiteRT.
* ``metadata.json``  feature order, output columns, threshold, label mapping, held-out
                     metrics, tool versions, the .tflite's sha256 and a model version; per
                     feature its valid domain (the 30 measurements are sizes, ratios and counts
                     of a cell nucleus image: never negative) and its training range over the
                     rows the model was trained on.

and ``data/breast_cancer.csv`` at the repository root: the 569 rows as a hospital export, with
``data/breast_cancer_labelled.csv`` beside it: the same rows and a ``diagnosis`` column (the truth), to check a
model's accuracy with (``write_labelled_csv``; regenerate only it with
``python -c "from model.train import *; write_labelled_csv(Path('data/breast_cancer.csv'),
Path('data/breast_cancer_labelled.csv'))"``).

The .tflite and metadata.json come from ``tools.commands.import_model.import_model``, the code behind
``make import-model``: one conversion path, with its parity check (here on the 569 sample rows).

scikit-learn's target is 0 = malignant, 1 = benign. The StreamSets rule this project replaces is
``classification == 0 ? 'benign' : 'malignant'``, so the model is trained on the flipped target:
class 1 = malignant.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # bit-stable CPU results between runs

import keras
import numpy as np
import sklearn
import tensorflow as tf
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import accuracy_score, precision_score, recall_score
from sklearn.model_selection import train_test_split

from tools.commands.import_model import TrainingRows, import_model, parse_config

SEED = 42
THRESHOLD = 0.5
TEST_SIZE = 0.2
EPOCHS = 150
MODEL_DIR = Path(__file__).resolve().parent
REPO_ROOT = MODEL_DIR.parent
# Every one of the 30 measurements (radius, texture, perimeter, area, smoothness, compactness, concavity, concave
# points, symmetry, fractal dimension: their means, standard errors and worst values) is >= 0.
DOMAIN = {"all": {"min": 0.0}}


def load_data() -> tuple[list[str], np.ndarray, np.ndarray]:
    data = load_breast_cancer()
    features = [str(name) for name in data.feature_names]
    x = data.data.astype(np.float32)
    y_malignant = (data.target == 0).astype(np.int32)  # flip: sklearn's 0 is malignant
    return features, x, y_malignant


def build_model(x_train: np.ndarray) -> keras.Model:
    normalise = keras.layers.Normalization(axis=-1, name="normalise")
    normalise.adapt(x_train)
    inputs = keras.Input(shape=(x_train.shape[1],), dtype="float32", name="features")
    h = normalise(inputs)
    h = keras.layers.Dense(16, activation="relu", name="hidden_1")(h)
    h = keras.layers.Dense(8, activation="relu", name="hidden_2")(h)
    out = keras.layers.Dense(1, activation="sigmoid", name="malignant_probability")(h)
    model = keras.Model(inputs, out, name="breast_cancer_mlp")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return model


def export_saved_model(model: keras.Model, n_features: int, path: Path) -> None:
    """Export with Keras 3's ExportArchive (never tf.Module + tf.saved_model.save: that scores garbage)."""
    archive = keras.export.ExportArchive()
    archive.track(model)

    @tf.function(input_signature=[tf.TensorSpec([None, n_features], tf.float32, name="features")])
    def serve(features: tf.Tensor) -> dict[str, tf.Tensor]:
        probability = tf.reshape(model(features, training=False), [-1])
        classification = tf.cast(probability >= THRESHOLD, tf.int32)
        return {"malignant_probability": probability, "classification": classification}

    archive.add_endpoint(name="serving_default", fn=serve)
    if path.exists():
        shutil.rmtree(path)
    archive.write_out(str(path), verbose=False)


def save_reference_weights(model: keras.Model, path: Path) -> None:
    """The same weights as plain arrays: the benchmark's numpy forward pass (a baseline, never shipped)."""
    norm = model.get_layer("normalise")
    arrays: dict[str, np.ndarray] = {
        "mean": np.asarray(norm.mean, dtype=np.float32).reshape(-1),
        "variance": np.asarray(norm.variance, dtype=np.float32).reshape(-1),
    }
    for name in ("hidden_1", "hidden_2", "malignant_probability"):
        kernel, bias = model.get_layer(name).get_weights()
        arrays[f"{name}_kernel"] = kernel.astype(np.float32)
        arrays[f"{name}_bias"] = bias.astype(np.float32)
    np.savez(path, **arrays)


def write_sample_csv(features: list[str], x64: np.ndarray, path: Path) -> None:
    """The 569 rows the way a hospital export looks: a sample id, then the measurements as text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["sample_id", *features])
        for i, row in enumerate(x64, start=1):
            writer.writerow([f"WDBC-{i:04d}", *(repr(float(v)) for v in row)])


LABEL_COLUMN = "diagnosis"  # in data/breast_cancer_labelled.csv: "malignant" / "benign", as CONDITION says


def write_labelled_csv(sample_csv: Path, path: Path) -> None:
    """The sample export with the truth beside each row: its lines as they are, and a ``diagnosis`` column from
    scikit-learn's target (``malignant`` where the target is 0), so that a model's accuracy can be checked on it
    (``reference_csv`` + ``label_column`` in an import config: README "Bring your own model")."""
    target = load_breast_cancer().target
    with sample_csv.open(newline="", encoding="utf-8") as fh:
        header, *rows = list(csv.reader(fh))
    if len(rows) != len(target):
        raise SystemExit(f"{sample_csv}: {len(rows)} rows, the data set has {len(target)}")
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow([*header, LABEL_COLUMN])
        for row, truth in zip(rows, target, strict=True):
            writer.writerow([*row, "malignant" if truth == 0 else "benign"])


def split(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stratified train/held-out split (row indices), the same on every run."""
    idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=TEST_SIZE, stratify=y, random_state=SEED)
    return np.asarray(idx_train), np.asarray(idx_test)


def training_rows(idx_train: np.ndarray) -> TrainingRows:
    """The rows the model is trained on, as float64 (the values the sample CSV writes and the function parses)."""
    return TrainingRows(
        values=load_breast_cancer().data[np.sort(idx_train)],
        source=f"the {len(idx_train)} training rows of sklearn.datasets.load_breast_cancer (model/train.py's split)",
    )


def import_config(labelled_csv: Path) -> dict[str, object]:
    """The import config of the project's model. The normalisation is inside the model, and it outputs
    P(malignant): no preprocessing, no flip. Its reference rows are the labelled sample's: monitoring compares
    each file with them, and calibrates the label-free accuracy estimate on their labels."""
    return {
        "signature": "serving_default",
        "input": "features",
        "output": "malignant_probability",
        "features": [str(name) for name in load_breast_cancer().feature_names],
        "probability_of": "malignant",
        "threshold": THRESHOLD,
        "reference_csv": str(labelled_csv),
        "label_column": LABEL_COLUMN,
        "label_malignant_value": "malignant",
        "domain": DOMAIN,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=MODEL_DIR, help="where the model files go")
    parser.add_argument("--sample-csv", type=Path, default=REPO_ROOT / "data" / "breast_cancer.csv")
    parser.add_argument("--labelled-csv", type=Path, default=REPO_ROOT / "data" / "breast_cancer_labelled.csv")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args()

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()

    features, x, y = load_data()
    idx_train, idx_test = split(y)
    model = build_model(x[idx_train])
    model.fit(x[idx_train], y[idx_train], epochs=args.epochs, batch_size=32, verbose=0, shuffle=True)

    probability = model.predict(x[idx_test], verbose=0).reshape(-1)
    predicted = (probability >= THRESHOLD).astype(np.int32)
    metrics = {
        "split": {
            "test_size": TEST_SIZE,
            "stratified": True,
            "seed": SEED,
            "n_train": len(idx_train),
            "n_test": len(idx_test),
        },
        "accuracy": round(float(accuracy_score(y[idx_test], predicted)), 6),
        "precision": round(float(precision_score(y[idx_test], predicted)), 6),
        "recall": round(float(recall_score(y[idx_test], predicted)), 6),
    }

    args.out.mkdir(parents=True, exist_ok=True)
    saved_model = args.out / "saved_model"
    export_saved_model(model, len(features), saved_model)
    save_reference_weights(model, args.out / "reference_weights.npz")
    write_sample_csv(features, load_breast_cancer().data, args.sample_csv)
    write_labelled_csv(args.sample_csv, args.labelled_csv)

    config = parse_config(import_config(args.labelled_csv), source="model/train.py's import config")
    result = import_model(
        saved_model,
        config,
        args.out,
        version_prefix="bc-mlp-1.0.0",
        extra_metadata={
            "positive_class": 1,
            "held_out": metrics,
            "held_out_indices": [int(i) for i in sorted(idx_test)],
            "training": {"epochs": args.epochs, "seed": SEED, "dataset": "sklearn.datasets.load_breast_cancer"},
            "tools": {
                "python": platform.python_version(),
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
                "scikit-learn": sklearn.__version__,
                "numpy": np.__version__,
            },
        },
        training=training_rows(idx_train),
    )
    metadata = {"model_version": result.metadata.model_version}
    print(
        json.dumps(
            {"model_version": metadata["model_version"], **{k: metrics[k] for k in ("accuracy", "precision", "recall")}}
        )
    )


if __name__ == "__main__":
    main()
