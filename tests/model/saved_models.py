"""SavedModels of every flavour a user may bring, built at test time (small models, a few seconds of training).

Each good flavour comes with its import config and its known answers: P(malignant) for the 569 sample rows as
the model itself computes it in TensorFlow (its own framework, its own conventions, the preprocessing done in
numpy float64), so a test can check what the function loads against the model, not against our own code.

Built once per session (``build``), under pytest's temporary directory. TensorFlow is imported lazily.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.datasets import load_breast_cancer

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CSV = REPO_ROOT / "data" / "breast_cancer.csv"
SEED = 7


@dataclass(frozen=True)
class Data:
    features: list[str]
    x: npt.NDArray[np.float64]  # [569, 30], the sample CSV's values
    malignant: npt.NDArray[np.int8]  # 1 where scikit-learn's target is 0

    def columns(self, names: list[str]) -> npt.NDArray[np.float64]:
        return self.x[:, [self.features.index(n) for n in names]]


def data() -> Data:
    bc = load_breast_cancer()
    return Data([str(n) for n in bc.feature_names], np.asarray(bc.data, np.float64), (bc.target == 0).astype(np.int8))


def standardise(x: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Population mean and standard deviation, as standardize.fit_csv computes them."""
    return x.mean(axis=0), x.std(axis=0)


@dataclass
class Built:
    """A SavedModel on disk, the config that imports it right, and its own P(malignant) for the 569 rows."""

    name: str
    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    malignant_probability: npt.NDArray[np.float64] | None = None

    def write_config(self, directory: Path, **changes: Any) -> Path:
        """The config as a JSON file (with ``changes``; a value of ``...`` removes the key)."""
        config = {k: v for k, v in {**self.config, **changes}.items() if v is not ...}
        path = directory / f"{self.name}.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        return path


# --- the article's model: TF1 SavedModelBuilder, reference variables, P(benign), unscaled inputs ------------------


def tf1_article(path: Path) -> Built:
    """Like the article's export: a tf.compat.v1 graph with placeholder ``inputs`` [None, 30] and a sigmoid
    ``classifications`` [None, 1], reference (not resource) variables, signature ``serving_default`` with method
    ``tensorflow/serving/classify``, trained on standardised features (the scaler is not in the graph) with
    scikit-learn's target unflipped, so it outputs P(benign)."""
    import tensorflow as tf

    v1 = tf.compat.v1
    d = data()
    mean, scale = standardise(d.x)
    xs = ((d.x - mean) / scale).astype(np.float32)
    benign = (1 - d.malignant).astype(np.float32).reshape(-1, 1)
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(SEED)
        inputs = v1.placeholder(tf.float32, [None, 30], name="inputs")
        target = v1.placeholder(tf.float32, [None, 1])
        w1 = v1.Variable(v1.random_normal([30, 8], stddev=0.1, seed=SEED), use_resource=False, name="w1")
        b1 = v1.Variable(tf.zeros([8]), use_resource=False, name="b1")
        w2 = v1.Variable(v1.random_normal([8, 1], stddev=0.1, seed=SEED), use_resource=False, name="w2")
        b2 = v1.Variable(tf.zeros([1]), use_resource=False, name="b2")
        logit = tf.matmul(tf.nn.relu(tf.matmul(inputs, w1) + b1), w2) + b2
        classifications = tf.sigmoid(logit, name="classifications")
        loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logit))
        train = v1.train.AdamOptimizer(0.01).minimize(loss)
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            for _ in range(200):
                session.run(train, {inputs: xs, target: benign})
            p_benign = session.run(classifications, {inputs: xs}).reshape(-1)
            builder = v1.saved_model.Builder(str(path))
            signature = v1.saved_model.signature_def_utils.build_signature_def(
                inputs={"inputs": v1.saved_model.utils.build_tensor_info(inputs)},
                outputs={"outputs": v1.saved_model.utils.build_tensor_info(classifications)},
                method_name="tensorflow/serving/classify",
            )
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={"serving_default": signature})
            builder.save()
    config = {
        "tags": ["serve"],
        "signature": "serving_default",
        "input": "inputs",
        "output": "outputs",
        "features": d.features,
        "standardize": {"fit_csv": str(SAMPLE_CSV)},
        "probability_of": "benign",
    }
    return Built("tf1_article", path, config, 1.0 - p_benign.astype(np.float64))


def tf1_classify(path: Path) -> Built:
    """A TF1 SavedModelBuilder export with the classify signature's usual pair of outputs: ``scores`` [None, 2]
    (softmax over scikit-learn's classes, malignant first) and ``classes`` (strings), reference variables, on
    standardised inputs (mean and scale given in the config). Untrained: seeded random weights suffice to compare
    the .tflite with the model."""
    import tensorflow as tf

    v1 = tf.compat.v1
    d = data()
    mean, scale = standardise(d.x)
    xs = ((d.x - mean) / scale).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        inputs = v1.placeholder(tf.float32, [None, 30], name="inputs")
        w = v1.Variable(np.random.default_rng(SEED).normal(0, 0.3, (30, 2)).astype(np.float32), use_resource=False)
        scores = tf.nn.softmax(tf.matmul(inputs, w), name="scores")
        classes = tf.tile(tf.constant([["malignant", "benign"]]), [tf.shape(inputs)[0], 1], name="classes")
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            p = session.run(scores, {inputs: xs})[:, 0]
            builder = v1.saved_model.Builder(str(path))
            info = v1.saved_model.utils.build_tensor_info
            signature = v1.saved_model.signature_def_utils.build_signature_def(
                inputs={"inputs": info(inputs)},
                outputs={"scores": info(scores), "classes": info(classes)},
                method_name="tensorflow/serving/classify",
            )
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map={"serving_default": signature})
            builder.save()
    config = {
        "output": "scores",
        "features": d.features,
        "standardize": {"mean": mean.tolist(), "scale": scale.tolist()},
        "output_classes": ["malignant", "benign"],
    }
    return Built("tf1_classify", path, config, p.astype(np.float64))


# --- Keras 3 model.export: the scaler inside, P(malignant) -------------------------------------------------------


def keras_export(path: Path) -> Built:
    import keras

    d = data()
    keras.utils.set_random_seed(SEED)
    normalise = keras.layers.Normalization()
    normalise.adapt(d.x.astype(np.float32))
    inputs = keras.Input(shape=(30,), dtype="float32", name="measurements")
    hidden = keras.layers.Dense(8, activation="relu")(normalise(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    model.fit(d.x.astype(np.float32), d.malignant.astype(np.float32), epochs=20, batch_size=64, verbose=0)
    model.export(str(path), format="tf_saved_model", verbose=False)
    p = model.predict(d.x.astype(np.float32), verbose=0).reshape(-1)
    return Built("keras_export", path, {"features": d.features}, p.astype(np.float64))


# --- tf.saved_model.save of a tf.Module: [N, 2] softmax in scikit-learn's class order ----------------------------


def module_softmax(path: Path) -> Built:
    """A tf.Module with a [N, 2] softmax over (malignant, benign), scikit-learn's order, on standardised inputs
    (mean and scale given in the config)."""
    import tensorflow as tf

    d = data()
    mean, scale = standardise(d.x)
    xs = tf.constant(((d.x - mean) / scale).astype(np.float32))
    onehot = tf.one_hot(1 - d.malignant.astype(np.int32), 2)  # column 0 malignant, 1 benign

    class Softmax(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(tf.random.stateless_normal([30, 2], seed=[SEED, 0], stddev=0.1))
            self.b = tf.Variable(tf.zeros([2]))

        @tf.function(input_signature=[tf.TensorSpec([None, 30], tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            return {"probabilities": tf.nn.softmax(tf.matmul(x, self.w) + self.b)}

    module = Softmax()
    for _ in range(150):  # plain gradient descent
        with tf.GradientTape() as tape:
            logits = tf.matmul(xs, module.w) + module.b
            loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=onehot, logits=logits))
        for variable, grad in zip([module.w, module.b], tape.gradient(loss, [module.w, module.b]), strict=True):
            variable.assign_sub(0.5 * grad)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    p = module.serve(xs)["probabilities"].numpy()[:, 0]
    config = {
        "features": d.features,
        "standardize": {"mean": mean.tolist(), "scale": scale.tolist()},
        "output_classes": ["malignant", "benign"],
    }
    return Built("module_softmax", path, config, p.astype(np.float64))


# --- a model that reads 10 of the columns ------------------------------------------------------------------------

TEN_FEATURES = [
    "worst radius",
    "worst texture",
    "worst perimeter",
    "worst area",
    "worst smoothness",
    "worst compactness",
    "worst concavity",
    "worst concave points",
    "worst symmetry",
    "worst fractal dimension",
]


def ten_features(path: Path) -> Built:
    """A Keras model on the 10 ``worst *`` columns, trained on standardised inputs, exported with model.export;
    imported with standardize.fit_csv on those 10 columns of the sample CSV."""
    import keras

    d = data()
    x10 = d.columns(TEN_FEATURES)
    mean, scale = standardise(x10)
    xs = ((x10 - mean) / scale).astype(np.float32)
    keras.utils.set_random_seed(SEED)
    inputs = keras.Input(shape=(10,), dtype="float32", name="worst")
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dense(6, "relu")(inputs)))
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss="binary_crossentropy")
    model.fit(xs, d.malignant.astype(np.float32), epochs=30, batch_size=64, verbose=0)
    model.export(str(path), format="tf_saved_model", verbose=False)
    p = model.predict(xs, verbose=0).reshape(-1)
    config = {"features": TEN_FEATURES, "standardize": {"fit_csv": str(SAMPLE_CSV)}}
    return Built("ten_features", path, config, p.astype(np.float64))


# --- bad models --------------------------------------------------------------------------------------------------


def _module(path: Path, spec: Any, body: Callable[[Any], Any]) -> Built:
    """A tf.Module with one signature ``serving_default`` (input key ``x``, output key ``p``) computing ``body``."""
    import tensorflow as tf

    class Bad(tf.Module):
        @tf.function(input_signature=[spec])
        def serve(self, x: Any) -> dict[str, Any]:
            return {"p": body(x)}

    module = Bad()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return Built(path.name, path, {"features": data().features})


def int_input(path: Path) -> Built:
    import tensorflow as tf

    return _module(
        path,
        tf.TensorSpec([None, 30], tf.int32, name="x"),
        lambda x: tf.sigmoid(tf.reduce_sum(tf.cast(x, tf.float32), axis=1, keepdims=True)),
    )


def rank3_input(path: Path) -> Built:
    import tensorflow as tf

    return _module(
        path,
        tf.TensorSpec([None, 30, 1], tf.float32, name="x"),
        lambda x: tf.sigmoid(tf.reduce_sum(x, axis=[1, 2])[:, None] * 1e-3),
    )


def unknown_width(path: Path) -> Built:
    import tensorflow as tf

    return _module(
        path,
        tf.TensorSpec([None, None], tf.float32, name="x"),
        lambda x: tf.sigmoid(tf.reduce_mean(x, axis=1, keepdims=True)),
    )


def logits(path: Path) -> Built:
    """Outputs a logit, not a probability (no sigmoid at the end)."""
    import tensorflow as tf

    return _module(
        path, tf.TensorSpec([None, 30], tf.float32, name="x"), lambda x: tf.reduce_sum(x, axis=1, keepdims=True)
    )


def unsupported_op(path: Path) -> Built:
    """Uses Erfinv, which TFLite's builtin ops (all LiteRT in Lambda has) do not include."""
    import tensorflow as tf

    return _module(
        path,
        tf.TensorSpec([None, 30], tf.float32, name="x"),
        lambda x: tf.sigmoid(tf.reduce_mean(tf.math.erfinv(tf.tanh(x) * 0.5), axis=1, keepdims=True)),
    )


def keras_in_module(path: Path) -> Built:
    """A Keras 3 model wrapped in a tf.Module and saved with tf.saved_model.save: it converts without an error
    and the .tflite scores garbage (measured: NaN), which only a parity check catches."""
    import keras
    import tensorflow as tf

    d = data()
    keras.utils.set_random_seed(SEED)
    inputs = keras.Input(shape=(30,))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dense(4, "relu")(inputs)))

    class Wrapper(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        @tf.function(input_signature=[tf.TensorSpec([None, 30], tf.float32, name="x")])
        def serve(self, x: Any) -> dict[str, Any]:
            return {"p": self.model(x)}

    wrapper = Wrapper()
    tf.saved_model.save(wrapper, str(path), signatures={"serving_default": wrapper.serve})
    mean, scale = standardise(d.x)
    config = {"features": d.features, "standardize": {"mean": mean.tolist(), "scale": scale.tolist()}}
    return Built(path.name, path, config)


BUILDERS: dict[str, Callable[[Path], Built]] = {
    "tf1_article": tf1_article,
    "tf1_classify": tf1_classify,
    "keras_export": keras_export,
    "module_softmax": module_softmax,
    "ten_features": ten_features,
    "int_input": int_input,
    "rank3_input": rank3_input,
    "unknown_width": unknown_width,
    "logits": logits,
    "unsupported_op": unsupported_op,
    "keras_in_module": keras_in_module,
}
GOOD = ("tf1_article", "keras_export", "module_softmax", "ten_features")
_CACHE: dict[str, Built] = {}


def build(name: str, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The SavedModel ``name``, built on first use in this session and reused after."""
    if name not in _CACHE:
        _CACHE[name] = BUILDERS[name](tmp_path_factory.mktemp("saved_models") / name)
    return _CACHE[name]
