"""The model's TFLite interpreter driven directly, without the Scorer: the per-row loop (the naive alternative to
batching) and the bare chunked loop. Used by bench_scoring.py and by bench_e2e.py's naive handler.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring.interpreter import interpreter_class

F32 = npt.NDArray[np.float32]


class RawInterpreter:
    """The model's interpreter driven directly, without the Scorer (same interpreter API as the Scorer).

    ``per_row`` is the naive alternative to batching: one invocation per row, the input resized to
    [1, 30] once. ``chunked`` is the Scorer's invoke loop with nothing around it (no validation, no
    class or label), to show how much of ``Scorer.score`` is the interpreter and how much is Python.
    """

    def __init__(self, model_content: bytes, signature_key: str, input_name: str, num_threads: int | None) -> None:
        cls, self.package = interpreter_class()
        self._content, self._key, self._input_name = model_content, signature_key, input_name
        self.interpreter = cls(model_content=model_content, num_threads=num_threads)
        runner = self.interpreter.get_signature_runner(signature_key)
        self.input_index = int(runner.get_input_details()[input_name]["index"])
        self.output_index = int(runner.get_output_details()["malignant_probability"]["index"])
        self.n_features = int(runner.get_input_details()[input_name]["shape_signature"][1])
        del runner  # it holds views into the interpreter, which forbid resizing
        self._rows = 0
        self._resize(1)

    @classmethod
    def for_model(cls, model_dir: Path, metadata: Any, num_threads: int | None = None) -> RawInterpreter:
        """The interpreter of the model in ``model_dir`` (``metadata``: its ``ModelMetadata``)."""
        content = (model_dir / metadata.tflite_file).read_bytes()
        return cls(content, metadata.signature.key, metadata.signature.input.name, num_threads)

    def clone(self, num_threads: int | None = None) -> RawInterpreter:
        """A fresh interpreter for the same model."""
        return RawInterpreter(self._content, self._key, self._input_name, num_threads)

    def _resize(self, rows: int) -> None:
        if rows != self._rows:
            self.interpreter.resize_tensor_input(self.input_index, [rows, self.n_features], strict=True)
            self.interpreter.allocate_tensors()
            self._rows = rows

    def per_row(self, x: F32) -> F32:
        """One set_tensor / invoke / get_tensor per row; the input stays [1, 30] (resized once, at init)."""
        self._resize(1)  # a no-op unless chunked() ran on this interpreter
        interpreter, i_in, i_out = self.interpreter, self.input_index, self.output_index
        out = np.empty(x.shape[0], dtype=np.float32)
        for i in range(x.shape[0]):
            interpreter.set_tensor(i_in, x[i : i + 1])
            interpreter.invoke()
            out[i] = interpreter.get_tensor(i_out)[0]
        return out

    def chunked(self, x: F32, rows: int) -> F32:
        """One invocation per chunk of ``rows`` rows, exactly the Scorer's loop minus its checks and labels."""
        out = np.empty(x.shape[0], dtype=np.float32)
        for start in range(0, x.shape[0], rows):
            chunk = x[start : start + rows]
            self._resize(chunk.shape[0])
            self.interpreter.set_tensor(self.input_index, chunk)
            self.interpreter.invoke()
            out[start : start + chunk.shape[0]] = self.interpreter.get_tensor(self.output_index).reshape(-1)
        return out

    def tensor_megabytes(self, rows: int) -> float:
        """Sum of every tensor's size when the input is [rows, 30] (an upper bound: the arena reuses buffers)."""
        cls, _ = interpreter_class()
        probe = cls(model_content=self._content, num_threads=1)
        probe.resize_tensor_input(self.input_index, [rows, self.n_features], strict=True)
        probe.allocate_tensors()
        total = sum(int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize for d in probe.get_tensor_details())
        return float(total) / 1e6
