"""What a challenger in shadow costs the scoring stage (src/pipeline/challenger.py).

    PYTHONPATH=src:. .venv/bin/python benchmarks/challenger_cost.py [--rows 1000000] [--repeats 5] [--out FILE]

The same rows (the sample's, tiled to ``--rows``) are scored in chunks of CHUNK_ROWS, as the pipeline does, three
ways measured in the same run, alternating, median of ``--repeats``:

* **champion alone**: the baseline, ``Scorer.score`` per chunk;
* **in shadow**: as the pipeline does it: the chunk is handed to the challenger's thread, the champion scores it,
  then the challenger's result is collected (``Shadow.submit`` / ``Shadow.collect``);
* **one after the other**: the challenger scoring the chunk after the champion on the same thread (what the shadow
  would cost without its thread).

The challenger is a second copy of the shipped model (a model of the same size). Goal: in shadow, at most +30 %
of the champion's scoring time. Wall time, on whatever CPUs the machine gives (printed): the shadow's gain comes
from running the challenger on another core while the champion runs (LiteRT releases the GIL).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.report import verdict, write_report
from pipeline.challenger import Challenger, Shadow
from pipeline.settings import Settings
from scoring import Scorer

ROOT = Path(__file__).resolve().parents[1]
GOAL = 0.30


def _rows(n: int) -> np.ndarray:
    sample = np.genfromtxt(ROOT / "data" / "breast_cancer.csv", delimiter=",", skip_header=1)[:, 1:]
    reps = -(-n // sample.shape[0])
    return np.ascontiguousarray(np.tile(sample, (reps, 1))[:n], dtype=np.float32)


def _chunks(rows: np.ndarray, size: int) -> list[np.ndarray]:
    return [rows[i : i + size] for i in range(0, rows.shape[0], size)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="JSON report")
    args = parser.parse_args(argv)

    chunk_rows = Settings.model_fields["chunk_rows"].default
    chunks = _chunks(_rows(args.rows), chunk_rows)
    champion = Scorer.load(ROOT / "model")
    challenger = Challenger(Scorer.load(ROOT / "model"), champion.metadata)

    def alone() -> None:
        for chunk in chunks:
            champion.score(chunk)

    def in_shadow() -> None:
        shadow = Shadow(challenger)
        for chunk in chunks:
            pending = shadow.submit(chunk)
            scores = champion.score(chunk)
            shadow.collect(pending, scores, scores.scored)
        if shadow.failure is not None:
            raise SystemExit(f"the challenger failed: {shadow.failure}")

    def sequential() -> None:
        for chunk in chunks:
            champion.score(chunk)
            challenger.scorer.score(chunk)

    ways = {"champion alone": alone, "in shadow": in_shadow, "one after the other": sequential}
    for run in ways.values():  # warm: interpreters allocated at the chunk size
        run()
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.repeats):
        for name, run in ways.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    base = median["champion alone"]
    extra = {name: median[name] / base - 1 for name in ways}

    print(f"CPUs: {os.cpu_count()} (affinity {len(os.sched_getaffinity(0))}); rows {args.rows:,} in chunks of "
          f"{chunk_rows:,}; median of {args.repeats}")  # fmt: skip
    print(f"{'':22} {'seconds':>8} {'vs champion alone':>18}")
    for name in ways:
        print(f"{name:22} {median[name]:8.3f} {extra[name]:+17.1%}")
    ok = extra["in shadow"] <= GOAL
    print(f"goal: in shadow at most +{GOAL:.0%} of the champion's scoring time: {verdict(ok)}")
    report = {
        "rows": args.rows,
        "chunk_rows": chunk_rows,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "median_s": median,
        "runs_s": seconds,
        "extra_vs_champion": extra,
        "goal_shadow_le_30pct": ok,
    }
    if args.out is not None:
        write_report(args.out, report)
    else:
        print(json.dumps({"extra_vs_champion": extra}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
