"""bench_e2e.py --plausibility: what the implausible-values check costs (with vs without it, and a worst case)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks import e2e_harness
from benchmarks.e2e_harness import REPO_ROOT, median_of, run_child, running_stack
from benchmarks.machine import machine_info
from benchmarks.report import verdict

GOAL_CHECK_SHARE = 0.05


def _unchecked_model(directory: Path) -> Path:
    """A copy of the committed model whose metadata has no domain and no training range (the check is a no-op)."""
    import shutil

    model = REPO_ROOT / "model"
    meta = json.loads((model / "metadata.json").read_text(encoding="utf-8"))
    for feature in meta["features"]:
        feature.pop("domain", None)
        feature.pop("training_range", None)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(model / meta["tflite_file"], directory / meta["tflite_file"])
    (directory / "metadata.json").write_text(json.dumps(meta), encoding="utf-8")
    return directory


def _check_worst_case(rows: int, chunk_rows: int = 200_000) -> dict[str, Any]:
    """The check alone on ``rows`` resampled real rows with 1 % of them beyond the margin in every feature."""
    import numpy as np

    from pipeline.features import ConvertedFeatures
    from pipeline.plausibility import plausibility_check
    from pipeline.settings import Settings
    from scoring import ModelMetadata

    meta = ModelMetadata.load(REPO_ROOT / "model" / "metadata.json")
    settings = Settings(secret_name="x", database="D", schema_name="S")
    check = plausibility_check(meta, settings)
    rng = np.random.default_rng(3)
    highs = np.array([f.training_range.max * 10 for f in meta.features if f.training_range is not None])
    seconds = 0.0
    flagged = 0
    # Untimed first call, as the function's warm_up makes one at init: the first flagged chunk's pa.array imports
    # pandas inside pyarrow (1.3 s here), which the function has imported long before.
    starts = [0, *range(0, rows, chunk_rows)]
    for k, start in enumerate(starts):
        n = min(chunk_rows, rows - start)
        values = np.asfortranarray(rng.uniform(0.5, 1.0, (n, meta.n_features)) * highs / 10)
        out = rng.random((n, meta.n_features)) < 0.01 / meta.n_features
        values[out] = np.broadcast_to(highs, (n, meta.n_features))[out]
        converted = ConvertedFeatures(values=values, ok=np.ones(n, bool), blank=np.zeros(n, bool), problems=[])
        t0 = time.perf_counter()
        checked = check.check(converted)
        checked.flag_column()
        if k > 0:
            seconds += time.perf_counter() - t0
            flagged += checked.rows_flagged
    return {"rows": rows, "rows_flagged": flagged, "seconds": seconds}


def plausibility_cost(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    from tools.make_files import ensure_file

    rows = args.rows
    path = ensure_file(rows, out_dir=args.files_dir)
    load_before = list(os.getloadavg())  # machine_info() is read after the runs
    runs: dict[str, list[dict[str, Any]]] = {"checked": [], "unchecked": []}
    with tempfile.TemporaryDirectory() as tmp, running_stack() as stack:
        unchecked = _unchecked_model(Path(tmp) / "model")
        event = stack.upload(path, f"bench/plausibility-{rows}.csv")
        for r in range(args.repeats):
            for kind in ("checked", "unchecked") if r % 2 == 0 else ("unchecked", "checked"):
                env = {} if kind == "checked" else {"MODEL_DIR": str(unchecked)}
                res = run_child(stack, "pipeline", event, env=env)
                runs[kind].append(res)
                print(
                    f"  {kind:<9} run {r + 1}: {res['seconds']:.2f} s (check stage {res['stages']['check']:.3f} s, "
                    f"{res['rows_flagged']} rows flagged)",
                    flush=True,
                )
    checked_s, unchecked_s = median_of(runs["checked"]), median_of(runs["unchecked"])
    check_s = statistics.median(r["stages"]["check"] for r in runs["checked"])
    worst = _check_worst_case(rows)
    spread = {k: (max(r["seconds"] for r in v) - min(r["seconds"] for r in v)) / median_of(v) for k, v in runs.items()}
    share = check_s / checked_s
    worst_share = worst["seconds"] / checked_s
    report = {
        "machine": machine_info(),
        "config": {"rows": rows, "repeats": args.repeats, "quick": args.quick, "cpus": e2e_harness.CPU_PLAN.describe()},
        "median_seconds": {"checked": checked_s, "unchecked": unchecked_s},
        "difference": (checked_s - unchecked_s) / unchecked_s,
        "spread_of_runs": spread,
        "check_stage_median_s": check_s,
        "check_share_of_pipeline": share,
        "worst_case_check": worst | {"share_of_pipeline": worst_share},
        "goals": {"check_lt_5pct": share < GOAL_CHECK_SHARE and worst_share < GOAL_CHECK_SHARE},
        "runs": runs,
        "load_average_before_runs": load_before,
        "load_average_after_runs": list(os.getloadavg()),
    }
    print(f"\nPlausibility check, {rows:,} rows, medians of {args.repeats} interleaved runs each")
    print(f"pipeline with the check   {checked_s:.2f} s (runs spread {spread['checked']:.0%} of the median)")
    print(f"pipeline without it       {unchecked_s:.2f} s (runs spread {spread['unchecked']:.0%} of the median)")
    print(f"difference                {report['difference']:+.1%} (within the runs' spread: noise)")
    print(f"check stage               {check_s * 1000:.1f} ms = {share:.2%} of the pipeline")
    print(
        f"worst case (1 % of rows flagged, every feature masked): {worst['seconds'] * 1000:.1f} ms for "
        f"{worst['rows_flagged']:,} flagged rows = {worst_share:.2%} of the pipeline"
    )
    print(f"check < {GOAL_CHECK_SHARE:.0%} of the pipeline: {verdict(report['goals']['check_lt_5pct'])}")
    return report
