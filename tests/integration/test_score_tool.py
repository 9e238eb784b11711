"""`make score FILE=...` and `make demo CSV=...`: a user's own file through the handler on the local stack.

Each case runs the tool as a user does (a fresh process: `python -m tools.commands.score`, without PYTHONPATH) with
its own emulated Snowflake under tmp_path, and reads what it prints. The emulator is fakesnow: the tool's
queries are plain Snowflake SQL, nothing here relies on fakesnow behaviour beyond it answering them.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
NOISE = ("Traceback", "XNNPACK", "Session login", "UserWarning", '"_aws"', "CloudWatchMetrics")


def _run_tool(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "POWERTOOLS_LOG_LEVEL"}}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _title_case_header(lines: list[str]) -> list[str]:
    return [",".join(name.title() for name in lines[0].split(",")), *lines[1:]]


def _unknown_feature_name(lines: list[str]) -> list[str]:
    return [lines[0].replace("mean radius", "radius of the mean"), *lines[1:]]


def _two_bad_rows(lines: list[str]) -> list[str]:
    out = list(lines)
    for line_no, field in ((4, 2), (6, 5)):  # record 4: 'mean texture'; record 6: 'mean smoothness'
        cells = out[line_no - 1].split(",")
        cells[field] = "abc" if line_no == 4 else ""
        out[line_no - 1] = ",".join(cells)
    return out


def _extra_columns(lines: list[str]) -> list[str]:
    """Two columns the model does not use, kept (KEEP_EXTRA_COLUMNS defaults to true): a ward and a patient id."""
    return [lines[0] + ",ward,patient_id", *(f"{line},W{n % 3},P-{1000 + n}" for n, line in enumerate(lines[1:]))]


CASES = [
    # id, rows, edit, gzip, env, expected exit status, lines stdout must hold
    pytest.param(
        30, None, False, {}, 0, ["status         loaded", "rows loaded    30", "SAMPLE_ID", "malignant"], id="plain"
    ),
    pytest.param(30, None, True, {}, 0, ["status         loaded", "rows loaded    30"], id="csv-gz"),
    pytest.param(
        30,
        None,
        False,
        {"COLUMN_RENAMES": '{"sample_id": "PATIENT_REF"}', "TARGET_TABLE": "RENAMED_SCORES"},
        0,
        ["rows loaded    30", "PATIENT_REF", "Rows in RENAMED_SCORES by CONDITION", "FROM RENAMED_SCORES"],
        id="column-renames",
    ),
    pytest.param(
        30, None, False, {"KEEP_EXTRA_COLUMNS": "false"}, 0, ["rows loaded    30", "benign"], id="no-extra-columns"
    ),
    pytest.param(
        8,
        _extra_columns,
        False,
        {},
        0,
        ["rows loaded    8", "SAMPLE_ID", "WARD", "PATIENT_ID", "P-1000", "kept extra columns"],
        id="kept-extra-columns-in-the-preview",
    ),
    pytest.param(
        30,
        None,
        False,
        {"DROP_COLUMNS": "CONDITION"},
        0,
        ["rows loaded    30", "by CLASSIFICATION (CONDITION is dropped by DROP_COLUMNS)"],
        id="condition-dropped",
    ),
    pytest.param(
        10,
        _two_bad_rows,
        False,
        {},
        0,
        [
            "rows rejected  2",
            "Rejected rows in TUMOUR_SCORE_REJECTS (2; line 1 is the header):",
            "4     mean texture     non-numeric value in column 'mean texture'",
            "6     mean smoothness  missing value in column 'mean smoothness'",
        ],
        id="bad-rows",
    ),
    pytest.param(
        30, _title_case_header, False, {}, 0, ["rows loaded    30", "SAMPLE_ID", "malignant"], id="title-case-header"
    ),
    pytest.param(
        10,
        _title_case_header,
        False,
        {"HEADER_MATCHING": "strict"},
        1,
        ["status         failed", "reason         missing_columns:", "STATUS         FAILED"],
        id="title-case-header-strict-failed",
    ),
    pytest.param(
        10,
        _unknown_feature_name,
        False,
        {},
        1,
        ["status         failed", "reason         missing_columns:", "'mean radius'", "STATUS         FAILED"],
        id="missing-column-failed",
    ),
]


@pytest.mark.parametrize(("rows", "edit", "gz", "env", "status", "expected"), CASES)
def test_score_prints_the_load_its_rows_rejects_and_ledger_row(
    make_csv: Callable[..., bytes],
    tmp_path: Path,
    rows: int,
    edit: Callable[[list[str]], list[str]] | None,
    gz: bool,
    env: dict[str, str],
    status: int,
    expected: list[str],
) -> None:
    # Given a user's file and settings in the environment
    body = make_csv(rows, edit)
    file = tmp_path / ("upload.csv.gz" if gz else "upload.csv")
    file.write_bytes(gzip.compress(body) if gz else body)

    # When it is scored
    proc = _run_tool("tools.commands.score", str(file), "--db-path", str(tmp_path / "db"), env=env)

    # Then the report is on stdout, the exit status says how it went, and nothing else is printed
    assert proc.returncode == status, proc.stdout + proc.stderr
    for line in expected:
        assert line in proc.stdout, f"{line!r} not in:\n{proc.stdout}"
    assert "Ledger row in" in proc.stdout
    for noise in NOISE:
        assert noise not in proc.stdout + proc.stderr, proc.stderr
    if status:
        assert proc.stderr.strip().startswith("error:"), proc.stderr
    else:
        assert proc.stderr == ""


def test_a_second_run_of_the_same_file_reports_the_first_load_and_the_same_status(
    make_csv: Callable[..., bytes], tmp_path: Path
) -> None:
    # Given a file that failed once (a feature column missing) and one that loaded, each scored once already
    failed, loaded = tmp_path / "failed.csv", tmp_path / "loaded.csv"
    failed.write_bytes(make_csv(5, _unknown_feature_name))
    loaded.write_bytes(make_csv(5))
    db = str(tmp_path / "db")
    firsts = [_run_tool("tools.commands.score", str(f), "--db-path", db) for f in (failed, loaded)]

    # When each is scored again
    seconds = [_run_tool("tools.commands.score", str(f), "--db-path", db) for f in (failed, loaded)]

    # Then the second run is a duplicate with the first run's status and ledger row, and loads nothing more
    assert [p.returncode for p in firsts] == [p.returncode for p in seconds] == [1, 0]
    for first, second in zip(firsts, seconds, strict=True):
        assert "status         duplicate" in second.stdout
        ledger = first.stdout.split("Ledger row in")[1].split("\n\n")[0]
        assert ledger in second.stdout
    assert "rows loaded    5" in firsts[1].stdout
    assert "benign" in seconds[1].stdout or "malignant" in seconds[1].stdout


def test_demo_scores_the_file_named_with_csv(make_csv: Callable[..., bytes], tmp_path: Path) -> None:
    # Given a file of the user's without one of the model's columns
    file = tmp_path / "mine.csv"
    file.write_bytes(make_csv(5, _unknown_feature_name))

    # When the demo is pointed at it
    proc = _run_tool("tools.commands.demo", "--csv", str(file), "--db-path", str(tmp_path / "db"))

    # Then that file (not the sample) is the one loaded, and its failure is reported without a traceback
    assert proc.returncode == 1
    assert "incoming/mine.csv" in proc.stdout
    assert "missing_columns" in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no/such/file.csv"], "no such file: no/such/file.csv"),
        (["data/breast_cancer.csv", "--db-path", "{tmp}"], "COLUMN_RENAMES: Value error, must be a JSON object"),
    ],
    ids=["missing-file", "bad-setting"],
)
def test_usage_and_configuration_errors_are_one_line_without_traceback(
    tmp_path: Path, args: list[str], message: str
) -> None:
    # Given a missing file, or a setting the function would refuse
    env = {"COLUMN_RENAMES": "{not json"}

    # When the tool is run
    proc = _run_tool("tools.commands.score", *[a.format(tmp=tmp_path) for a in args], env=env)

    # Then it says what is wrong, with status 2 and no traceback
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def scored_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An emulated Snowflake with one scored file in it, as `make score` leaves it."""
    db = tmp_path_factory.mktemp("scored") / "db"
    proc = _run_tool("tools.commands.score", str(REPO_ROOT / "data" / "breast_cancer.csv"), "--db-path", str(db))
    assert proc.returncode == 0, proc.stderr
    return db


@pytest.mark.parametrize(
    ("sql", "status", "stdout", "stderr"),
    [
        ("SELECT CONDITION, COUNT(*) AS N FROM TUMOUR_SCORES GROUP BY 1 ORDER BY 1", 0, "CONDITION\tN\nbenign\t3", ""),
        ("SELECT * FROM NO_SUCH_TABLE", 1, "", "query failed: "),
        ("SELEKT 1", 1, "", "query failed: "),
    ],
    ids=["good", "missing-table", "syntax-error"],
)
def test_query_runs_from_any_directory_and_reports_a_bad_query_without_traceback(
    scored_db: Path, tmp_path: Path, sql: str, status: int, stdout: str, stderr: str
) -> None:
    # Given the emulated Snowflake a score run left, and a shell in another directory without PYTHONPATH
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    # When tools/commands/query.py is run by its path
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "commands" / "query.py"), sql, "--db-path", str(scored_db)],
        cwd=tmp_path,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # Then a good query prints its rows, and a bad one its message, with no traceback
    assert proc.returncode == status, proc.stderr
    assert proc.stdout.startswith(stdout)
    assert proc.stderr.startswith(stderr)
    assert "Traceback" not in proc.stderr


def test_a_key_the_bucket_does_not_notify_the_queue_for_is_a_usage_error(tmp_path: Path) -> None:
    # Given a key outside the template's notification filters (the deployed bucket would never deliver it)
    args = ["data/breast_cancer.csv", "--key", "incoming/sample.txt", "--db-path", str(tmp_path / "db")]

    # When the file is scored under it
    proc = _run_tool("tools.commands.score", *args)

    # Then the tool says which keys reach the function, with status 2, before loading anything
    assert proc.returncode == 2
    assert "only for keys under incoming/ ending in .csv or .csv.gz" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


# --- the exit status a script sees: bin/score (make exits 2 for any failing recipe, whatever the tool said) -------

SCORE_SCRIPT = REPO_ROOT / "bin" / "score"
# Started with the tool's process (Python imports ``sitecustomize`` from sys.path at startup): makes the
# warehouse's claim raise as Snowflake being unreachable does (retriable), or the tool's own report fail as a bug
# would. The tool starts its own moto + fakesnow, so there is no other way in from outside the process.
FAULT = """
import os

_raise = os.environ.get("SCORE_TEST_RAISES")
if _raise == "retriable":
    from adapters import snowflake as _snowflake
    from pipeline.errors import WarehouseUnavailableError

    def _claim(self, *args, **kwargs):
        raise WarehouseUnavailableError("Snowflake could not be reached (injected by the test)")

    _snowflake.SnowflakeBatch.claim = _claim
elif _raise == "bug":
    from tools.emulated import local_stack as _local_stack

    def _connect(self, **kwargs):
        raise RuntimeError("a bug (injected by the test)")

    _local_stack.LocalStack.snowflake_connect = _connect
"""


@pytest.mark.parametrize(
    ("file", "env", "status", "said"),
    [
        pytest.param("good.csv", {}, 0, "status         loaded", id="0-loaded"),
        pytest.param("missing-column.csv", {}, 1, "was recorded FAILED", id="1-failed"),
        pytest.param(None, {}, 2, "the following arguments are required: file", id="2-no-file-given"),
        pytest.param("no-such.csv", {}, 2, "no such file: no-such.csv", id="2-missing-file"),
        pytest.param("good.csv", {"COLUMN_RENAMES": "{not json"}, 2, "COLUMN_RENAMES", id="2-bad-setting"),
        pytest.param("good.csv", {"SCORE_TEST_RAISES": "retriable"}, 3, "a retry may help", id="3-retriable-error"),
        pytest.param("good.csv", {"SCORE_TEST_RAISES": "bug"}, 4, "the tool itself failed", id="4-tool-failed"),
    ],
)
def test_bin_score_exits_with_the_documented_status(
    make_csv: Callable[..., bytes], tmp_path: Path, file: str | None, env: dict[str, str], status: int, said: str
) -> None:
    # Given a shell in another directory, a file named relative to it (or none), and settings in the environment
    work = tmp_path / "work"
    work.mkdir()
    (work / "good.csv").write_bytes(make_csv(5))
    (work / "missing-column.csv").write_bytes(make_csv(5, _unknown_feature_name))
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(FAULT, encoding="utf-8")
    clean = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "POWERTOOLS_LOG_LEVEL"}}
    args = [] if file is None else [file, "--db-path", str(tmp_path / "db")]

    # When bin/score runs, as a script would run it
    proc = subprocess.run(
        [str(SCORE_SCRIPT), *args],
        cwd=work,
        env={**clean, "PYTHONPATH": str(hooks), **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    # Then its exit status is the documented one, and it says why
    assert proc.returncode == status, proc.stdout + proc.stderr
    assert said in proc.stdout + proc.stderr
    if status in (1, 2):
        assert "Traceback" not in proc.stderr  # (a retriable error's ERROR log, on stderr, carries the function's)


# --- a newly imported model served locally; the emulated Snowflake held by another process --------------------------


def _model_copy(tmp_path: Path, version: str) -> Path:
    """The shipped model under another model_version: to the tools, another import (`make import-model`)."""
    model = tmp_path / version
    model.mkdir()
    for name in ("model.tflite", "metadata.json"):
        (model / name).write_bytes((REPO_ROOT / "model" / name).read_bytes())
    metadata = json.loads((model / "metadata.json").read_text())
    (model / "metadata.json").write_text(json.dumps({**metadata, "model_version": version}))
    return model


def test_demo_with_a_newly_imported_model_shows_that_models_scores(tmp_path: Path) -> None:
    # Given `make demo` run once with one model, on the default emulated Snowflake (no --db-path)
    tag = uuid.uuid4().hex[:8]
    old, new = _model_copy(tmp_path, f"test-old-{tag}"), _model_copy(tmp_path, f"test-new-{tag}")
    try:
        first = _run_tool("tools.commands.demo", env={"MODEL_DIR": str(old)})
        assert first.returncode == 0, first.stderr

        # When the demo is run again serving a newly imported model (make demo MODEL_DIR=<new model>), then again
        second = _run_tool("tools.commands.demo", env={"MODEL_DIR": str(new)})
        third = _run_tool("tools.commands.demo", env={"MODEL_DIR": str(new)})

        # Then the new model scores the sample (loaded, not a duplicate of the old model's load) and the report
        # names it; run again with it, the file is its duplicate, as before
        assert second.returncode == 0, second.stderr
        assert "status         loaded" in second.stdout, second.stdout
        assert f"MODEL_VERSION  test-new-{tag}" in second.stdout.split("Ledger row in")[1]
        assert f"test-old-{tag}" not in second.stdout
        assert "status         duplicate" in third.stdout and f"MODEL_VERSION  test-new-{tag}" in third.stdout
        # and `make query MODEL_DIR=<new model>` reads the new model's loads
        query = _run_tool(
            "tools.commands.query", "SELECT DISTINCT MODEL_VERSION FROM TUMOUR_SCORES", env={"MODEL_DIR": str(new)}
        )
        assert query.stdout.split() == ["MODEL_VERSION", f"test-new-{tag}"], query.stdout + query.stderr
    finally:
        for version in (f"test-old-{tag}", f"test-new-{tag}"):
            shutil.rmtree(REPO_ROOT / ".local" / "snowflake" / version, ignore_errors=True)


@pytest.mark.parametrize(
    "command",
    [["tools.commands.score", "data/breast_cancer.csv"], ["tools.commands.query", "SELECT 1"]],
    ids=["score", "query"],
)
def test_score_and_query_refuse_at_once_while_local_stack_holds_the_database(
    local_stack_running: Any, command: list[str]
) -> None:
    # Given `make local-stack` running on an emulated Snowflake folder
    stack, db = local_stack_running.proc, local_stack_running.db_path

    # When `make score` or `make query` is run on the same folder
    started = time.monotonic()
    proc = _run_tool(*command, "--db-path", str(db))

    # Then it stops at once, in one line naming the process that holds the folder, with "a retry may help" (3)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert time.monotonic() - started < 60
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"in use by process {stack.pid} (make local-stack" in proc.stderr
    assert proc.stdout == ""
