"""The reference profile per-file monitoring compares each load with (monitoring/, metadata.json's "monitoring").

Its rows: the ``reference_csv`` rows, else the ``standardize.fit_csv`` rows, else the rows ``make model`` trained
on. Its calibration (the label-free accuracy estimate): the ``reference_csv`` rows' labels, when the config names
``label_column``; without labels the model gets drift monitoring only, and the import says so.
"""

from __future__ import annotations

import numpy as np

from monitoring.profile import build_profile
from scoring import Scorer
from scoring.metadata import MonitoringProfile
from tools.model_import.config import ImportConfig
from tools.model_import.rows import Rows, TrainingRows, shown_path


def reference_profile(
    config: ImportConfig, reference: Rows | None, fit: Rows | None, training: TrainingRows | None, scorer: Scorer
) -> MonitoringProfile | None:
    """The profile, or None when the import has no real rows to take it from (nothing will be monitored)."""
    if reference is not None and config.reference_csv is not None:
        values, source = reference.values, f"reference_csv {shown_path(config.reference_csv)}"
    elif fit is not None and config.standardize is not None and config.standardize.fit_csv is not None:
        values, source = fit.values, f"standardize.fit_csv {shown_path(config.standardize.fit_csv)}"
    elif training is not None:
        values, source = training.values, training.source
    else:
        return None
    scores = scorer.score(np.ascontiguousarray(values, dtype=np.float32))
    scored = scores.scored  # a row the model gives no probability is never loaded, so never compared either
    if not scored.any():
        return None
    calibration = None
    if reference is not None and reference.labels is not None and config.reference_csv is not None:
        labelled = scores if values is reference.values else scorer.score(np.ascontiguousarray(reference.values))
        ok = labelled.scored
        calibration = (
            labelled.malignant_probability[ok],
            reference.labels[ok] == 1,
            f"reference_csv {shown_path(config.reference_csv)} (label_column {config.label_column!r})",
        )
    return build_profile(values[scored], source, scores.classification[scored] == 1, calibration)
