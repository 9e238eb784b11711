"""Per-file monitoring (src/monitoring/) measured: false alarms, detection, the label-free accuracy estimate, cost.

1. **False alarms by file size** (20 ... 100,000 rows): the share of unchanged files with drift detected, with
   its 95 % Wilson interval; goal <= 1 %. The reference (``build_profile``): model/train.py's 455 training rows
   (its split, recomputed: importing model/train.py loads TensorFlow), calibrated on the 569 labelled rows. Four
   nulls: files resampled from the whole sample; from the reference rows themselves; the shipped profile
   (model/metadata.json's, the import's: the 569 labelled rows) with files resampled from the sample; and a fresh
   reference and a file drawn independently from one smoothed population (a real row plus 5 % jitter), the only
   one where the file shares no row with the reference, i.e. where the test's nominal level applies as such.
2. **Detection by size**: mean radius / 10 (a unit error) and mean texture + 0.5 sd, in files resampled from the
   sample; the share detected, and the share whose DRIFTED_FEATURES names the altered column. Goal: the unit
   error detected and named in >= 90 % of 200-row files.
3. **The project model's accuracy estimate** on 300-row files (the whole sample, the largest tumours, the
   held-out rows), against the truth (sklearn's labels): MAE, coverage of the 95 % interval; goal MAE <= 0.03.
4. **A weak model under covariate shift** (monitoring_weak.py): MAE (goal <= 0.05), coverage, and whether the
   estimate ranks files as the truth does (Spearman); once through the real import as well.
5. **Cost** (monitoring_cost.py): FileMonitor on ``--cost-rows`` rows against the pipeline on the same number
   of rows, measured in the same run; goal <= 3 %.

Every file goes through ``monitoring.FileMonitor`` in the pipeline's chunks, with profiles from
``monitoring.profile.build_profile`` (or the import's): the code the function and the import run.

Not ``benchmarks/monitoring.py``: a script's own folder comes first on ``sys.path``, so a monitoring.py in
benchmarks/ would shadow src/monitoring for every benchmark run as a script (bench_e2e.py's measured children
among them).

Run: ``PYTHONPATH=src:. .venv/bin/python benchmarks/bench_monitoring.py [--smoke]`` (a few minutes on 2 vCPUs).
Writes benchmarks/out/monitoring.json (``--json PATH``) and the plots docs/monitoring-drift.png and
docs/monitoring-accuracy.png (``--plots-dir``; a smoke run writes them next to its JSON).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
for _p in (REPO_ROOT / "src", REPO_ROOT):  # runnable as a plain script
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from benchmarks.machine import machine_info  # noqa: E402
from benchmarks.monitoring_cost import COST_GOAL, cost  # noqa: E402
from benchmarks.monitoring_plots import plot_accuracy, plot_drift  # noqa: E402
from benchmarks.monitoring_stats import (  # noqa: E402
    CHUNK_ROWS,
    FALSE_ALARM_GOAL,
    Data,
    Estimates,
    drift_rates,
    load_data,
    project_accuracy,
    rank_agreement,
    split_maes,
)
from benchmarks.monitoring_weak import WEAK_FEATURES, weak_model_accuracy, weak_via_import  # noqa: E402
from benchmarks.report import verdict, write_report  # noqa: E402

SIZES = (20, 50, 200, 1_000, 10_000, 100_000)
NULLS = ("null_sample", "null_reference", "null_shipped", "null_independent")
ALTERED = ("unit_error", "shift")
DETECTION_GOAL, DETECTION_AT = 0.90, 200
PROJECT_MAE_GOAL, WEAK_MAE_GOAL = 0.03, 0.05
PARTS = "12345"
SMOKE = " (SMOKE: counts too small to mean anything)"
OUT = REPO_ROOT / "benchmarks" / "out" / "monitoring.json"


def pct(r: dict[str, Any]) -> str:
    return f"{100 * r['rate']:5.1f} % [{100 * r['low']:.1f}, {100 * r['high']:.1f}]"


def print_drift(drift: dict[str, dict[int, dict[str, Any]]], files: dict[int, int]) -> None:
    nulls = [n for n in NULLS if n in drift]
    if nulls:
        print("\n1. False alarms: unchanged files with drift detected (95 % Wilson interval); goal <= 1 %")
        for i, name in enumerate(nulls):
            print(f"   ({chr(97 + i)}) {drift[name][SIZES[0]]['title']}")
        print(f"{'rows':>8} {'files':>6}  " + "".join(f"{'(' + chr(97 + i) + ')':<26}" for i in range(len(nulls))))
        for size in files:
            print(f"{size:>8,} {files[size]:>6}  " + "".join(f"{pct(drift[n][size]['detected']):<26}" for n in nulls))
    altered = [n for n in ALTERED if n in drift]
    if altered:
        print("\n2. Detection: altered files with drift detected; named: DRIFTED_FEATURES lists the altered column;")
        print("   other: it lists another column too")
    for name in altered:
        first = drift[name][SIZES[0]]
        print(f"   {first['title']} ({first['target']})")
        print(f"{'rows':>8} {'files':>6}  {'detected':<24}{'named':<24}{'other named':<24}")
        for size in files:
            r = drift[name][size]
            print(
                f"{size:>8,} {files[size]:>6}  {pct(r['detected']):<24}{pct(r['target_named']):<24}"
                f"{pct(r['other_named']):<24}"
            )


def print_estimates(title: str, summary: dict[str, Any], oracle: bool = False) -> None:
    print(title)
    head = f"{'file type':<42}{'files':>6}{'truth':>8}{'estimate':>10}{'interval (mean)':>18}{'|error|':>9}"
    head += f"{'bias':>8}{'covered':>9}{'drift':>7}" + (f"{'oracle |err|':>13}" if oracle else "")
    print(head)
    for name, k in summary["by_kind"].items():
        line = (
            f"{name:<42}{k['files']:>6}{k['truth_mean']:>8.3f}{k['estimate_mean']:>10.3f}"
            f"{f'[{k["low_mean"]:.3f}, {k["high_mean"]:.3f}]':>18}{k['mae']:>9.4f}{k['bias']:>+8.4f}"
            f"{k['coverage']:>8.0%} {k['drift_detected']:>6.0%}"
        )
        if oracle:
            line += f"{k.get('oracle_mae', float('nan')):>13.4f}"
        print(line)
    print(f"{'all':<42}{summary['files']:>6}{'':>36}{summary['mae']:>9.4f}{'':>8}{summary['coverage']:>8.0%}")


def goals(report: dict[str, Any], files: dict[int, int]) -> list[tuple[str, str, bool]]:
    out = []
    drift = report.get("drift", {})
    for name in (n for n in NULLS if n in drift):
        worst = max(files, key=lambda s: drift[name][s]["detected"]["rate"])
        r = drift[name][worst]["detected"]
        above = r["rate"] > FALSE_ALARM_GOAL
        out.append(
            (
                f"false alarms <= 1 % at every size: {drift[name][SIZES[0]]['title']}",
                f"worst {r['count']} of {r['files']} files ({100 * r['rate']:.2f} % [{100 * r['low']:.2f}, "
                f"{100 * r['high']:.2f}]) at {worst:,} rows"
                + (f"; {'' if r['low'] > FALSE_ALARM_GOAL else 'not '}significantly above 1 %" if above else ""),
                not above,
            )
        )
    if "unit_error" in drift and DETECTION_AT in files:
        named = drift["unit_error"][DETECTION_AT]["target_named"]
        out.append(
            (
                f"unit error detected and named in >= 90 % of {DETECTION_AT}-row files",
                f"{100 * named['rate']:.1f} % [{100 * named['low']:.1f}, {100 * named['high']:.1f}]",
                named["rate"] >= DETECTION_GOAL,
            )
        )
    for name, k in report.get("project_accuracy", {}).get("by_kind", {}).items():
        out.append(
            (f"project model MAE <= {PROJECT_MAE_GOAL}: {name}", f"{k['mae']:.4f}", k["mae"] <= PROJECT_MAE_GOAL)
        )
    if "weak_model" in report:
        weak = report["weak_model"]
        maes = weak["split_mae"]
        out.append(
            (
                f"weak model MAE <= {WEAK_MAE_GOAL} (all files, {weak['splits']} splits)",
                f"{weak['summary']['mae']:.4f} (per split {min(maes):.4f} .. {max(maes):.4f})",
                weak["summary"]["mae"] <= WEAK_MAE_GOAL,
            )
        )
        ranks = weak["spearman"]
        out.append(
            (
                "weak model: file types ranked as the truth ranks them (Spearman of the means = 1)",
                f"{ranks['splits_with_types_ranked_as_truth']} of {ranks['splits']} splits; files: Spearman "
                f"{ranks['files_pooled']:.3f} pooled, {min(ranks['files_within_split']):.3f} .. "
                f"{max(ranks['files_within_split']):.3f} within a split",
                ranks["splits_with_types_ranked_as_truth"] == ranks["splits"],
            )
        )
    c = report.get("cost", {})
    if "share_thread_cpu" in c:
        out.append(
            (
                f"monitoring's CPU time inside the pipeline <= 3 % of its time ({c['rows']:,} rows)",
                f"{100 * c['share_thread_cpu']:.2f} % ({c['monitor_thread_cpu_median_s']:.3f} s / "
                f"{c['pipeline_median_s']:.2f} s; the monitor stage's wall time {100 * c['share_stage']:.2f} %; "
                f"{100 * c['share_of_function_cpu']:.1f} % of the function's CPU time)",
                c["share_thread_cpu"] <= COST_GOAL,
            )
        )
    if "share_alone" in c:
        out.append(
            (
                "the same calls alone, on reused memory, <= 3 % of the pipeline's time",
                f"{100 * c['share_alone']:.2f} % ({c['monitor_alone_median_s']:.3f} s)",
                c["share_alone"] <= COST_GOAL,
            )
        )
    return out


def describe_data(data: Data) -> list[str]:
    cal = data.profile.calibration
    lines = [
        f"model {data.model_version}; accuracy on the 569 labelled rows {data.model_accuracy:.4f}",
        f"reference: {data.profile.rows_from}; calibration: {cal.rows_from if cal else None}"
        + (f" (slope {cal.slope:.4f}, intercept {cal.intercept:.4f})" if cal else ""),
    ]
    if data.shipped is not None:
        same = data.shipped.calibration is not None and cal is not None
        same = same and abs(data.shipped.calibration.slope - cal.slope) < 1e-6  # type: ignore[union-attr]
        lines.append(
            f"shipped profile (model/metadata.json): {data.shipped.rows} rows from {data.shipped.rows_from}; "
            f"its calibration {'is the same' if same else 'DIFFERS'}"
        )
    return lines


def plot(report: dict[str, Any], plots_dir: Path) -> None:
    """The two plots, from a report (this run's, or one read back from its JSON)."""
    points = report["weak_model"]["points"]
    weak = Estimates(
        points["kinds"], points["truth"], points["estimate"], [], [], points["kind"], points["split"], [], []
    )
    plots_dir.mkdir(parents=True, exist_ok=True)
    for path in (
        plot_drift(report["drift"], plots_dir / "monitoring-drift.png"),
        plot_accuracy(weak, plots_dir / "monitoring-accuracy.png"),
    ):
        print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000, help="files per scenario for 20 ... 1,000 rows")
    parser.add_argument("--files-10k", type=int, default=300, help="files per scenario of 10,000 rows")
    parser.add_argument("--files-100k", type=int, default=100, help="files per scenario of 100,000 rows")
    parser.add_argument("--accuracy-files", type=int, default=1000, help="files per file type (3.)")
    parser.add_argument("--weak-splits", type=int, default=20, help="random half/half splits (4.)")
    parser.add_argument("--weak-files", type=int, default=100, help="files per file type and split (4.)")
    parser.add_argument("--no-import", action="store_true", help="4.: skip the pass through the real import")
    parser.add_argument("--cost-rows", type=int, default=1_000_000)
    parser.add_argument("--cost-rounds", type=int, default=3, help="pipeline runs (each followed by the monitor's)")
    parser.add_argument("--monitor-repeats", type=int, default=3, help="monitor timings per round")
    parser.add_argument("--no-e2e", action="store_true", help="5.: time the monitor only, no pipeline run")
    parser.add_argument("--no-pin", action="store_true", help="5.: the pipeline and the local stack share the CPUs")
    parser.add_argument("--files-dir", type=Path, default=REPO_ROOT / "benchmarks" / "out" / "files")
    parser.add_argument("--seed", type=int, default=20261206)
    parser.add_argument("--smoke", "--quick", action="store_true", help="tiny counts: that it runs, no figures")
    parser.add_argument("--json", type=Path, default=OUT)
    parser.add_argument("--plots-dir", type=Path, help="default: docs/ (a smoke run: the JSON's folder)")
    parser.add_argument("--plot", action="store_true", help="only draw the plots from the JSON (--json) and exit")
    parser.add_argument("--parts", default=PARTS, help=f"which of the parts {', '.join(PARTS)} to run (default: all)")
    parser.add_argument("--scenarios", nargs="+", choices=[*NULLS, *ALTERED], help="parts 1 and 2: only these")
    args = parser.parse_args(argv)
    if args.plot:
        plot(json.loads(args.json.read_text(encoding="utf-8")), args.plots_dir or REPO_ROOT / "docs")
        return 0
    if args.smoke:
        args.files, args.files_10k, args.files_100k = 20, 4, 2
        args.accuracy_files, args.weak_splits, args.weak_files = 10, 2, 5
        args.cost_rows, args.cost_rounds, args.monitor_repeats = 20_000, 1, 1
        args.no_import = True
    plots_dir = args.plots_dir or (args.json.parent if args.smoke else REPO_ROOT / "docs")
    files = {s: args.files if s <= 1_000 else args.files_10k if s <= 10_000 else args.files_100k for s in SIZES}
    started = time.perf_counter()
    machine = machine_info()
    print(
        f"Monitoring benchmark, {datetime.date.today()}, seed {args.seed}{SMOKE if args.smoke else ''}\n"
        f"machine: {machine['nproc']} CPUs ({machine['cpu_model']}), load average "
        f"{' / '.join(f'{x:.1f}' for x in machine['load_average_at_start'])}: a shared, noisy machine (times vary)"
    )
    data = load_data()
    for line in describe_data(data):
        print(line)

    report: dict[str, Any] = {
        "machine": machine,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "data": describe_data(data),
        "files_per_size": files,
    }
    wanted = {
        n for n in (*NULLS, *ALTERED) if (n in NULLS and "1" in args.parts) or (n in ALTERED and "2" in args.parts)
    }
    if args.scenarios:
        wanted &= set(args.scenarios)
    if wanted:
        t0 = time.perf_counter()
        report["drift"] = drift_rates(data, SIZES, files.__getitem__, args.seed, wanted)
        print_drift(report["drift"], files)
        print(f"   ({time.perf_counter() - t0:.0f} s)")
    if "3" in args.parts:
        report["project_accuracy"] = project_accuracy(data, args.accuracy_files, args.seed).summary()
        print_estimates(
            f"\n3. The project model's accuracy estimate, 300-row files; goal MAE <= {PROJECT_MAE_GOAL} "
            "(|error| = MAE; covered: truth inside the interval; drift: drift detected)",
            report["project_accuracy"],
        )
    if "4" in args.parts:
        report["weak_model"] = weak_part(data, args)
    if "5" in args.parts:
        report["cost"] = cost_part(data, args)

    table = goals(report, files)
    report["goals"] = [{"goal": g, "measured": m, "met": ok} for g, m, ok in table]
    print("\nGoals" + (" (SMOKE run: verdicts from tiny counts)" if args.smoke else ""))
    width = max((len(g) for g, _, _ in table), default=0)
    for g, m, ok in table:
        print(f"  {g:<{width}}  {verdict(ok)}  {m}")
    report["seconds"] = time.perf_counter() - started
    write_report(args.json, report)
    if set(args.parts) == set(PARTS) and not args.scenarios:
        plot(report, plots_dir)
    else:
        print("plots: drawn by full runs only (every part, every scenario)")
    print(f"({report['seconds']:.0f} s)")
    return 0


def weak_part(data: Data, args: argparse.Namespace) -> dict[str, Any]:
    weak, models = weak_model_accuracy(data, args.weak_splits, args.weak_files, args.seed)
    ranks = rank_agreement(weak)
    out: dict[str, Any] = {
        "features": list(WEAK_FEATURES),
        "splits": args.weak_splits,
        "files_per_type_and_split": args.weak_files,
        "summary": weak.summary(),
        "split_mae": split_maes(weak),
        "spearman": ranks,
        "models": models,
        "points": {k: getattr(weak, k) for k in ("kinds", "truth", "estimate", "kind", "split")},
    }
    accuracy_b = [m["accuracy_half_b"] for m in models]
    print_estimates(
        f"\n4. A weak model ({', '.join(WEAK_FEATURES)}; accuracy on half B "
        f"{min(accuracy_b):.3f} .. {max(accuracy_b):.3f} over {args.weak_splits} splits), 300-row files from half B, "
        f"{args.weak_files} per type and split; goal MAE <= {WEAK_MAE_GOAL}\n"
        "   (oracle |err|: the same estimator calibrated on half B's own labels)",
        out["summary"],
        oracle=True,
    )
    print(
        f"   MAE per split {min(out['split_mae']):.4f} .. {max(out['split_mae']):.4f}; Spearman "
        f"(estimate, truth): files pooled {ranks['files_pooled']:.3f}, within a split "
        f"{min(ranks['files_within_split']):.3f} .. {max(ranks['files_within_split']):.3f}; type means ranked as "
        f"the truth in {ranks['splits_with_types_ranked_as_truth']} of {ranks['splits']} splits"
    )
    if args.no_import:
        out["via_import"] = "not run (--no-import)"
        print("   through the real import: not run (--no-import); the profiles above come from build_profile")
        return out
    via = weak_via_import(data, args.seed, args.weak_files)
    estimates = via.pop("estimates")
    via["points"] = {"truth": estimates.truth, "estimate": estimates.estimate}
    out["via_import"] = via
    print(
        f"   through the real import (split 0: tf.Module SavedModel -> import_model with half A as a labelled "
        f"reference_csv, {via['import_seconds']:.0f} s; its .tflite scores the files, its profile monitors them): "
        f"MAE {via['summary']['mae']:.4f} over {via['files']} files; largest |estimate - build_profile's| "
        f"{via['max_abs_estimate_difference_vs_build_profile']:.2g}"
    )
    return out


def cost_part(data: Data, args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n5. Cost: FileMonitor on {args.cost_rows:,} rows vs the pipeline on {args.cost_rows:,} rows")
    costs = cost(
        data,
        args.cost_rows,
        args.cost_rounds,
        args.monitor_repeats,
        args.files_dir,
        not args.no_e2e,
        args.seed,
        pin=not args.no_pin,
    )
    line = f"   monitor alone (add x{-(-args.cost_rows // CHUNK_ROWS)} + result): "
    line += f"median {costs['monitor_alone_median_s']:.3f} s"
    if "pipeline_median_s" in costs:
        line += f"; pipeline median {costs['pipeline_median_s']:.2f} s: {100 * costs['share_alone']:.2f} %"
        if costs["share_stage"] is not None:
            line += f"; the pipeline's own monitor stage {100 * costs['share_stage']:.2f} % (wall time), "
            line += f"{100 * costs['share_thread_cpu']:.2f} % (its thread's CPU time)"
    print(line)
    return costs


if __name__ == "__main__":
    sys.exit(main())
