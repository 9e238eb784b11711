"""A plain numpy float32 forward pass of the breast-cancer MLP: the benchmark's baseline, never shipped.

The weights come from ``model/reference_weights.npz`` (written by ``model/train.py``): the Keras
``Normalization`` layer's mean and variance and the three Dense layers' kernels and biases.

Keras 3's ``Normalization`` computes ``(x - mean) / maximum(sqrt(variance), epsilon())`` with
``epsilon() == 1e-7``; the dense layers are relu, relu, sigmoid. Everything stays in float32, as the
TFLite model does (numpy would otherwise be doing twice the arithmetic in float64, an unfair loss).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

KERAS_EPSILON = 1e-7  # keras.config.epsilon() default, used by Normalization
LAYERS = ("hidden_1", "hidden_2", "malignant_probability")

F32 = npt.NDArray[np.float32]


class NumpyForward:
    """``probability = sigmoid(relu(relu(norm(x) @ W1 + b1) @ W2 + b2) @ W3 + b3)``, all float32.

    The normalisation constants are precomputed once (the reciprocal of the clamped standard
    deviation), exactly the ``SUB`` + ``MUL`` the TFLite converter emits for the same layer.
    """

    def __init__(self, weights: dict[str, npt.NDArray[np.float32]]) -> None:
        f32 = np.float32
        self.mean: F32 = np.asarray(weights["mean"], dtype=f32)
        std = np.maximum(np.sqrt(np.asarray(weights["variance"], dtype=f32)), f32(KERAS_EPSILON))
        self.inv_std: F32 = (f32(1.0) / std).astype(f32)
        self.kernels: list[F32] = [np.ascontiguousarray(weights[f"{n}_kernel"], dtype=f32) for n in LAYERS]
        self.biases: list[F32] = [np.asarray(weights[f"{n}_bias"], dtype=f32) for n in LAYERS]

    @classmethod
    def load(cls, path: Path) -> NumpyForward:
        with np.load(path) as npz:
            return cls({k: npz[k] for k in npz.files})

    def _normalised(self, x: F32) -> F32:
        h = x - self.mean
        h *= self.inv_std
        return h

    def __call__(self, x: F32) -> F32:
        """Malignancy probability for a float32 [N, 30] batch, shape [N]."""
        (k1, k2, k3), (b1, b2, b3) = self.kernels, self.biases
        h = self._normalised(x) @ k1
        h += b1
        np.maximum(h, 0.0, out=h)
        h = h @ k2
        h += b2
        np.maximum(h, 0.0, out=h)
        z = h @ k3
        z += b3
        # sigmoid(z) = 1 / (1 + exp(-z)), in place, float32 throughout; exp overflowing to inf gives 0, correctly
        np.negative(z, out=z)
        with np.errstate(over="ignore"):
            np.exp(z, out=z)
        z += 1.0
        np.reciprocal(z, out=z)
        return z.reshape(-1).astype(np.float32, copy=False)


class FoldedNumpyForward(NumpyForward):
    """Diagnostic only, never the baseline: the normalisation folded into the first layer's weights.

    ``((x - mean) * inv_std) @ W1 + b1 == x @ (inv_std[:, None] * W1) + (b1 - (mean * inv_std) @ W1)``
    in exact arithmetic, saving two passes over the [N, 30] input. In float32 it is *not* the same
    computation: the folded bias is the difference of large terms, so results drift by ~1e-4 from
    the model's. The benchmark prints that drift next to its speed.
    """

    def __init__(self, weights: dict[str, npt.NDArray[np.float32]]) -> None:
        super().__init__(weights)
        k1 = self.kernels[0].astype(np.float64)
        inv_std, mean = self.inv_std.astype(np.float64), self.mean.astype(np.float64)
        self.kernels[0] = (inv_std[:, None] * k1).astype(np.float32)
        self.biases[0] = (self.biases[0].astype(np.float64) - (mean * inv_std) @ k1).astype(np.float32)

    def _normalised(self, x: F32) -> F32:
        return x  # the normalisation is inside the first layer's weights


def chunked(forward: NumpyForward, x: F32, rows: int) -> F32:
    """``forward`` applied ``rows`` rows at a time (keeps the temporaries cache-sized), like the Scorer."""
    out = np.empty(x.shape[0], dtype=np.float32)
    for start in range(0, x.shape[0], rows):
        out[start : start + rows] = forward(x[start : start + rows])
    return out
