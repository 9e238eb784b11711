"""`make score FILE=<csv or csv.gz> [KEY=...]`: your own file through the Lambda handler, on the local stack.

The path is the demo's and the deployed stack's: moto (S3, SQS, Secrets Manager) and fakesnow (Snowflake over
HTTP, file-backed under .local/snowflake) start on loopback, wired as template.yaml wires the stack (the bucket
notifies the ingest queue, which has its dead-letter queue). The file is uploaded under KEY; S3's notification
lands in the queue, and the local poller (emulated/poller.py: the SQS event source mapping, the function's copies in
this process) delivers it to the function. The outcome is read back from the three tables:

* the load summary (status, rows loaded / rejected, load id);
* counts by condition, and a few scored rows;
* the rejected rows with their line, column and reason (never their values);
* the ledger row.

The function's settings come from the environment as on Lambda (`COLUMN_RENAMES`, `KEEP_EXTRA_COLUMNS`,
`TARGET_TABLE`, ...; README "Configuration"); the queries use the configured table and column names.
Only that report goes to stdout. The function's logs go to stderr at WARNING unless `POWERTOOLS_LOG_LEVEL`
says otherwise.

Exit status: 0 when the file loaded (or was already loaded: a re-run of the same bytes is a `duplicate` and
reports the earlier load), 1 when it was recorded FAILED (the reason is printed), 2 for a usage or
configuration error (a missing file, a bad setting, a KEY the bucket does not notify the queue for), 3 when the
load raised a retriable error or its notification never reached the function (the run stops at its first
delivery: it does not wait for the queue's retries), 4 when the tool itself failed (a traceback is printed).

These reach the shell from `bin/score FILE` (or `.venv/bin/python -m tools.commands.score FILE` at the repository root).
`make score` cannot pass them on: make exits 2 for any failing recipe, and names the tool's status in its own
message (`make: *** [Makefile:..: score] Error 3`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXIT_LOADED = 0
EXIT_FAILED = 1  # recorded FAILED in the ledger
EXIT_USAGE = 2  # usage or configuration: nothing was loaded, and running it again as it is will not help
EXIT_RETRIABLE = 3  # a retriable error: a retry may help
EXIT_TOOL_FAILED = 4  # the tool itself failed

ROOT = Path(__file__).resolve().parents[2]
DB_ROOT = ROOT / ".local" / "snowflake"  # one folder per model version under it: see default_db_path
QUERY_TOOL = ROOT / "tools" / "commands" / "query.py"
MAX_REJECTS_SHOWN = 20
SAMPLE_ROWS_SHOWN = 5
# Third-party lines on the native stderr that carry nothing for the user: LiteRT announces its CPU delegate.
NATIVE_NOISE = re.compile(rb"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.\s*$")
# Columns of the target table that are not worth showing in the sample rows (one value per load).
MAX_IDENTIFIERS_SHOWN = 8  # text columns in the preview: the identifier and the kept extra columns
SHOWN_SCORES = ("CLASSIFICATION", "CONDITION", "MALIGNANT_PROBABILITY", "SOURCE_LINE")


def make_importable() -> None:
    """`python -m tools.commands.score` without PYTHONPATH: the function's packages live in src/."""
    for path in (str(ROOT), str(ROOT / "src")):
        if path not in sys.path:
            sys.path.insert(0, path)


def quiet_by_default() -> None:
    """Logs at WARNING unless asked, no CloudWatch metrics blob, no TensorFlow chatter."""
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def served_model_dir() -> Path:
    """The model the function serves here: ``$MODEL_DIR`` (``make demo MODEL_DIR=...``), else ``model/``."""
    return Path(os.environ["MODEL_DIR"]) if os.environ.get("MODEL_DIR") else ROOT / "model"


def served_model_version(model_dir: Path | None = None) -> str | None:
    """That model's ``model_version`` (metadata.json), or None when it cannot be read (the function says why)."""
    try:
        version = json.loads(((model_dir or served_model_dir()) / "metadata.json").read_text(encoding="utf-8"))
        return str(version["model_version"]) or None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def default_db_path(model_dir: Path | None = None) -> Path:
    """The emulated Snowflake of the served model: ``.local/snowflake/<model_version>/``.

    One per model version, because the ledger keys a load on the object version, not on the model: with one
    database for every model, a file the previous model loaded would come back ``duplicate`` under a newly
    imported model, showing the old model's scores. Each model's loads, scores and ledger are its own."""
    version = served_model_version(model_dir)
    return DB_ROOT / re.sub(r"[^A-Za-z0-9._+-]", "_", version) if version else DB_ROOT


def default_key(file: Path) -> str:
    return f"incoming/{file.name}"


@contextlib.contextmanager
def native_stderr_without(noise: re.Pattern[bytes]) -> Iterator[None]:
    """Drop matching lines that native code writes straight to file descriptor 2; pass the rest through."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured:
                if not noise.match(line):
                    sys.stderr.buffer.write(line)
            sys.stderr.flush()


def load_handler() -> Any:
    """Import the handler (its init builds the scorer and clients) with its logs on stderr."""
    with contextlib.redirect_stdout(sys.stderr), native_stderr_without(NATIVE_NOISE):
        from handler import app
    return app


def deliver(stack: Any, key: str, data: bytes, settings: Any, *, timeout: float = 600.0) -> dict[str, Any]:
    """Upload ``data`` under ``key`` and run the local poller (``settings``: a local_queue.QueueSettings) until
    the function has processed its notification; the function's response for it, reduced to that object (raises
    what the function raised)."""
    from pipeline.settings import get_settings
    from tools.emulated.poller import FINAL_STATUSES, Poller, any_raised, objects_done

    os.environ.update(stack.function_env())
    rerun = "handler.app" in sys.modules  # a second run in this process: settings and pipeline afresh
    if rerun:
        get_settings.cache_clear()
    app = load_handler()
    if rerun:
        app.build_pipeline.cache_clear()
    processed = objects_done([key], FINAL_STATUSES | {"error"})
    with (
        contextlib.redirect_stdout(sys.stderr),
        native_stderr_without(NATIVE_NOISE),
        Poller(stack, stack.queues, settings, receive_wait_seconds=0) as poller,
    ):
        stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=data)
        report = poller.run(lambda p: processed(p) or any_raised(p), timeout=timeout)
    for invocation in report.invocations:
        if invocation.error is not None:
            raise invocation.error
    objects = [o for o in report.objects() if o["key"] == key]
    if not objects:
        raise TimeoutError(f"no notification for s3://{stack.bucket}/{key} reached the function in {timeout:.0f} s")
    return {"objects": objects[:1]}


@dataclass(frozen=True)
class Tables:
    target: str
    rejects: str
    ledger: str
    monitoring: str = "TUMOUR_SCORE_MONITORING"


def _table_exists(cur: Any, table: str) -> bool:
    # Asked through INFORMATION_SCHEMA: selecting from a missing table would make the emulator log an error.
    cur.execute(
        "SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = CURRENT_SCHEMA() AND TABLE_NAME = %s",
        (table,),
    )
    return int(cur.fetchone()[0]) > 0


def _print_table(header: Sequence[str], rows: Sequence[Sequence[Any]], indent: str = "  ") -> None:
    cells = [[str(h) for h in header], *[["" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for row in cells:
        print(indent + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def report(cur: Any, tables: Tables, obj: dict[str, Any]) -> str | None:
    """Print what one object's delivery left in the three tables (queries use the configured names).

    Returns the ledger's status for the object version: for a duplicate, that of the earlier delivery."""
    ledger_row = None
    if _table_exists(cur, tables.ledger):
        cur.execute(
            "SELECT STATUS, ROWS_LOADED, ROWS_REJECTED, REASON_CODE, REASON, LOAD_ID, MODEL_VERSION, STARTED_AT, "
            f"FINISHED_AT FROM {tables.ledger} WHERE SOURCE_BUCKET = %s AND SOURCE_KEY = %s AND SOURCE_VERSION = %s "
            "ORDER BY FINISHED_AT DESC NULLS LAST LIMIT 1",
            (obj["bucket"], obj["key"], obj["version"]),
        )
        ledger_row = cur.fetchone()
        ledger_names = [d[0] for d in cur.description]
    # Rows exist only for a LOADED ledger row (a duplicate reports the earlier load; a FAILED one loaded none).
    loaded = ledger_row is not None and ledger_row[0] == "LOADED"
    load_id = (obj.get("load_id") or ledger_row[5]) if loaded and ledger_row is not None else None

    if load_id and _table_exists(cur, tables.target):
        columns, shown = _columns(cur, tables.target)
        if "CONDITION" in columns:
            cur.execute(
                f"SELECT CONDITION, COUNT(*) FROM {tables.target} WHERE LOAD_ID = %s GROUP BY CONDITION "
                "ORDER BY CONDITION",
                (load_id,),
            )
            print(f"\nRows in {tables.target} by CONDITION:")
            _print_table(["CONDITION", "ROWS"], cur.fetchall())
        elif "CLASSIFICATION" in columns:
            cur.execute(
                f"SELECT CLASSIFICATION, COUNT(*) FROM {tables.target} WHERE LOAD_ID = %s GROUP BY CLASSIFICATION "
                "ORDER BY CLASSIFICATION",
                (load_id,),
            )
            print(f"\nRows in {tables.target} by CLASSIFICATION (CONDITION is dropped by DROP_COLUMNS):")
            _print_table(["CLASSIFICATION", "ROWS"], cur.fetchall())
        else:
            print("\n(CONDITION and CLASSIFICATION are both dropped by DROP_COLUMNS: no counts by condition.)")
        if shown:
            names = ", ".join(shown)
            cur.execute(
                f"SELECT {names} FROM {tables.target} WHERE LOAD_ID = %s ORDER BY SOURCE_LINE "
                f"LIMIT {SAMPLE_ROWS_SHOWN}",
                (load_id,),
            )
            print(f"\nThe first {SAMPLE_ROWS_SHOWN} rows (identifiers, kept extra columns and scores):")
            _print_table(shown, cur.fetchall())

    if load_id and _table_exists(cur, tables.rejects):
        cur.execute(f"SELECT COUNT(*) FROM {tables.rejects} WHERE LOAD_ID = %s", (load_id,))
        n_rejects = int(cur.fetchone()[0])
        if n_rejects:
            cur.execute(
                f"SELECT SOURCE_LINE, COLUMN_NAME, REASON FROM {tables.rejects} WHERE LOAD_ID = %s "
                f"ORDER BY SOURCE_LINE, COLUMN_NAME LIMIT {MAX_REJECTS_SHOWN}",
                (load_id,),
            )
            print(f"\nRejected rows in {tables.rejects} ({n_rejects}; line 1 is the header):")
            _print_table(["LINE", "COLUMN", "REASON"], cur.fetchall())
            if n_rejects > MAX_REJECTS_SHOWN:
                print(f"  ... and {n_rejects - MAX_REJECTS_SHOWN} more")

    ledger_load_id = ledger_row[5] if ledger_row is not None else None
    if ledger_load_id and _table_exists(cur, tables.monitoring):
        _print_monitoring(cur, tables.monitoring, str(ledger_load_id))

    print(f"\nLedger row in {tables.ledger}:")
    if ledger_row is None:
        print("  (none)")
    else:
        width = max(len(n) for n in ledger_names)
        for name, value in zip(ledger_names, ledger_row, strict=True):
            if value is not None:
                print(f"  {name.ljust(width)}  {value}")
    return None if ledger_row is None else str(ledger_row[0])


def _print_monitoring(cur: Any, table: str, load_id: str) -> None:
    """The load's monitoring verdict (README "Monitoring"): drift, the estimated accuracy, the malignant share."""
    cur.execute(
        "SELECT ROWS_SCORED, DRIFT_DETECTED, DRIFT_SCORE, DRIFTED_FEATURES, ESTIMATED_ACCURACY, "
        "ESTIMATED_ACCURACY_LOW, ESTIMATED_ACCURACY_HIGH, PREDICTED_MALIGNANT_SHARE, REFERENCE_MALIGNANT_SHARE, "
        f"CHALLENGER_MODEL_VERSION, CHALLENGER_AGREEMENT FROM {table} WHERE LOAD_ID = %s",
        (load_id,),
    )
    row = cur.fetchone()
    if row is None:
        return
    scored, drifted, score, features, accuracy, low, high, share, reference, challenger, agreement = row
    print(f"\nMonitoring row in {table} (make report draws every load's):")
    if drifted is None:
        print(f"  drift             not tested ({scored} rows scored)")
    else:
        verdict = f"DRIFT in {features}" if drifted else "none"
        print(f"  drift             {verdict} (score {score:.2f}; 1 or more is drift)")
    if accuracy is not None:
        print(f"  est. accuracy     {accuracy:.3f} (95 % interval {low:.3f} to {high:.3f}; no labels used)")
    if share is not None:
        shown = "" if reference is None else f" (reference {reference:.3f})"
        print(f"  malignant share   {share:.3f}{shown}")
    if challenger is not None:
        agreed = "not measured (see DRIFT_DETAIL)" if agreement is None else f"{agreement:.3f} of rows labelled alike"
        print(f"  challenger        {challenger}: {agreed}")


def _columns(cur: Any, table: str) -> tuple[list[str], list[str]]:
    """The table's columns, and those worth showing: its text columns but the load's lineage and the scores (the
    identifier such as SAMPLE_ID and every kept extra column such as PATIENT_ID, under whatever names
    COLUMN_RENAMES gives them), then the scores that were not dropped."""
    from pipeline.challenger import CHALLENGER_COLUMNS
    from pipeline.output import LINEAGE_COLUMNS, LOADED_AT, SCORE_COLUMNS

    cur.execute(f"SELECT * FROM {table} LIMIT 0")
    cur.fetchall()
    text_type = 2  # snowflake.connector's type code for TEXT (VARCHAR)
    names = [d[0] for d in cur.description]
    not_identifiers = {*LINEAGE_COLUMNS, LOADED_AT[0], *SCORE_COLUMNS, *CHALLENGER_COLUMNS}
    texts = [d[0] for d in cur.description if d[1] == text_type and d[0] not in not_identifiers]
    return names, texts[:MAX_IDENTIFIERS_SHOWN] + [n for n in SHOWN_SCORES if n in names]


def summary_lines(summary: dict[str, Any]) -> list[str]:
    lines = []
    for obj in summary["objects"]:
        lines.append(f"  s3://{obj['bucket']}/{obj['key']} (version {obj['version']})")
        lines.append(f"  status         {obj['status']}")
        if obj["status"] == "loaded":
            lines.append(f"  rows loaded    {obj['rows_loaded']}")
            lines.append(f"  rows rejected  {obj['rows_rejected']}")
            if obj.get("rows_flagged"):
                lines.append(
                    f"  rows flagged   {obj['rows_flagged']} (far outside the training data: OUT_OF_RANGE_FEATURES)"
                )
            if obj.get("rows_blank"):
                lines.append(f"  blank lines    {obj['rows_blank']}")
            lines.append(f"  load id        {obj['load_id']}")
        elif obj["status"] == "duplicate":
            lines.append(
                "  (this version was delivered before: nothing loaded again; below is what that delivery left)"
            )
        if obj.get("reason"):
            lines.append(f"  reason         {obj.get('reason_code') or ''}: {obj['reason']}".replace(" : ", " "))
    return lines


def query_hint(db_path: Path, table: str) -> str:
    db = "" if db_path.resolve() == default_db_path().resolve() else f" --db-path {db_path}"
    return f'  {sys.executable} {QUERY_TOOL}{db} "SELECT * FROM {table} ORDER BY LOADED_AT DESC, SOURCE_LINE LIMIT 10"'


def run(file: Path, key: str, db_path: Path) -> int:
    """Upload ``file`` under ``key``, deliver its event to the handler, print the report; the exit status."""
    make_importable()
    quiet_by_default()
    from pipeline.errors import ConfigurationError, PipelineError
    from pipeline.settings import Settings
    from tools.emulated.local_queue import QueueSettings
    from tools.emulated.local_stack import DATABASE, local_stack

    data = file.read_bytes()
    with local_stack(db_path) as stack:  # DatabaseInUseError when another process serves db_path
        try:
            settings = Settings.from_env({**os.environ, **stack.function_env()})
        except ConfigurationError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        tables = Tables(settings.target_table, settings.rejects_table, settings.ledger_table, settings.monitoring_table)
        # One file: no batching window to wait out (the template's is for bursts), one copy is enough.
        queue = QueueSettings.from_template(batching_window_seconds=0, maximum_concurrency=1)
        if not queue.notifies(key):
            print(
                f"error: S3 notifies the queue only for keys {queue.filters_text()} (template.yaml); "
                f"{key!r} would never reach the function: give KEY=...",
                file=sys.stderr,
            )
            return EXIT_USAGE
        try:
            summary = deliver(stack, key, data, queue)
        except PipelineError as exc:
            retry = "a retry may help" if exc.retriable else "a retry will not help"
            print(f"error: {file} was not loaded ({exc.reason}: {exc}); {retry}", file=sys.stderr)
            if isinstance(exc, ConfigurationError):
                return EXIT_USAGE
            return EXIT_RETRIABLE if exc.retriable else EXIT_FAILED
        errored = [o for o in summary["objects"] if o["status"] == "error"]
        for obj in errored:  # the message went back to the queue: on the deployed stack it is retried
            print(
                f"error: {file} was not loaded ({obj['reason_code']}: {obj['reason']}); a retry may help",
                file=sys.stderr,
            )
        if errored:
            return EXIT_RETRIABLE
        print("Load summary:")
        print("\n".join(summary_lines(summary)))
        print(f"  model          {served_model_version() or '?'} ({served_model_dir()})")
        conn = stack.snowflake_connect()
        try:
            cur = conn.cursor()
            outcomes = {obj["key"]: report(cur, tables, obj) for obj in summary["objects"]}
        finally:
            conn.close()
    print(
        f"\nThe emulated Snowflake is kept in {db_path}/{DATABASE}.db, the served model's own (another model has"
        f" its own folder under {DB_ROOT}/; `rm -rf {db_path}` starts afresh). Query it:"
    )
    print(query_hint(db_path, tables.target))
    # A re-run of a file that failed is a duplicate, and still a failure: the ledger decides.
    failed = [o for o in summary["objects"] if outcomes[o["key"]] != "LOADED"]
    for obj in failed:
        print(f"error: {file} was recorded {outcomes[obj['key']]}: see the reason above", file=sys.stderr)
    return EXIT_LOADED if summary["objects"] and not failed else EXIT_FAILED


def run_with_status(file: Path, key: str, db_path: Path) -> int:
    """``run``, with what it did not foresee mapped to the documented statuses: a notification that never
    reached the function is retriable (3); anything else is the tool's own failure (4), never "recorded FAILED"
    (1, which is what Python's own status for an uncaught exception would say)."""
    from tools.emulated.local_stack import DatabaseInUseError

    try:
        return run(file, key, db_path)
    except DatabaseInUseError as exc:
        print(f"error: {file} was not loaded: {exc}", file=sys.stderr)
        return EXIT_RETRIABLE
    except TimeoutError as exc:
        print(f"error: {file} was not loaded ({exc}); a retry may help", file=sys.stderr)
        return EXIT_RETRIABLE
    except Exception:
        traceback.print_exc()
        print(f"error: the tool itself failed while scoring {file} (traceback above)", file=sys.stderr)
        return EXIT_TOOL_FAILED


def parse_args(argv: Sequence[str] | None, *, default_file: Path | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    if default_file is None:
        parser.add_argument("file", type=Path, help="a CSV file (.csv, or gzipped .csv.gz)")
    else:
        parser.add_argument("--csv", dest="file", type=Path, default=default_file, help="the CSV file to load")
    parser.add_argument("--key", help="the S3 key to upload it under (default: incoming/<file name>)")
    parser.add_argument(
        "--db-path",
        type=Path,
        default=None,
        help="where the emulated Snowflake keeps its data (default: .local/snowflake/<the served model's version>/)",
    )
    args = parser.parse_args(argv)
    args.db_path = args.db_path or default_db_path()
    if not args.file.is_file():
        parser.error(f"no such file: {args.file}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_with_status(args.file, args.key or default_key(args.file), args.db_path)


if __name__ == "__main__":
    raise SystemExit(main())
