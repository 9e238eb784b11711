"""Init warm-up: one synthetic row through convert, score and output, at container start, not on the first event."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline.features import convert_features
from pipeline.output import OutputLayout
from pipeline.plausibility import plausibility_check
from pipeline.ports import Warehouse
from pipeline.settings import LoadMode, Settings
from scoring import Scorer


def warm_up(scorer: Scorer, settings: Settings, warehouse: Warehouse | None = None) -> pd.DataFrame:
    """Run one synthetic row through convert, check, score, output and the warehouse's staging format; return its frame.

    The first call of a pyarrow compute function and the scorer's first invocation each cost up to a second once
    per process, as do the warehouse's first staging write (Warehouse.warm_up); paying that here moves it into
    Lambda's init phase. Nothing is read or written outside this process. The synthetic file's header has only the
    features, so the layout is built as for an append (upsert keys such as SAMPLE_ID are not in it).
    """
    names = scorer.metadata.feature_names
    table = pa.table({n: pa.array(["1"], pa.string()) for n in names})
    checked = plausibility_check(scorer.metadata, settings).check(convert_features(table, names))
    converted = checked.converted
    scores = scorer.score(converted.model_input())
    layout = OutputLayout(
        names, scorer.metadata, settings.model_copy(update={"load_mode": LoadMode.APPEND, "merge_keys": []})
    )
    frame = layout.frame({}, converted.good_values, scores, np.array([2], np.int64), checked.flag_column())
    if warehouse is not None:
        warehouse.warm_up(frame)
    return frame
