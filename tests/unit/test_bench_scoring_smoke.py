"""Smoke test for benchmarks/bench_scoring.py: a --quick run exits 0, prints the table and writes its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "benchmarks" / "bench_scoring.py"


def test_bench_scoring_quick_run(tmp_path: Path) -> None:
    out = tmp_path / "scoring.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT)])}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
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
