"""The SavedModel: its signature read from its own protobuf, its TFLite conversion, its own output (TensorFlow),
the probability mapping, and its fingerprint."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import numpy.typing as npt

from scoring.metadata import ProbabilityOutput
from tools.model_import.config import SOFTMAX_SUM_TOLERANCE, ImportConfig, ModelImportError

# --- the SavedModel, read from its own protobuf (no TensorFlow graph is built for this) -------------------------


_DTYPE_NAMES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 6: "int8", 7: "string", 9: "int64", 10: "bool"}
_DTYPE_NAMES |= {19: "float16", 14: "bfloat16"}


@dataclass(frozen=True)
class TensorInfo:
    key: str
    name: str  # the graph tensor, e.g. inputs:0
    dtype: str
    shape: list[int | None] | None  # None: unknown rank


@dataclass(frozen=True)
class SignatureInfo:
    tags: list[str]
    key: str
    method_name: str
    input: TensorInfo
    output: TensorInfo
    all_outputs: dict[str, TensorInfo]


def _tensor_info(key: str, info: Any) -> TensorInfo:
    dtype = _DTYPE_NAMES.get(int(info.dtype), f"dtype#{int(info.dtype)}")
    shape = None
    if info.HasField("tensor_shape") and not info.tensor_shape.unknown_rank:
        shape = [None if d.size < 0 else int(d.size) for d in info.tensor_shape.dim]
    return TensorInfo(key=key, name=str(info.name), dtype=dtype, shape=shape)


def _pick(kind: str, wanted: str | None, available: list[str]) -> str:
    if wanted is None:
        if len(available) != 1:
            raise ModelImportError(f'the signature has {len(available)} {kind}s {available}: name one as "{kind}"')
        return available[0]
    if wanted not in available:
        raise ModelImportError(f"the signature has no {kind} {wanted!r}; its {kind}s are {available}")
    return wanted


def inspect_saved_model(saved_model: Path, config: ImportConfig) -> SignatureInfo:
    """Check the tags, signature and keys the config names against the SavedModel's saved_model.pb."""
    from tensorflow.core.protobuf import saved_model_pb2

    if not saved_model.is_dir():
        raise ModelImportError(f"not a SavedModel: {saved_model} is not a directory")
    pb = saved_model / "saved_model.pb"
    if not pb.is_file():
        present = sorted(p.name for p in saved_model.iterdir())[:10]
        raise ModelImportError(f"not a SavedModel: {saved_model} has no saved_model.pb (it holds {present})")
    proto = saved_model_pb2.SavedModel()
    try:
        proto.ParseFromString(pb.read_bytes())
    except Exception as exc:  # protobuf's DecodeError
        raise ModelImportError(f"not a SavedModel: {pb} is not a SavedModel protobuf ({exc})") from exc
    if not proto.meta_graphs:
        raise ModelImportError(f"not a SavedModel: {pb} holds no meta graph")

    tag_sets = [sorted(mg.meta_info_def.tags) for mg in proto.meta_graphs]
    matching = [mg for mg in proto.meta_graphs if sorted(mg.meta_info_def.tags) == sorted(config.tags)]
    if not matching:
        raise ModelImportError(f"the SavedModel has no meta graph tagged {config.tags}; its tag sets are {tag_sets}")
    graph = matching[0]
    signatures = sorted(graph.signature_def)
    if config.signature not in graph.signature_def:
        raise ModelImportError(
            f"the SavedModel (tags {config.tags}) has no signature {config.signature!r}; "
            f"its signatures are {signatures}"
        )
    sig = graph.signature_def[config.signature]
    input_key = _pick("input", config.input, sorted(sig.inputs))
    if len(sig.inputs) != 1:
        others = sorted(set(sig.inputs) - {input_key})
        raise ModelImportError(
            f"the signature needs inputs {others} besides {input_key!r}: only one input is supported"
        )
    output_key = _pick("output", config.output, sorted(sig.outputs))
    inp = _tensor_info(input_key, sig.inputs[input_key])
    outputs = {key: _tensor_info(key, info) for key, info in sig.outputs.items()}
    out = outputs[output_key]

    n = len(config.features)
    if inp.dtype != "float32":
        raise ModelImportError(
            f"input {input_key!r} ({inp.name}) is {inp.dtype}: the function feeds float32 measurements, so the "
            "input must be float32"
        )
    if inp.shape is None or len(inp.shape) != 2:
        shown = "of unknown rank" if inp.shape is None else f"rank {len(inp.shape)} {inp.shape}"
        raise ModelImportError(f"input {input_key!r} is {shown}: it must be rank 2, [None, {n}] (rows x features)")
    if inp.shape[0] is not None:
        raise ModelImportError(f"input {input_key!r} has a fixed batch size {inp.shape[0]}: it must be [None, {n}]")
    if inp.shape[1] is None:
        raise ModelImportError(
            f"input {input_key!r} has no fixed width ([None, None]): export it as [None, {n}], one column a feature"
        )
    if inp.shape[1] != n:
        raise ModelImportError(
            f"input {input_key!r} is {inp.shape[1]} wide but the config lists {n} features: list exactly the "
            "columns the model reads, in its order"
        )
    if out.dtype != "float32":
        raise ModelImportError(f"output {output_key!r} ({out.name}) is {out.dtype}: a probability must be float32")
    return SignatureInfo(
        tags=sorted(config.tags),
        key=config.signature,
        method_name=str(sig.method_name),
        input=inp,
        output=out,
        all_outputs=outputs,
    )


def describe_tensor(tensor: TensorInfo) -> dict[str, Any]:
    return {"key": tensor.key, "tensor": tensor.name, "dtype": tensor.dtype, "shape": tensor.shape}


# --- conversion and parity ---------------------------------------------------------------------------------------


def convert(saved_model: Path, info: SignatureInfo) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model), signature_keys=[info.key], tags=set(info.tags)
    )
    try:
        return bytes(converter.convert())
    except Exception as exc:  # ConverterError and friends; the message lists the ops it could not map
        text = str(exc)
        ops = [
            line.strip()
            for line in text.splitlines()
            if line.strip().startswith(("Custom ops:", "Flex ops:", "TF Select ops:"))
        ]
        detail = "; ".join(ops) if ops else text.strip().splitlines()[-1][:500] if text.strip() else type(exc).__name__
        raise ModelImportError(f"LiteRT cannot run this model: the TFLite conversion failed ({detail})") from exc


def saved_model_output(saved_model: Path, info: SignatureInfo, model_input: npt.NDArray[np.float32]) -> np.ndarray:
    """The SavedModel's own output for ``model_input`` (already preprocessed), run by TensorFlow."""
    import tensorflow as tf

    loaded: Any = tf.saved_model.load(str(saved_model), tags=info.tags)
    fn = loaded.signatures[info.key]
    result = fn(**{info.input.key: tf.constant(model_input)})
    return np.asarray(result[info.output.key].numpy())


def probability_output(config: ImportConfig, info: SignatureInfo, raw: np.ndarray) -> ProbabilityOutput:
    """How the output reads as P(malignant), from its shape on the check rows and the config."""
    rows = raw.shape[0]
    key = info.output.key
    shape = [None, *raw.shape[1:]]
    if raw.ndim == 1 or (raw.ndim == 2 and raw.shape[1] == 1):
        if config.output_classes is not None:
            raise ModelImportError(
                f'output {key!r} is {shape}, one probability a row: "output_classes" is for a [N, 2] output; '
                'say whose probability it is with "probability_of"'
            )
        kind: Literal["probability", "classes"] = "probability"
    elif raw.ndim == 2 and raw.shape[1] == 2:
        if config.output_classes is None:
            raise ModelImportError(
                f'output {key!r} is [None, 2], one probability per class: give "output_classes", the label of each '
                'column in order, e.g. ["benign", "malignant"]'
            )
        if "probability_of" in config.model_fields_set:
            raise ModelImportError(
                f'output {key!r} is [None, 2], one probability per class: it is read by "output_classes", '
                '"probability_of" is for a [N] or [N, 1] output'
            )
        kind = "classes"
    else:
        raise ModelImportError(f"output {key!r} is {shape}: it must be [N], [N, 1] (a probability) or [N, 2] (softmax)")
    finite = np.isfinite(raw)
    if not finite.all():
        raise ModelImportError(f"output {key!r} is NaN or infinite on {int((~finite).any(axis=-1).sum())} check row(s)")
    low, high = float(raw.min()), float(raw.max())
    if low < 0.0 or high > 1.0:
        raise ModelImportError(
            f"output {key!r} is not a probability: it ranges over [{low:.4g}, {high:.4g}] on the {rows} check rows, "
            "outside [0, 1] (logits? export the model with its sigmoid or softmax)"
        )
    if kind == "classes":
        worst = float(np.max(np.abs(raw.sum(axis=1) - 1.0)))
        if worst > SOFTMAX_SUM_TOLERANCE:
            raise ModelImportError(f"output {key!r} rows do not sum to 1 (off by up to {worst:.3g}): not a softmax")
        return ProbabilityOutput(output=key, kind="classes", classes=config.output_classes)  # type: ignore[arg-type]
    return ProbabilityOutput(output=key, kind="probability", probability_of=config.probability_of)


def probability_json(probability: ProbabilityOutput) -> dict[str, Any]:
    """How P(malignant) is read, with only the keys that apply to the output's kind."""
    drop = {"probability_of"} if probability.kind == "classes" else {"classes"}
    return probability.model_dump(mode="json", exclude=drop)


def directory_sha256(path: Path) -> str:
    """sha256 over every file of a directory: relative path, size and content, in sorted order."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{file.stat().st_size}\0".encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def fingerprint(saved_model: Path) -> dict[str, Any] | None:
    """The SavedModel's own fingerprint (fingerprint.pb, written by TF >= 2.12), when it has one."""
    if not (saved_model / "fingerprint.pb").is_file():
        return None
    import tensorflow as tf

    fp = tf.saved_model.experimental.read_fingerprint(str(saved_model))
    return {
        "singleprint": fp.singleprint(),
        "saved_model_checksum": int(fp.saved_model_checksum),
        "signature_def_hash": int(fp.signature_def_hash),
    }
