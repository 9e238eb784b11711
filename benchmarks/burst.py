"""A burst of small files through the deployed trigger, locally, under Snowflake's lock rules.

N small CSV files (20-40 rows each, made by tools/make_files.py) are uploaded at once, as fast as 16 threads can,
to a bucket of the local stack (tools/emulated/local_stack.py: moto + fakesnow) wired as template.yaml wires the input
bucket: S3 notifications -> ingest queue (-> DLQ after maxReceiveCount). The local poller (emulated/poller.py) plays
Lambda's event source mapping with the template's batch size and batching window and ``--concurrency`` copies
of the function (default: the template's QueueMaximumConcurrency). The function talks to the Snowflake model
(tools/emulated/snowflake_model.py: per-table locks, FIFO, the 21st waiter refused with 000625, latency per statement);
the results are read through fakesnow's plain port.

It runs until every file has a final result, or the queue is drained (what failed too often is in the DLQ), or
``--timeout``. Differences from the cloud, on purpose:

* the visibility timeout is ``--visibility-timeout`` (120 s), not the template's 5700 s, so a failed message comes
  back within the run; an invocation that took longer than it is reported (its messages may be delivered twice);
* ReceiveMessage long-polls 1 s (Lambda: 20 s) and every copy polls from the start (Lambda scales up gradually);
* each copy is built on its first batch, in the measured time, as Lambda's cold starts are; the copies, moto and
  fakesnow share this process (and its GIL) on this machine.

Figures (per mode):

* ``loaded_once`` / ``duplicated_rows``: read from the emulator's tables, not from the function's answers: a file
  is loaded once when the ledger has exactly one LOADED row for its key and the target holds exactly the file's
  rows under its key; ``duplicated_rows`` counts target rows beyond each file's own count;
* ``p50_seconds`` / ``p95_seconds``: from the moment the file's upload started to the moment the poller saw the
  invocation that loaded it return (checked every 50 ms); the rows were committed, hence visible, before it returned;
* ``files_per_minute``: files loaded once / (first upload -> last file loaded);
* ``round_trips_per_file``: statements the model served (PUT included, logins not) / files, everything included
  (table creation, retries); ``ledger_lock_statements_per_file``: statements run while holding the ledger's lock;
* ``time``: where the copies' time went: waiting for the ledger's lock, the modelled latency of statements, the
  rest (the function's own work: S3, parsing, scoring, Parquet; and fakesnow executing the statements).

``--compare`` runs one file per transaction (BATCH_PUBLISH=false) then the batched publish (true), same stack,
same concurrency, and reports the ratio of files per minute (goal: >= 3x, 0 duplicated rows, 0 in the DLQ).

``--db-path DIR`` keeps fakesnow's DuckDB file (DIR/TUMOURS.db) and the list of files (DIR/burst-files.csv); the
output prints the query that checks it independently (tests/integration/test_bench_smoke.py runs it).

Run: ``PYTHONPATH=src:. .venv/bin/python benchmarks/burst.py --files 100 --compare --db-path .local/burst``.
Writes benchmarks/out/burst.json (``--json FILE``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
for _p in (REPO_ROOT / "src", REPO_ROOT):  # runnable as a plain script
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from benchmarks.machine import machine_info  # noqa: E402
from benchmarks.report import write_report  # noqa: E402
from tools.emulated.local_queue import QueueSettings, wire_queue  # noqa: E402
from tools.emulated.poller import Poller, queue_drained  # noqa: E402
from tools.emulated.snowflake_model import Latency, SnowflakeModel  # noqa: E402

OUT = REPO_ROOT / "benchmarks" / "out" / "burst.json"
PREFIX = "incoming/burst/"
UPLOAD_THREADS = 16
MANIFEST = "burst-files.csv"
GOAL_RATIO = 3.0
# Runs a check file (check_sql) on the kept DuckDB file, read-only, and prints [(files, loaded_once,
# duplicated_rows)]: printed with the file names after a run.
CHECK_COMMAND = (
    '.venv/bin/python -c "import duckdb, sys; '
    'print(duckdb.connect(sys.argv[1], read_only=True).sql(open(sys.argv[2]).read()).fetchall())"'
)


def make_bodies(files: int, seed: int = 11) -> dict[str, bytes]:
    """``files`` CSV files of 20-40 rows each (tools/make_files.py's rows: real rows with jitter), by key."""
    from tools.make_files import make_file

    counts = [20 + n % 21 for n in range(files)]
    with tempfile.TemporaryDirectory(prefix="burst-") as tmp:
        header, *rows = make_file(sum(counts), Path(tmp) / "rows.csv", seed=seed).read_text().splitlines()
    bodies, start = {}, 0
    for n, count in enumerate(counts):
        bodies[f"{PREFIX}file-{n:04d}.csv"] = ("\n".join([header, *rows[start : start + count]]) + "\n").encode()
        start += count
    return bodies


def rows_of(body: bytes) -> int:
    return body.count(b"\n") - 1


def tables_of(mode: str) -> dict[str, str]:
    name = mode.upper()
    return {"TARGET_TABLE": f"SCORES_{name}", "REJECTS_TABLE": f"REJECTS_{name}", "LEDGER_TABLE": f"LOADS_{name}"}


def loaded_once(query: Any, tables: dict[str, str], expected: dict[str, int]) -> dict[str, Any]:
    """Read from the emulator: the files whose ledger has one LOADED row and whose rows landed once."""

    def by_key(sql: str) -> dict[str, tuple[Any, ...]]:
        try:
            return {str(k): tuple(v) for k, *v in query(sql)}
        except Exception as exc:  # no such table: nothing was loaded
            if "does not exist" not in str(exc):
                raise
            return {}

    ledger = by_key(
        f"SELECT SOURCE_KEY, COUNT_IF(STATUS = 'LOADED'), MAX(ROWS_LOADED), COUNT(*) "
        f"FROM {tables['LEDGER_TABLE']} GROUP BY 1"
    )
    target = by_key(f"SELECT SOURCE_KEY, COUNT(*) FROM {tables['TARGET_TABLE']} GROUP BY 1")
    once = [
        k for k, rows in expected.items() if ledger.get(k, (0,))[:2] == (1, rows) and target.get(k, (0,))[0] == rows
    ]
    return {
        "loaded_once": len(once),
        "duplicated_rows": sum(max(0, int(target.get(k, (0,))[0]) - rows) for k, rows in expected.items()),
        "ledger_rows": sum(int(v[2]) for v in ledger.values()),
        "unexpected_keys": len((set(ledger) | set(target)) - set(expected)),
    }


def check_sql(db_file: Path, manifest: Path, mode: str) -> str:
    """DuckDB SQL over the kept file: files, loaded once (one LOADED ledger row, the file's rows in the target
    once), duplicated rows. Reads the list of files the benchmark uploaded, not what the function said."""
    t = tables_of(mode)
    db = db_file.stem
    return (
        f"WITH files AS (SELECT key, rows FROM read_csv('{manifest}')), "
        f"ledger AS (SELECT SOURCE_KEY, COUNT(*) FILTER (WHERE STATUS = 'LOADED') AS loaded, "
        f"MAX(ROWS_LOADED) AS ledger_rows FROM {db}.SCORING.{t['LEDGER_TABLE']} GROUP BY 1), "
        f"landed AS (SELECT SOURCE_KEY, COUNT(*) AS n FROM {db}.SCORING.{t['TARGET_TABLE']} GROUP BY 1) "
        f"SELECT COUNT(*) AS files, "
        f"COUNT(*) FILTER (WHERE ledger.loaded = 1 AND ledger.ledger_rows = files.rows AND landed.n = files.rows) "
        f"AS loaded_once, COALESCE(SUM(GREATEST(landed.n - files.rows, 0)), 0) AS duplicated_rows "
        f"FROM files LEFT JOIN ledger ON ledger.SOURCE_KEY = files.key "
        f"LEFT JOIN landed ON landed.SOURCE_KEY = files.key"
    )


def run_db_check(db_file: Path, sql: str) -> dict[str, int]:
    import duckdb

    conn = duckdb.connect(str(db_file), read_only=True)
    try:
        [row] = conn.sql(sql).fetchall()
    finally:
        conn.close()
    return {"files": int(row[0]), "loaded_once": int(row[1]), "duplicated_rows": int(row[2])}


def percentile(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return float(statistics.quantiles(values, n=100, method="inclusive")[q - 1])


def run_mode(
    stack: Any,
    model: SnowflakeModel,
    port: int,
    bodies: dict[str, bytes],
    settings: QueueSettings,
    *,
    batch_publish: bool,
    timeout: float,
    progress: bool,
) -> dict[str, Any]:
    """One burst: fresh tables, bucket and queues; upload every file at once; poll until done."""
    mode = "batched" if batch_publish else "per_file"
    tables = tables_of(mode)
    bucket = f"burst-{mode.replace('_', '-')}"
    queues = wire_queue(stack, settings, bucket=bucket, queue_name=f"burst-ingest-{mode}", dlq_name=f"burst-dlq-{mode}")
    os.environ.update(
        stack.function_env() | tables | {"SNOWFLAKE_PORT": str(port), "BATCH_PUBLISH": str(batch_publish).lower()}
    )
    from handler import app  # imported once the environment is set: it builds its pipeline at import, as at init
    from pipeline.settings import get_settings

    get_settings.cache_clear()
    app.build_pipeline.cache_clear()
    model.reset_trace()
    counts_before = model.counts.copy()

    started_upload: dict[str, float] = {}
    seen_loaded: dict[str, float] = {}
    uploads_done = threading.Event()
    s3 = stack.client("s3")

    def put(item: tuple[str, bytes]) -> None:
        started_upload[item[0]] = time.monotonic()
        s3.put_object(Bucket=bucket, Key=item[0], Body=item[1])

    def upload_all() -> None:
        with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
            list(pool.map(put, bodies.items()))
        uploads_done.set()

    read = 0

    def done(poller: Poller) -> bool:
        nonlocal read
        now = time.monotonic()
        invocations = poller.report.invocations[read:]
        read += len(invocations)
        for invocation in invocations:
            for obj in invocation.objects:
                if obj.get("status") == "loaded" and obj.get("key") in bodies:
                    seen_loaded.setdefault(obj["key"], now)
        if not uploads_done.is_set():
            return False
        return len(seen_loaded) == len(bodies) or queue_drained(poller)

    first = time.monotonic()
    uploader = threading.Thread(target=upload_all, name="burst-upload", daemon=True)
    with Poller(stack, queues, settings, progress=progress) as poller:
        uploader.start()
        report = poller.run(done, timeout=timeout)
        uploader.join()
        done(poller)  # the invocations that ended after the last check

    conn = stack.snowflake_connect()  # fakesnow's plain port: no model, no latency
    try:
        db = loaded_once(
            lambda sql: conn.cursor().execute(sql).fetchall(), tables, {k: rows_of(b) for k, b in bodies.items()}
        )
    finally:
        conn.close()

    counts = model.counts - counts_before
    latencies = [seen_loaded[k] - started_upload[k] for k in seen_loaded]
    wall = (max(seen_loaded.values()) - first) if seen_loaded else report.seconds
    ledger_spans = model.lock_spans(tables["LEDGER_TABLE"])
    traces = model.traces().values()
    lock_wait = sum(step.waited for steps in traces for step in steps)
    modelled = sum(model.latency.of(step.kind) for steps in traces for step in steps)
    busy = sum(i.seconds for i in report.invocations)
    return {
        "files": len(bodies),
        **db,
        "dlq": report.in_dlq,
        "errors_000625": counts["errors_000625"],
        "p50_seconds": _round(percentile(latencies, 50)),
        "p95_seconds": _round(percentile(latencies, 95)),
        "files_per_minute": round(60 * db["loaded_once"] / wall, 1) if wall > 0 else None,
        "wall_seconds": round(wall, 2),
        "concurrency": settings.maximum_concurrency,
        "batch_publish": batch_publish,
        "round_trips_per_file": round(counts["statements"] / len(bodies), 2),
        "ledger_lock_statements_per_file": round(sum(ledger_spans) / len(bodies), 2),
        "ledger_lock_holdings": len(ledger_spans),
        "poller": {
            **report.as_dict(),
            "copies_used": len({i.copy for i in report.invocations}),
            "objects_per_invocation": round(len(report.objects()) / max(1, len(report.invocations)), 2),
            "longest_invocation_seconds": round(max((i.seconds for i in report.invocations), default=0.0), 2),
        },
        "time": {
            "copies_busy_seconds": round(busy, 1),
            "ledger_lock_wait_seconds": round(lock_wait, 1),
            "modelled_statement_latency_seconds": round(modelled, 1),
            "rest_seconds": round(busy - lock_wait - modelled, 1),
        },
        "tables": tables,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def summary_line(r: dict[str, Any]) -> str:
    t = r["time"]
    return (
        f"{'batched publish' if r['batch_publish'] else 'one file per transaction'} at concurrency "
        f"{r['concurrency']}: {r['loaded_once']}/{r['files']} loaded once, {r['duplicated_rows']} duplicated rows, "
        f"{r['dlq']} in the DLQ, {r['errors_000625']} x 000625; {r['files_per_minute']} files/min "
        f"({r['wall_seconds']} s); upload -> loaded p50 {r['p50_seconds']} s, p95 {r['p95_seconds']} s; "
        f"{r['round_trips_per_file']} round trips/file, {r['ledger_lock_statements_per_file']} under the ledger "
        f"lock/file ({r['ledger_lock_holdings']} holdings); {r['poller']['invocations']} invocations on "
        f"{r['poller']['copies_used']} copies, {r['poller']['objects_per_invocation']} objects each; copies busy "
        f"{t['copies_busy_seconds']} s = lock wait {t['ledger_lock_wait_seconds']} + statement latency "
        f"{t['modelled_statement_latency_seconds']} + rest {t['rest_seconds']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--concurrency", type=int, help="copies of the function (default: the template's)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--batch-publish", choices=["true", "false"], default="true", help="BATCH_PUBLISH")
    mode.add_argument("--compare", action="store_true", help="false then true, same stack, same concurrency")
    parser.add_argument("--batch-size", type=int, help="default: the template's")
    parser.add_argument("--batching-window", type=float, help="seconds (default: the template's)")
    parser.add_argument("--visibility-timeout", type=int, default=120, help="seconds (the template's: 5700)")
    parser.add_argument("--statement-latency", type=float, default=0.1, help="seconds a statement costs")
    parser.add_argument("--transfer-latency", type=float, default=0.4, help="seconds a PUT or COPY costs")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per mode")
    parser.add_argument("--db-path", type=Path, help="keep fakesnow's DuckDB file here (an empty folder)")
    parser.add_argument("--json", type=Path, default=OUT)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    # Before the handler's Logger is made: the function's own log lines (one per object, one per retried error)
    # would bury the figures; its outcomes are counted from the poller's report and the tables instead.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")

    from tools.emulated.local_stack import DATABASE, local_stack
    from tools.emulated.snowflake_model import modelled_snowflake

    template = QueueSettings.from_template()
    settings = QueueSettings.from_template(
        visibility_timeout=args.visibility_timeout,
        maximum_concurrency=args.concurrency,
        batch_size=args.batch_size,
        batching_window_seconds=args.batching_window,
    )
    db_file = args.db_path / f"{DATABASE}.db" if args.db_path else None
    if db_file is not None and db_file.exists():
        parser.error(f"{db_file} exists: give --db-path an empty folder (each run's counts must be its own)")
    modes = [False, True] if args.compare else [args.batch_publish == "true"]
    bodies = make_bodies(args.files)
    assert all(settings.notifies(key) for key in bodies)
    latency = Latency(statement=args.statement_latency, transfer=args.transfer_latency)
    print(
        f"{args.files} files of 20-40 rows; concurrency {settings.maximum_concurrency} (template: "
        f"{template.maximum_concurrency}), batch size {settings.batch_size}, batching window "
        f"{settings.batching_window_seconds:g} s, visibility timeout {settings.visibility_timeout} s (template: "
        f"{template.visibility_timeout} s), maxReceiveCount {settings.max_receive_count}; Snowflake model: "
        f"{latency.statement * 1000:g} ms a statement, {latency.transfer * 1000:g} ms a PUT/COPY",
        flush=True,
    )

    results: dict[str, dict[str, Any]] = {}
    # The strict model: an INSERT may wait behind another session's UPDATE of its table (Snowflake: "sometimes").
    model = SnowflakeModel(latency, insert_waits=True)
    with local_stack(args.db_path) as stack, modelled_snowflake(model) as port:
        for batch_publish in modes:
            result = run_mode(
                stack,
                model,
                port,
                bodies,
                settings,
                batch_publish=batch_publish,
                timeout=args.timeout,
                progress=not args.quiet,
            )
            results["batched" if batch_publish else "per_file"] = result
            print(summary_line(result), flush=True)
            if result["poller"]["timed_out"]:
                print(f"  TIMED OUT after {args.timeout:g} s", flush=True)
            if result["poller"]["longest_invocation_seconds"] > settings.visibility_timeout:
                print("  an invocation outlasted the visibility timeout: its messages may have been delivered twice")

    report: dict[str, Any] = {
        "config": {
            "files": args.files,
            "concurrency": settings.maximum_concurrency,
            "batch_size": settings.batch_size,
            "batching_window_seconds": settings.batching_window_seconds,
            "visibility_timeout": settings.visibility_timeout,
            "template_visibility_timeout": template.visibility_timeout,
            "max_receive_count": settings.max_receive_count,
            "latency": {"statement": latency.statement, "transfer": latency.transfer},
        },
        "machine": machine_info(),
        "results": results,
    }
    if len(results) == 1:
        report.update(next(iter(results.values())))  # the figures at the top level, as the issue names them
    else:
        ratio = results["batched"]["files_per_minute"] / results["per_file"]["files_per_minute"]
        batched = results["batched"]
        met = ratio >= GOAL_RATIO and batched["duplicated_rows"] == 0 and batched["dlq"] == 0
        met = met and batched["loaded_once"] == batched["files"]
        report["ratio_files_per_minute"] = round(ratio, 2)
        report["goal_met"] = met
        print(
            f"batched / one file per transaction: {ratio:.2f}x files per minute (goal >= {GOAL_RATIO:g}x, every "
            f"file loaded once, 0 duplicated rows, 0 in the DLQ): {'MET' if met else 'NOT MET'}"
        )
    if db_file is not None:
        manifest = args.db_path / MANIFEST
        manifest.write_text("key,rows\n" + "".join(f"{k},{rows_of(b)}\n" for k, b in bodies.items()))
        checks = {}
        print(f"fakesnow's DuckDB file: {db_file}; the files uploaded: {manifest}. Check them independently:")
        for name in results:
            sql = check_sql(db_file, manifest, name)
            sql_file = args.db_path / f"check-{name}.sql"
            sql_file.write_text(sql + "\n")
            checks[name] = {"sql_file": str(sql_file), "result": run_db_check(db_file, sql)}
            print(f"  {CHECK_COMMAND} {db_file} {sql_file}\n    -> {checks[name]['result']}")
        report["db_path"] = {"file": str(db_file), "manifest": str(manifest), "checks": checks}
    write_report(args.json, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
