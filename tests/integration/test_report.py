"""`make report`: the monitoring report read from the warehouse's monitoring table, as a user runs it.

An emulated Snowflake is made under tmp_path with the monitoring table (the contract's columns) and a ledger holding
a handful of loads inserted here: a steady one, a drifted one, one without an accuracy estimate, a FAILED one that
scored nothing, and one of another model version. The tool runs in a fresh process (`python -m
tools.commands.report`, without PYTHONPATH), on that folder or, with --real-account, on the same database served
over HTTP as an account would be.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tools.emulated.local_stack import local_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_FIRST = "run `make demo` or `make score FILE=...` first"

MONITORING_DDL = """CREATE TABLE {table} (LOAD_ID VARCHAR(36), SOURCE_BUCKET VARCHAR, SOURCE_KEY VARCHAR,
  SOURCE_VERSION VARCHAR, MODEL_VERSION VARCHAR, MONITORED_AT TIMESTAMP_TZ, ROWS_SCORED NUMBER,
  DRIFT_DETECTED BOOLEAN, DRIFT_SCORE FLOAT, DRIFTED_FEATURES VARCHAR, ESTIMATED_ACCURACY FLOAT,
  ESTIMATED_ACCURACY_LOW FLOAT, ESTIMATED_ACCURACY_HIGH FLOAT, PREDICTED_MALIGNANT_SHARE FLOAT,
  REFERENCE_MALIGNANT_SHARE FLOAT, DRIFT_DETAIL VARIANT)"""
INSERT = (
    "INSERT INTO TUMOUR_SCORE_MONITORING SELECT %s, 'hospital-drop', %s, %s, %s, %s::TIMESTAMP_TZ, %s, %s, %s, %s, "
    "%s, %s, %s, %s, %s, PARSE_JSON(%s)"
)


def _detail(scores: dict[str, float]) -> str:
    features = {
        name: {"ks_distance": round(score * 0.17, 4), "threshold": 0.17, "score": score, "drifted": score >= 1,
               "median_ratio": 1.01}
        for name, score in scores.items()
    }  # fmt: skip
    return json.dumps({"rows_tested": 569, "reference_rows": 455, "false_alarm_rate": 0.01, "features": features})


# load id, key, model version, monitored at, rows, drift detected, drift score, drifted features, accuracy, low,
# high, predicted malignant share, reference share, detail; then the ledger's status
LOADS: list[tuple[Any, ...]] = [
    ("L1", "incoming/january.csv", "1.0.0", "2026-12-01 09:00:00 +00:00", 569, False, 0.41, None,
     0.953, 0.931, 0.969, 0.373, 0.371,
     _detail({"MEAN_RADIUS": 0.41, "MEAN_AREA": 0.33, "WORST_AREA": 0.29}), "LOADED"),
    ("L2", "incoming/february.csv", "1.0.0", "2026-12-02 09:00:00 +00:00", 200, True, 2.35, "MEAN_AREA,WORST_AREA",
     0.874, 0.822, 0.912, 0.61, 0.371,
     _detail({"MEAN_RADIUS": 0.77, "MEAN_AREA": 2.35, "WORST_AREA": 1.4}), "LOADED"),
    ("L3", "incoming/march.csv", "1.0.0", "2026-12-03 09:00:00 +00:00", 120, False, 0.66, None,
     None, None, None, 0.35, 0.371,
     _detail({"MEAN_RADIUS": 0.66, "MEAN_AREA": 0.5, "WORST_AREA": 0.45}), "LOADED"),
    ("L4", "incoming/broken.csv", "1.0.0", "2026-12-04 09:00:00 +00:00", 0, None, None, None,
     None, None, None, None, None, json.dumps({"not_tested": "no row of the file was scored"}), "FAILED"),
    ("L5", "incoming/april.csv", "2.0.0", "2026-12-05 09:00:00 +00:00", 300, False, 0.52, None,
     0.962, 0.944, 0.975, 0.4, 0.39,
     _detail({"MEAN_RADIUS": 0.52, "MEAN_AREA": 0.3, "WORST_AREA": 0.31}), "LOADED"),
]  # fmt: skip


@pytest.fixture(scope="module")
def monitored_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An emulated Snowflake with the monitoring table and the ledger holding LOADS, and an empty monitoring table."""
    db = tmp_path_factory.mktemp("monitored") / "db"
    with local_stack(db, seed=False) as stack:
        conn = stack.snowflake_connect()
        cur = conn.cursor()
        cur.execute(MONITORING_DDL.format(table="TUMOUR_SCORE_MONITORING"))
        cur.execute(MONITORING_DDL.format(table="EMPTY_MONITORING"))
        cur.execute("CREATE TABLE TUMOUR_SCORE_LOADS (LOAD_KEY VARCHAR, STATUS VARCHAR(16), LOAD_ID VARCHAR(36))")
        for load_id, key, version, at, *stats, detail, status in LOADS:
            cur.execute(INSERT, (load_id, key, f"v-{load_id}", version, at, *stats, detail))
            cur.execute("INSERT INTO TUMOUR_SCORE_LOADS VALUES (%s, %s, %s)", (key, status, load_id))
        cur.execute("INSERT INTO TUMOUR_SCORE_LOADS VALUES ('incoming/broken.csv', 'STARTED', 'L9')")  # an attempt
        conn.commit()
        conn.close()
    return db


def _run_report(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("SNOWFLAKE_")}
    return subprocess.run(
        [sys.executable, "-m", "tools.commands.report", *args],
        cwd=REPO_ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _sections(page: str) -> list[str]:
    return re.findall(r'<section class="model-version">.*?</section>', page, flags=re.DOTALL)


def _recent_table(section: str) -> str:
    return section[section.index('<table class="recent">') :]


def _assert_self_contained(page: str) -> None:
    assert re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, flags=re.IGNORECASE) is None
    assert re.search(r"url\(\s*['\"]?\s*(?:https?:)?//", page, flags=re.IGNORECASE) is None
    assert "<script" not in page
    assert "<link" not in page
    assert "<?xml" not in page


@pytest.fixture(scope="module")
def report(monitored_db: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str]:
    out = tmp_path_factory.mktemp("report") / "monitoring.html"
    proc = _run_report("--db-path", str(monitored_db), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return proc, out.read_text(encoding="utf-8")


def test_the_report_is_one_self_contained_page_saying_what_it_read(
    report: tuple[subprocess.CompletedProcess[str], str], monitored_db: Path
) -> None:
    # Given an emulated Snowflake holding five monitored loads of two model versions
    # When the report is made from it
    proc, page = report

    # Then it prints the page's path, and the page needs nothing from the network
    assert proc.stdout.strip().endswith("monitoring.html")
    _assert_self_contained(page)
    # and its header names the table, the database it came from, the loads, the model versions and the time span
    assert "<code>TUMOURS.SCORING.TUMOUR_SCORE_MONITORING</code>" in page
    assert f"the emulated Snowflake in {monitored_db}/" in page
    assert "status from <code>TUMOURS.SCORING.TUMOUR_SCORE_LOADS</code>" in page
    assert "5 (4 that scored rows, 1 that scored none)" in page
    assert "<code>2.0.0</code>, <code>1.0.0</code>" in page
    assert "2026-12-01 09:00 to 2026-12-05 09:00 UTC" in page


def test_each_model_version_has_its_section_with_a_plot_per_chart_and_its_recent_loads(
    report: tuple[subprocess.CompletedProcess[str], str],
) -> None:
    # Given the report of the five loads
    _, page = report

    # When its sections are read (the most recent model version first)
    sections = _sections(page)

    # Then each has one plot for drift, accuracy and the malignant share, and a table of its loads
    assert len(sections) == 2
    assert "Model version <code>2.0.0</code>" in sections[0]
    assert "Model version <code>1.0.0</code>" in sections[1]
    for section in sections:
        plots = re.findall(r'<figure class="plot" data-plot="(\w+)">\s*<svg', section)
        assert plots == ["drift", "accuracy", "share"]
        assert section.count("<svg") == 3
    assert "incoming/april.csv" in _recent_table(sections[0])
    assert "incoming/january.csv" not in sections[0]


def test_the_recent_loads_name_drift_accuracy_and_failure(report: tuple[subprocess.CompletedProcess[str], str]) -> None:
    # Given the section of model version 1.0.0 (four loads, newest first in its table)
    table = _recent_table(_sections(report[1])[1])
    rows = re.findall(r"<tr>(.*?)</tr>", table, flags=re.DOTALL)[1:]
    keys = ["incoming/broken.csv", "incoming/march.csv", "incoming/february.csv", "incoming/january.csv"]

    # When its rows are read / Then they hold each load's key, newest first
    assert [next(k for k in keys if k in row) for row in rows] == keys
    broken, march, february, january = rows
    # the drifted load, its verdict and the features that drifted
    assert 'class="drift">drift<' in february
    assert "MEAN_AREA, WORST_AREA" in february
    assert "2.35" in february
    # the estimated accuracy with its interval, and none where the load has no estimate
    assert "0.953 [0.931, 0.969]" in january
    assert "0.874 [0.822, 0.912]" in february
    assert "not estimated" in march
    assert "no drift" in january and "no drift" in march
    # the FAILED load that scored nothing: its status, no drift test, no statistics
    assert "FAILED" in broken
    assert "not tested" in broken
    assert ">0<" in broken
    # and the drifted features are named under the drift chart too
    assert "Features that drifted: <code>MEAN_AREA</code> (1 load), <code>WORST_AREA</code> (1 load)." in report[1]


def test_a_model_version_and_the_last_loads_can_be_asked_for(monitored_db: Path, tmp_path: Path) -> None:
    # Given the five loads / When the report asks for model version 1.0.0's last two
    out = tmp_path / "filtered.html"
    proc = _run_report("--db-path", str(monitored_db), "--out", str(out), "--model-version", "1.0.0", "--last", "2")

    # Then it has that version's section only, with its two most recent loads, and says so in its header
    assert proc.returncode == 0, proc.stderr
    page = out.read_text(encoding="utf-8")
    sections = _sections(page)
    assert len(sections) == 1
    assert "incoming/broken.csv" in sections[0] and "incoming/march.csv" in sections[0]
    assert "incoming/february.csv" not in page and "incoming/april.csv" not in page
    assert "<code>1.0.0</code>; the last 2 loads" in page
    assert "2 (1 that scored rows, 1 that scored none)" in page


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        pytest.param(
            [], {"MONITORING_TABLE": "NO_SUCH_TABLE"}, "no table TUMOURS.SCORING.NO_SUCH_TABLE", id="missing-table"
        ),
        pytest.param(
            [], {"MONITORING_TABLE": "EMPTY_MONITORING"}, "TUMOURS.SCORING.EMPTY_MONITORING has no rows", id="empty"
        ),
        pytest.param(
            ["--model-version", "9.9.9"],
            {},
            "has no rows for model version '9.9.9' (it has: 1.0.0, 2.0.0)",
            id="unknown-model-version",
        ),
        pytest.param([], {"MONITORING_TABLE": "bad name"}, "MONITORING_TABLE 'bad name'", id="bad-table-name"),
    ],
)
def test_nothing_to_report_is_one_line_and_status_2(
    monitored_db: Path, tmp_path: Path, args: list[str], env: dict[str, str], said: str
) -> None:
    # Given a monitoring table that is not there, or has no row for what is asked
    out = tmp_path / "report.html"

    # When the report is made
    proc = _run_report("--db-path", str(monitored_db), "--out", str(out), *args, env=env)

    # Then it says so in one line, with status 2, no traceback, and writes nothing
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert said in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert not out.exists()


def test_no_emulated_database_is_one_line_and_status_2(tmp_path: Path) -> None:
    # Given a folder no local run has written to / When the report is made from it
    proc = _run_report("--db-path", str(tmp_path / "nothing"), "--out", str(tmp_path / "report.html"))

    # Then it says what to run first, in one line, with status 2
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: no emulated database in {tmp_path / 'nothing'}: {RUN_FIRST}"


@pytest.fixture
def served_over_http(monitored_db: Path) -> Iterator[dict[str, str]]:
    """The same database served as an account is: the SNOWFLAKE_* variables --real-account reads."""
    with local_stack(monitored_db, seed=False) as stack:
        yield {
            "SNOWFLAKE_ACCOUNT": "fakesnow",
            "SNOWFLAKE_USER": "fake",
            "SNOWFLAKE_PASSWORD": "snow",
            "SNOWFLAKE_DATABASE": "TUMOURS",
            "SNOWFLAKE_SCHEMA": "SCORING",
            "SNOWFLAKE_HOST": stack.snowflake_host,
            "SNOWFLAKE_PORT": str(stack.snowflake_port),
            "SNOWFLAKE_PROTOCOL": "http",
        }


def test_a_real_account_is_read_with_the_snowflake_variables(served_over_http: dict[str, str], tmp_path: Path) -> None:
    # Given an account named by SNOWFLAKE_* (here the emulator over HTTP, as the connector reaches an account)
    out = tmp_path / "account.html"

    # When the report is made with --real-account
    proc = _run_report("--real-account", "--out", str(out), env=served_over_http)

    # Then it reads the same tables there, and says which account it read
    assert proc.returncode == 0, proc.stderr
    page = out.read_text(encoding="utf-8")
    assert "<code>TUMOURS.SCORING.TUMOUR_SCORE_MONITORING</code> in Snowflake account fakesnow" in page
    assert len(_sections(page)) == 2
    _assert_self_contained(page)


def test_a_real_account_without_credentials_is_one_line_and_status_2(tmp_path: Path) -> None:
    # Given no SNOWFLAKE_* variable / When the report is asked to read a real account
    proc = _run_report("--real-account", "--out", str(tmp_path / "report.html"))

    # Then it names what it needs, in one line, with status 2
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "--real-account needs SNOWFLAKE_USER" in proc.stderr
