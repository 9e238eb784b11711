"""How far real, unseen rows fall beyond a training range: the measurement behind OUT_OF_RANGE_MARGIN's default.

A row is flagged when a value lies further beyond its feature's training min/max than the margin times the range
(max - min). Too small a margin flags genuine tumours the model simply did not see; too large one lets absurd
values through. Measured here on the 569 real rows of ``data/breast_cancer.csv``:

1. **the committed model's split**: how far the 114 held-out rows lie beyond the training range in
   ``model/metadata.json`` (the 455 rows it was trained on). The sample export must produce no flag, so the
   margin must exceed the worst of these;
2. **random splits**: ``--splits`` random 455/114 splits; for each margin, the share of unseen real rows that
   would be flagged, and the share of splits that would flag any;
3. **jittered resamples**: ``--rows`` rows, each a real row plus Gaussian jitter of a fraction of each feature's
   standard deviation (5 %, as tools/make_files.py, 10 % and 25 %; unclipped, unlike make_files), measured
   against the committed training range: the share flagged at each margin;
4. **an implausible value**: how far a mean area of 1,000,000 lies beyond the range (a margin
   below that flags it).

Run: ``PYTHONPATH=src:. .venv/bin/python benchmarks/out_of_range_margin.py [--quick]``.
Writes benchmarks/out/out_of_range_margin.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REPO_ROOT = Path(__file__).resolve().parent.parent
for _p in (REPO_ROOT / "src", REPO_ROOT):  # runnable as a plain script
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from pipeline.settings import DEFAULT_OUT_OF_RANGE_MARGIN  # noqa: E402
from scoring import ModelMetadata  # noqa: E402

SAMPLE = REPO_ROOT / "data" / "breast_cancer.csv"
METADATA = REPO_ROOT / "model" / "metadata.json"
OUT = REPO_ROOT / "benchmarks" / "out" / "out_of_range_margin.json"
MARGINS = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
JITTERS = (0.05, 0.10, 0.25)


def excess(values: npt.NDArray[np.float64], low: npt.NDArray[np.float64], high: npt.NDArray[np.float64]) -> Any:
    """Per row, how far its furthest value lies beyond [low, high], in units of the range (0 when inside)."""
    spread = high - low
    beyond = np.maximum((low - values) / spread, (values - high) / spread)
    return np.maximum(beyond.max(axis=1), 0.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="200 splits, 20,000 jittered rows")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.quick:
        args.splits, args.rows = 200, 20_000

    with SAMPLE.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    names = rows[0][1:]
    x = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    meta = ModelMetadata.load(METADATA)
    assert meta.feature_names == names
    ranges = [f.training_range for f in meta.features]
    assert all(r is not None for r in ranges), "model/metadata.json has no training ranges"
    low = np.array([r.min for r in ranges if r is not None])
    high = np.array([r.max for r in ranges if r is not None])
    rng = np.random.default_rng(args.seed)

    # 1. the committed split
    held_out = excess(x[meta.held_out_indices], low, high)
    per_feature = np.max(
        np.maximum((low - x[meta.held_out_indices]) / (high - low), (x[meta.held_out_indices] - high) / (high - low)),
        axis=0,
    )
    worst = sorted(zip(names, per_feature.tolist(), strict=True), key=lambda t: -t[1])[:3]

    # 2. random splits
    n_train = len(x) - len(meta.held_out_indices)
    unseen, split_worst = [], []
    for _ in range(args.splits):
        order = rng.permutation(len(x))
        train, test = x[order[:n_train]], x[order[n_train:]]
        e = excess(test, train.min(axis=0), train.max(axis=0))
        unseen.append(e)
        split_worst.append(e.max())
    unseen_all, split_worst_a = np.concatenate(unseen), np.array(split_worst)

    # 3. jittered resamples, against the committed range
    sd = x.std(axis=0)
    jittered: dict[float, dict[str, Any]] = {}
    for jitter in JITTERS:
        values = x[rng.integers(0, len(x), args.rows)] + rng.normal(0.0, 1.0, (args.rows, x.shape[1])) * sd * jitter
        e = excess(values, low, high)
        jittered[jitter] = {
            "max_excess": float(e.max()),
            "flagged_pct": {m: float(100 * (e > m).mean()) for m in MARGINS},
        }

    # 4. a huge mean area
    j = names.index("mean area")
    huge_area = float((1e6 - high[j]) / (high[j] - low[j]))

    report = {
        "default_margin": DEFAULT_OUT_OF_RANGE_MARGIN,
        "held_out_vs_training_range": {
            "rows": len(held_out),
            "rows_beyond_range": int((held_out > 0).sum()),
            "max_excess": float(held_out.max()),
            "worst_features": worst,
        },
        "random_splits": {
            "splits": args.splits,
            "unseen_rows_flagged_pct": {m: float(100 * (unseen_all > m).mean()) for m in MARGINS},
            "splits_with_a_flag_pct": {m: float(100 * (split_worst_a > m).mean()) for m in MARGINS},
            "worst_excess_median": float(np.median(split_worst_a)),
        },
        "jittered_rows": {"rows": args.rows, "by_jitter": jittered},
        "mean_area_1e6_excess": huge_area,
        "quick": args.quick,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    print(f"1. held-out rows ({len(held_out)}) beyond the committed training range: {int((held_out > 0).sum())}, ")
    print(f"   furthest {held_out.max():.3f} of a range ({', '.join(f'{n} {v:.3f}' for n, v in worst)})")
    print(f"2. {args.splits} random {n_train}/{len(x) - n_train} splits, by margin:")
    for m in MARGINS:
        print(
            f"   margin {m:<5g} unseen real rows flagged {100 * (unseen_all > m).mean():6.3f} %, "
            f"splits flagging any {100 * (split_worst_a > m).mean():5.1f} %"
        )
    print(f"3. {args.rows:,} jittered rows against the committed range:")
    for jitter, found in jittered.items():
        flagged = ", ".join(f"{m:g}: {p:.3f} %" for m, p in found["flagged_pct"].items())
        print(f"   jitter {jitter:.0%} of sd: furthest {found['max_excess']:.3f}; flagged by margin {flagged}")
    print(f"4. a mean area of 1,000,000 lies {huge_area:,.0f} ranges beyond the training max")
    verdict = held_out.max() < DEFAULT_OUT_OF_RANGE_MARGIN and huge_area > DEFAULT_OUT_OF_RANGE_MARGIN
    print(
        f"default margin {DEFAULT_OUT_OF_RANGE_MARGIN:g}: held-out rows unflagged and the huge area flagged: "
        f"{'PASS' if verdict else 'FAIL'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
