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
of the champion's scoring time. Wall time, on whatever CPUs the machine gives (printed).

``--pipeline``: also the whole pipeline on a ``--rows``-row benchmark file (bench_e2e.py's measurement: the
handler, warm, in a fresh process), without and with a challenger (``CHALLENGER_MODEL_DIR``: the shipped model
under another version), alternating, ``--rounds`` each: what the challenger adds to a file's load.
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


def _pipeline(rows: int, rounds: int, files_dir: Path) -> dict[str, object]:
    """The pipeline on one file without and with a challenger, alternating; medians and the added share."""
    import shutil
    import tempfile

    from benchmarks.e2e_harness import median_of, run_child, running_stack
    from tools.make_files import ensure_file

    with tempfile.TemporaryDirectory() as tmp:
        challenger = Path(tmp) / "challenger"
        challenger.mkdir()
        shutil.copy2(ROOT / "model" / "model.tflite", challenger / "model.tflite")
        metadata = json.loads((ROOT / "model" / "metadata.json").read_text())
        (challenger / "metadata.json").write_text(json.dumps(metadata | {"model_version": "challenger-copy"}))
        path = ensure_file(rows, out_dir=files_dir)
        runs: dict[str, list[dict[str, object]]] = {"without": [], "with": []}
        with running_stack() as stack:
            event = stack.upload(path, f"bench/challenger-{rows}.csv")
            for r in range(rounds):
                runs["without"].append(run_child(stack, "pipeline", event))
                runs["with"].append(run_child(stack, "pipeline", event, env={"CHALLENGER_MODEL_DIR": challenger}))
                print(f"  round {r + 1}: pipeline {runs['without'][-1]['seconds']:.2f} s without, "
                      f"{runs['with'][-1]['seconds']:.2f} s with a challenger", flush=True)  # fmt: skip
    medians = {kind: median_of(values) for kind, values in runs.items()}  # type: ignore[arg-type]
    stages = {
        kind: {k: statistics.median(r["stages"][k] for r in values) for k in ("score", "challenger")}  # type: ignore[index]
        for kind, values in runs.items()
    }
    added = medians["with"] / medians["without"] - 1
    scoring_with = stages["with"]["score"] + stages["with"]["challenger"]
    scoring_added = scoring_with / stages["without"]["score"] - 1
    print(f"scoring stages inside the pipeline: {stages['without']['score']:.3f} s without, {scoring_with:.3f} s with "
          f"(score + challenger stages: {scoring_added:+.1%})")  # fmt: skip
    print(f"pipeline on {rows:,} rows: {medians['without']:.2f} s without, {medians['with']:.2f} s with a challenger "
          f"({added:+.1%}); stages with: score {stages['with']['score']:.3f} s, challenger "
          f"{stages['with']['challenger']:.3f} s")  # fmt: skip
    return {
        "median_s": medians,
        "stages_median_s": stages,
        "added": added,
        "scoring_stages_added": scoring_added,
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="JSON report")
    parser.add_argument("--pipeline", action="store_true", help="also the whole pipeline, without and with")
    parser.add_argument("--rounds", type=int, default=3, help="pipeline runs of each kind (--pipeline)")
    parser.add_argument("--files-dir", type=Path, default=ROOT / "benchmarks" / "files")
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
            challenger.scorer.score_checked(chunk)  # as the shadow does: the champion validated the chunk

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
    if args.pipeline:
        report["pipeline"] = _pipeline(args.rows, args.rounds, args.files_dir)
    if args.out is not None:
        write_report(args.out, report)
    else:
        print(json.dumps({"extra_vs_champion": extra}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
