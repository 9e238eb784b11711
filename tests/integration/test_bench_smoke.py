"""Smoke runs of the benchmark scripts: each --quick (or --smoke) run exits 0, prints its verdicts, writes its JSON.

The figures themselves are not checked (a smoke run is too small to mean anything); the full runs are in
docs/performance.md. The cold-start script's artifact part needs the built artifact: without one it reports
SKIPPED with the reason and only its first/second-invocation part runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH = REPO_ROOT / "benchmarks"


def _run(*args: str, timeout: int = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT)])}
    proc = subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_bench_scoring_quick_run(tmp_path: Path) -> None:
    out = tmp_path / "scoring.json"
    proc = _run(str(BENCH / "bench_scoring.py"), "--quick", "--out", str(out), timeout=60)
    stdout = proc.stdout
    assert "rows/s median" in stdout
    assert "vs per-row" in stdout
    for method in ("batched", "per-row", "numpy"):
        assert any(line.startswith(method + " ") for line in stdout.splitlines()), method
    assert "measured on" in stdout  # the per-row loop says how many rows it was timed on
    assert "batched >= numpy forward" in stdout
    assert "per-row loop" in stdout
    assert "max|numpy - batched|" in stdout

    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["config"]["quick"] is True
    assert report["goals"]["parity"] is True
    for result in report["results"].values():
        assert {"batched", "per-row", "numpy"} <= set(result)
        assert all(r["rows_per_s_median"] > 0 for r in result.values())


def test_make_files_writes_plain_and_gzip(tmp_path: Path) -> None:
    _run(
        str(REPO_ROOT / "tools" / "make_files.py"),
        "--rows",
        "1000",
        "--gzip",
        "--out-dir",
        str(tmp_path),
        "--bad-rate",
        "0.01",
    )
    plain = tmp_path / "rows-1000-bad0.01.csv"
    lines = plain.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1001
    assert lines[0].startswith("sample_id,mean radius,")
    ids = [line.split(",", 1)[0] for line in lines[1:]]
    assert len(set(ids)) == 1000
    assert (tmp_path / "rows-1000-bad0.01.csv.gz").stat().st_size < plain.stat().st_size


def test_bench_e2e_quick(tmp_path: Path) -> None:
    out = tmp_path / "e2e.json"
    proc = _run(str(BENCH / "bench_e2e.py"), "--quick", "--files-dir", str(tmp_path), "--out", str(out))
    for text in ("CPUs:", "speedup vs naive", "time vs floor", "pipeline stages", "extrapolated", "CPU (median s)"):
        assert text in proc.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report["pipeline_stages_median_s"]) == {
        "s3_read",
        "parse",
        "convert",
        "check",
        "score",
        "challenger",
        "monitor",
        "stage",
        "publish",
    }
    assert all(v > 0 for v in report["rows_per_s"].values())
    assert set(report["goals"]) == {"vs_naive_ge_10x", "vs_floor_le_1_3x"}
    assert all(report["cpu_median_s"][k]["function_cpu_s"] > 0 for k in ("pipeline", "floor"))


def test_bench_e2e_plausibility_quick(tmp_path: Path) -> None:
    out = tmp_path / "plausibility.json"
    proc = _run(
        str(BENCH / "bench_e2e.py"), "--quick", "--plausibility", "--files-dir", str(tmp_path), "--out", str(out)
    )
    for text in ("pipeline with the check", "pipeline without it", "check stage", "worst case", "of the pipeline:"):
        assert text in proc.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report["median_seconds"]) == {"checked", "unchecked"}
    assert report["check_stage_median_s"] > 0
    # the model without training ranges has nothing to flag (what its check costs is the benchmark's figure, not a
    # test's: a time bound here fails on a busy machine)
    assert all(r["rows_flagged"] == 0 for r in report["runs"]["unchecked"])
    assert report["worst_case_check"]["rows_flagged"] > 0


def test_out_of_range_margin_quick(tmp_path: Path) -> None:
    out = tmp_path / "margin.json"
    proc = _run(str(BENCH / "out_of_range_margin.py"), "--quick", "--out", str(out), timeout=120)
    assert "default margin 0.5: held-out rows unflagged and the huge area flagged: PASS" in proc.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["held_out_vs_training_range"]["max_excess"] < report["default_margin"]


def test_bench_monitoring_smoke(tmp_path: Path) -> None:
    # Given tiny file counts (--smoke), and the plots and JSON in a folder of the test's own
    out = tmp_path / "monitoring.json"

    # When the monitoring benchmark runs (the pipeline part on 20,000 rows)
    proc = _run(str(BENCH / "bench_monitoring.py"), "--smoke", "--files-dir", str(tmp_path), "--json", str(out))

    # Then it prints each part and its table of goals, and writes the plots and the JSON: that it runs, never what
    # it measured (tiny counts mean nothing; the full run's figures are in docs/performance.md)
    for text in ("1. False alarms", "2. Detection", "3. The project model", "4. A weak model", "5. Cost", "Goals"):
        assert text in proc.stdout, text
    goals = [line for line in proc.stdout.split("Goals", 1)[1].splitlines() if " PASS " in line or " FAIL " in line]
    assert len(goals) >= 8
    assert (tmp_path / "monitoring-drift.png").stat().st_size > 0
    assert (tmp_path / "monitoring-accuracy.png").stat().st_size > 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["config"]["smoke"] is True
    assert {"drift", "project_accuracy", "weak_model", "cost", "goals"} <= set(report)
    assert {"null_sample", "null_reference", "null_independent", "unit_error", "shift"} <= set(report["drift"])
    assert report["cost"]["pipeline_median_s"] > 0


def test_bench_e2e_memory_quick(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    proc = _run(
        str(BENCH / "bench_e2e.py"),
        "--quick",
        "--memory",
        "2000",
        "4000",
        "--files-dir",
        str(tmp_path),
        "--out",
        str(out),
    )
    assert "peak RSS ratio" in proc.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert len(report["results"]) == 4  # 2 sizes x plain/gzip
    assert all(r["peak_rss_mb"] > 0 for r in report["results"])


def test_cold_start_quick(tmp_path: Path) -> None:
    out = tmp_path / "cold.json"
    from tools.commands.artifact_checks import ARTIFACT

    sys.path.insert(0, str(BENCH.parent))
    from benchmarks.cold_start import artifact_problem

    problem = artifact_problem(ARTIFACT)
    args = ["--quick", "--out", str(out)] + (["--skip-artifact"] if problem else [])
    proc = _run(str(BENCH / "cold_start.py"), *args, timeout=300)
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["invocations"]["median_second_ms"] > 0
    if problem:
        pytest.skip(f"init-time part not run: {problem}")
    assert "ratio" in proc.stdout
    assert report["init"]["median_ms_with_bytecode"] > 0


def test_burst_quick_compare_and_its_db_check(tmp_path: Path) -> None:
    # Given a burst of 6 files, both publish modes, a low latency, and a folder for fakesnow's DuckDB file
    out, db_path = tmp_path / "burst.json", tmp_path / "db"
    args = ["--files", "6", "--compare", "--statement-latency", "0.01", "--transfer-latency", "0.04"]
    args += ["--batching-window", "1", "--db-path", str(db_path), "--json", str(out), "--quiet"]

    # When the benchmark runs
    proc = _run(str(BENCH / "burst.py"), *args, timeout=120)

    # Then each mode's figures are there, read from the tables: every file loaded once, nothing in the DLQ
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report["results"]) == {"per_file", "batched"}
    fields = {"files", "loaded_once", "duplicated_rows", "dlq", "errors_000625", "p50_seconds", "p95_seconds"}
    fields |= {"files_per_minute", "concurrency", "batch_publish", "round_trips_per_file"}
    for mode, result in report["results"].items():
        assert fields <= set(result), mode
        assert (result["files"], result["loaded_once"], result["duplicated_rows"], result["dlq"]) == (6, 6, 0, 0)
        assert result["batch_publish"] is (mode == "batched")
        assert 0 < result["p50_seconds"] <= result["p95_seconds"]
    assert report["ratio_files_per_minute"] > 0
    assert "batched / one file per transaction" in proc.stdout

    # And the printed check command, run on its own against the kept DuckDB file, finds the same
    db_file = db_path / "TUMOURS.db"
    assert db_file.exists() and str(db_file) in proc.stdout
    for mode in ("per_file", "batched"):
        check = next(line.strip() for line in proc.stdout.splitlines() if f"check-{mode}.sql" in line)
        command = check.replace(".venv/bin/python", sys.executable, 1)
        shown = subprocess.run(command, shell=True, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
        assert shown.stdout.strip() == "[(6, 6, 0)]", shown.stdout
        assert report["db_path"]["checks"][mode]["result"] == {"files": 6, "loaded_once": 6, "duplicated_rows": 0}

    # And the check can fail: a file in the list that never loaded is not counted as loaded once
    from benchmarks.burst import check_sql, run_db_check

    manifest = db_path / "burst-files.csv"
    wider = tmp_path / "wider.csv"
    wider.write_text(manifest.read_text(encoding="utf-8") + "incoming/burst/never-uploaded.csv,20\n")
    assert run_db_check(db_file, check_sql(db_file, wider, "batched")) == {
        "files": 7,
        "loaded_once": 6,
        "duplicated_rows": 0,
    }


def test_challenger_cost_quick(tmp_path: Path) -> None:
    # A tiny run: the three ways are measured and reported against the goal (no figure asserted)
    out = tmp_path / "challenger.json"
    proc = _run(str(BENCH / "challenger_cost.py"), "--rows", "20000", "--repeats", "1", "--out", str(out))
    for text in ("champion alone", "in shadow", "one after the other", "goal: in shadow at most +30%"):
        assert text in proc.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report["median_s"]) == {"champion alone", "in shadow", "one after the other"}
    assert all(v > 0 for v in report["median_s"].values())
