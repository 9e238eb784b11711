"""`make import-model`: a user's SavedModel -> the ``model.tflite`` + ``metadata.json`` the function loads.

    make import-model SAVED_MODEL=<dir> CONFIG=<file.json> [OUT=<dir>]

Development-only (it imports TensorFlow; build/build_artifact.py ships src/ and the two model files, never
tools/). ``make model`` goes through ``import_model`` too, so there is one conversion path.

What it does, in order, and nothing is written unless every step passes:

1. reads the config (exactly the keys in ``ImportConfig``) and the SavedModel's own ``saved_model.pb``: the
   tag set, the signature, the input and output keys must be there (the error names the ones that are), the
   input must be float32 ``[None, len(features)]``;
2. works out the preprocessing (``standardize``: given mean/scale, or the population mean and standard
   deviation of the features in ``fit_csv``);
3. converts with ``TFLiteConverter.from_saved_model(dir, signature_keys=[signature], tags=tags)`` (builtin ops
   only: LiteRT in Lambda has no Flex delegate), and loads the result through the function's own ``Scorer``;
4. scores the check rows (``reference_csv``, or generated rows inside the features' plausible ranges) both
   ways, with the same preprocessing: the SavedModel run by TensorFlow and the .tflite run by ``Scorer``. The
   output must be a probability (in [0, 1]; a [N, 2] output's rows summing to 1), and P(malignant) must agree
   to ``PARITY_TOLERANCE``;
5. judges the converted model on real rows (the ``reference_csv`` rows, else the ``fit_csv`` rows, else the
   sample export's when it holds the features): it is refused when it labels every row one class, and, with
   labels, when its accuracy is below the majority class's share (worse than chance) or its ROC AUC is below 0.5
   (the probability is inverted), unless the config says ``"accept_poor_reference_performance": true`` (recorded
   in the metadata, with what was wrong);
6. writes ``model.tflite`` then ``metadata.json`` (with provenance: the SavedModel's fingerprint and sha256,
   tags, signature and tensor names, the preprocessing, the probability mapping, the threshold, the reference
   metrics when labelled rows were given, the tool versions and the model version) and the reference profile
   per-file monitoring compares each load with (``monitoring``: tools/model_import/profile.py; with
   ``label_column``, a calibration for the label-free accuracy estimate; without, drift monitoring only).

Each feature's metadata also carries its valid ``domain`` (from the config's ``domain``: a ``min`` and/or ``max``
for ``all`` features, or per feature under ``features``; a feature's own bound wins) and its ``training_range``
(min, max, 0.5th and 99.5th percentiles) over the data the model was trained with: the rows ``make model`` trained
on, else the ``reference_csv`` rows, else the ``standardize.fit_csv`` rows (none: no training range, nothing is
flagged). Training rows outside the domain are refused: the domain or the data is wrong.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pyarrow as pa

from monitoring.profile import describe
from scoring import ModelLoadError, ModelMetadata, Scorer, ScoringError
from scoring.metadata import Preprocessing
from tools.commands.score import NATIVE_NOISE, native_stderr_without
from tools.model_import.config import (
    LABELS,
    PARITY_TOLERANCE,
    REPO_ROOT,
    TFLITE_FILE,
    ImportConfig,
    ModelImportError,
    load_config,
    parse_config,
)
from tools.model_import.profile import reference_profile
from tools.model_import.rows import (
    Rows,
    TrainingRows,
    clip_to_domain,
    feature_metadata,
    generated_rows,
    label_text,
    metrics,
    plausible_ranges,
    read_rows,
    real_rows,
    reference_performance,
    resolve_standardize,
    roc_auc,
    shown_path,
    training_rows,
)
from tools.model_import.saved_model import (
    convert,
    describe_tensor,
    directory_sha256,
    fingerprint,
    inspect_saved_model,
    probability_json,
    probability_output,
    saved_model_output,
)

# The command's API (model/train.py, the tests): what it runs, and the steps' names it is often reached by.
__all__ = [
    "PARITY_TOLERANCE", "ImportConfig", "ImportResult", "ModelImportError", "Rows", "TrainingRows", "clip_to_domain",
    "directory_sha256", "feature_metadata", "generated_rows", "import_model", "main", "parse_config",
    "plausible_ranges", "read_rows", "resolve_standardize", "roc_auc", "saved_model_output", "training_rows",
]  # fmt: skip


def _tool_versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    from scoring.interpreter import interpreter_class

    versions = {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__}
    versions["numpy"] = np.__version__
    versions["pyarrow"] = pa.__version__
    _, package = interpreter_class()
    from importlib.metadata import version

    versions[package] = version(package)
    return versions


@dataclass
class ImportResult:
    out: Path
    metadata: ModelMetadata
    max_abs_diff: float
    check_rows: int


def import_model(
    saved_model: Path,
    config: ImportConfig,
    out: Path,
    *,
    version_prefix: str = "imported",
    extra_metadata: dict[str, Any] | None = None,
    training: TrainingRows | None = None,
) -> ImportResult:
    """Convert ``saved_model`` per ``config`` into ``out``/model.tflite + metadata.json, or raise ModelImportError
    (and write nothing)."""
    saved_model = Path(saved_model)
    info = inspect_saved_model(saved_model, config)
    standardize, fit = resolve_standardize(config)
    preprocessing = Preprocessing(standardize=standardize)

    label = None
    if config.label_column is not None and config.label_malignant_value is not None:
        label = (config.label_column, label_text(config.label_malignant_value))
    if config.reference_csv is not None:
        reference = read_rows(config.reference_csv, config.features, what="reference_csv", label=label)
        check_source = f"reference_csv {shown_path(config.reference_csv)}"
        check = reference.values
    else:
        reference = None
        low, high, check_source = plausible_ranges(config, standardize, fit)
        check = generated_rows(*clip_to_domain(config, low, high))
        if fit is not None:  # the fit file's own rows are real ones: check on them too
            check = np.vstack([fit.values, check])
            check_source = f"the {fit.values.shape[0]} rows of standardize.fit_csv and {check_source}"
    check32 = np.ascontiguousarray(check, dtype=np.float32)
    model_input = preprocessing.apply(check32)

    raw = saved_model_output(saved_model, info, model_input)
    probability = probability_output(config, info, raw)
    flatbuffer = convert(saved_model, info)
    tflite_sha = hashlib.sha256(flatbuffer).hexdigest()

    trained_on = training_rows(training, reference, fit, config)
    features = feature_metadata(config, trained_on)
    scoring = {
        "features": config.features,
        "preprocessing": preprocessing.model_dump(mode="json"),
        "probability": probability.model_dump(mode="json"),
        "threshold": config.threshold,
    }
    scoring_sha = hashlib.sha256(json.dumps(scoring, sort_keys=True).encode()).hexdigest()
    model_version = config.model_version or f"{version_prefix}+{tflite_sha[:12]}.{scoring_sha[:8]}"
    source: dict[str, Any] = {
        "saved_model": shown_path(saved_model),
        "sha256": directory_sha256(saved_model),
        "fingerprint": fingerprint(saved_model),
        "tags": info.tags,
        "signature": info.key,
        "method_name": info.method_name,
        "input": describe_tensor(info.input),
        "output": describe_tensor(info.output),
    }
    metadata_dict: dict[str, Any] = {
        "model_version": model_version,
        "tflite_file": TFLITE_FILE,
        "tflite_sha256": tflite_sha,
        "signature": {
            "key": info.key,
            "input": {"name": info.input.key, "dtype": "float32", "shape": [None, len(config.features)]},
            "outputs": {},  # filled from the .tflite below
        },
        "features": features,
        "outputs": {
            "classification": "CLASSIFICATION",
            "condition": "CONDITION",
            "malignant_probability": "MALIGNANT_PROBABILITY",
        },
        "decision_threshold": config.threshold,
        "labels": LABELS,
        "preprocessing": preprocessing.model_dump(mode="json"),
        "probability": probability_json(probability),
        "source": source,
        # Where each feature's training_range comes from (None: no real rows were given, nothing is flagged).
        "training_data": None
        if trained_on is None
        else {"rows": int(trained_on.values.shape[0]), "from": trained_on.source},
        **(extra_metadata or {}),
    }

    # The .tflite as the function will load it: its outputs' dtypes, then the scorer itself.
    from scoring.interpreter import interpreter_class

    cls, _ = interpreter_class()
    try:
        runner = cls(model_content=flatbuffer).get_signature_runner(info.key)
        metadata_dict["signature"]["outputs"] = {
            name: np.dtype(d["dtype"]).name for name, d in runner.get_output_details().items()
        }
        metadata = ModelMetadata.model_validate(metadata_dict)
        scorer = Scorer(flatbuffer, metadata)
        scores = scorer.score(check32)
    except (ValueError, RuntimeError, ScoringError) as exc:
        raise ModelImportError(f"LiteRT cannot run the converted model: {exc}") from exc

    expected = probability.malignant_probability(raw.astype(np.float32))
    diff = np.abs(scores.malignant_probability.astype(np.float64) - expected.astype(np.float64))
    not_finite = int((~np.isfinite(scores.malignant_probability)).sum())
    if not_finite:
        raise ModelImportError(
            f"the converted model does not score like the SavedModel: the .tflite gives NaN or infinity on "
            f"{not_finite} of the {diff.shape[0]} check rows ({check_source}) where the SavedModel gives "
            "probabilities; nothing written"
        )
    max_diff = float(np.max(diff))
    if max_diff > PARITY_TOLERANCE:
        worst = int(np.argmax(diff))
        raise ModelImportError(
            f"the converted model does not score like the SavedModel: max |P(malignant) tflite - SavedModel| = "
            f"{max_diff:.3g} > {PARITY_TOLERANCE:g} on {check_source} (worst: check row {worst}); nothing written"
        )
    parity = {
        "rows": int(check32.shape[0]),
        "rows_from": check_source,
        "max_abs_diff": float(f"{max_diff:.3g}"),
        "tolerance": PARITY_TOLERANCE,
    }
    if reference is not None:
        parity["reference_csv_sha256"] = reference.sha256
        parity["rows_skipped"] = reference.rows_skipped
    report: dict[str, Any] = {"parity": parity}
    if reference is not None and reference.labels is not None:
        report["metrics"] = metrics(reference.labels, scores.classification)
    judged = real_rows(config, reference, fit)
    if judged is not None:
        performance = reference_performance(judged, scorer.score(np.ascontiguousarray(judged.values, np.float32)))
        if performance["problems"] and not config.accept_poor_reference_performance:
            raise ModelImportError(
                f"the converted model scores the real rows ({judged.source}) wrong: "
                + "; ".join(performance["problems"])
                + '; nothing written (to import it anyway, set "accept_poor_reference_performance": true in the '
                "config: it is recorded in metadata.json)"
            )
        performance["accept_poor_reference_performance"] = config.accept_poor_reference_performance
        report["performance"] = performance
    else:
        report["performance"] = {"rows": 0, "rows_from": None, "problems": [], "not_judged": "no real rows"}
    metadata_dict["reference"] = report
    profile = reference_profile(config, reference, fit, training, scorer)
    metadata_dict["monitoring"] = None if profile is None else profile.model_dump(mode="json")
    metadata_dict["tools"] = metadata_dict.get("tools") or _tool_versions()
    metadata = ModelMetadata.model_validate(metadata_dict)

    write(out, flatbuffer, metadata_dict)
    try:
        loaded = Scorer.load(out)
    except ModelLoadError as exc:  # pragma: no cover - would mean write() is broken
        raise ModelImportError(f"the written files do not load: {exc}") from exc
    return ImportResult(out, loaded.metadata, max_diff, int(check32.shape[0]))


def write(out: Path, flatbuffer: bytes, metadata: dict[str, Any]) -> None:
    """The .tflite, then the metadata naming it, each written to a temporary file and renamed into place."""
    out.mkdir(parents=True, exist_ok=True)
    for name, content in (
        (TFLITE_FILE, flatbuffer),
        ("metadata.json", (json.dumps(metadata, indent=2) + "\n").encode()),
    ):
        with tempfile.NamedTemporaryFile(dir=out, prefix=f".{name}.", delete=False) as tmp:
            tmp.write(content)
        os.replace(tmp.name, out / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--saved-model", type=Path, required=True, help="the SavedModel directory")
    parser.add_argument("--config", type=Path, required=True, help="the import config (JSON)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "model", help="where model.tflite + metadata.json go")
    args = parser.parse_args(argv)
    # TensorFlow's Python-side warnings say nothing a user can act on here: a TF1 SavedModel logs "Unable to create
    # a python object for variable ... reference variable" for every variable, at every load (ten lines and more).
    # Its errors still show; its C++ side is quiet by TF_CPP_MIN_LOG_LEVEL=2, LiteRT's delegate line is dropped.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        config = load_config(args.config)
        with native_stderr_without(NATIVE_NOISE):
            result = import_model(args.saved_model, config, args.out)
    except ModelImportError as exc:
        print(f"import-model: {exc}", file=sys.stderr)
        return 2
    meta = result.metadata
    summary: dict[str, Any] = {
        "out": str(result.out),
        "model_version": meta.model_version,
        "features": meta.n_features,
        "probability": probability_json(meta.probability),
        "standardize": meta.preprocessing.standardize is not None,
        "parity": (meta.model_extra or {}).get("reference", {}).get("parity"),
    }
    if metrics_ := (meta.model_extra or {}).get("reference", {}).get("metrics"):
        summary["metrics"] = metrics_
    performance = (meta.model_extra or {}).get("reference", {}).get("performance") or {}
    summary["performance"] = performance
    summary["monitoring"] = (
        describe(meta.monitoring)
        if meta.monitoring is not None
        else "none: no reference rows (reference_csv or standardize.fit_csv), so no file is monitored"
    )
    if performance.get("problems"):
        print(
            "import-model: warning: imported although it scores the real rows wrong "
            '("accept_poor_reference_performance": true): ' + "; ".join(performance["problems"]),
            file=sys.stderr,
        )
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
