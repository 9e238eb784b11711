"""The only place that imports a TFLite interpreter package.

LiteRT (``ai-edge-litert``) is preferred: it has python3.13 wheels that load on Amazon Linux 2023.
The older ``tflite-runtime`` has the same ``Interpreter`` API and is accepted where it is what is
installed, so nothing else in the project has to care which one is present.
"""

from __future__ import annotations

from typing import Any

from scoring.errors import ModelLoadError


def interpreter_class() -> tuple[type[Any], str]:
    """Return the ``Interpreter`` class and the name of the package that provided it."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found,no-redef]

        return Interpreter, "tflite-runtime"
    except ImportError as exc:
        raise ModelLoadError("no TFLite interpreter is installed: install ai-edge-litert (or tflite-runtime)") from exc
