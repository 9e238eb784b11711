"""The measured runs of bench_e2e.py, each in a fresh process (``bench_e2e.py --child SPEC``): the handler
(``pipeline``), the bare I/O floor (``floor``) and the naive handler (``naive``); each reports its own figures.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from tools.emulated.stack_process import (
    peak_rss_mb,
    process_cpu_s,
    stack_from_env,
)


class _CpuMeter:
    """CPU seconds of this process and of the local stack's process over the measured window."""

    def __init__(self) -> None:
        self._stack_pid = int(os.environ["BENCH_STACK_PID"])
        self._self0 = time.process_time()
        self._stack0 = process_cpu_s(self._stack_pid)

    def read(self) -> dict[str, float]:
        return {
            "function_cpu_s": time.process_time() - self._self0,
            "stack_cpu_s": process_cpu_s(self._stack_pid) - self._stack0,
        }


def child(spec_text: str) -> int:
    import warnings

    warnings.simplefilter("ignore")
    spec = json.loads(spec_text)
    kind, event, options = spec["kind"], spec["event"], spec["options"]
    result = {"pipeline": child_pipeline, "floor": child_floor, "naive": child_naive}[kind](event, options)
    result["peak_rss_mb"] = peak_rss_mb()
    _drop_tables()
    print(json.dumps({"bench": result}), flush=True)
    return 0


def _count_monitor_cpu() -> dict[str, float]:
    """Wrap FileMonitor.add and result to add up the CPU time of the thread that calls them (the monitor stage's
    own work: its wall time also counts the slices the parser and staging threads take meanwhile)."""
    from monitoring.monitor import FileMonitor

    spent = {"monitor_thread_cpu_s": 0.0}

    def counted(method: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                spent["monitor_thread_cpu_s"] += time.thread_time() - start

        return run

    FileMonitor.add = counted(FileMonitor.add)  # type: ignore[method-assign]
    FileMonitor.result = counted(FileMonitor.result)  # type: ignore[method-assign]
    return spent


def child_pipeline(event: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    from tools.emulated.local_stack import LambdaContext

    monitor_cpu = _count_monitor_cpu() if options.get("monitor_cpu") else {}
    t0 = time.perf_counter()
    from handler import app  # init: settings, model, clients (build_pipeline at import)

    init_s = time.perf_counter() - t0
    rss_after_init = peak_rss_mb()

    # A warm container: the connection is open, as the floor's is before its clock starts. The first event's
    # extra cost (login) is measured by cold_start.py.
    app.build_pipeline().warehouse._connection()
    cpu = _CpuMeter()
    t0 = time.perf_counter()
    summary = app.lambda_handler(event, LambdaContext(function_name="bench", aws_request_id="bench"))  # type: ignore[arg-type]
    wall = time.perf_counter() - t0
    cpu_s = cpu.read()
    obj = summary["objects"][0]
    if obj["status"] != "loaded":
        raise RuntimeError(f"not loaded: {obj}")
    return {
        "kind": "pipeline",
        "seconds": wall,
        **cpu_s,
        "rows": obj["rows_loaded"] + obj["rows_rejected"],
        "rows_loaded": obj["rows_loaded"],
        "rows_rejected": obj["rows_rejected"],
        "rows_flagged": obj["rows_flagged"],
        "stages": obj["seconds"],
        "init_s": init_s,
        "rss_after_init_mb": rss_after_init,
        **monitor_cpu,
    }


def _drop_tables() -> None:
    """After the measurement: drop this run's tables, so the emulator does not grow from one run to the next.

    A long-lived fakesnow holding every earlier run's million rows made later INSERT ... SELECTs (the pipeline's
    publish) twice as slow as the first; the floor, which has no publish, did not notice.
    """
    conn = stack_from_env(os.environ).snowflake_connect()
    try:
        for var in ("TARGET_TABLE", "REJECTS_TABLE", "LEDGER_TABLE"):
            conn.cursor().execute(f"DROP TABLE IF EXISTS {os.environ[var]}")
    finally:
        conn.close()


def _create_like(conn: Any, table: str, frame: Any) -> None:
    """fakesnow has no INFER_SCHEMA (write_pandas' auto_create_table): create the table from the dtypes."""
    types = {"f": "FLOAT", "i": "NUMBER(19,0)", "u": "NUMBER(19,0)", "b": "BOOLEAN"}
    cols = ", ".join(f"{c} {types.get(t.kind, 'VARCHAR')}" for c, t in frame.dtypes.items())
    conn.cursor().execute(f"CREATE TABLE IF NOT EXISTS {table} ({cols})")


def _ref(event: dict[str, Any]) -> tuple[str, str]:
    from urllib.parse import unquote_plus

    record = event["Records"][0]["s3"]
    return record["bucket"]["name"], unquote_plus(record["object"]["key"])


def child_floor(event: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Streamed GET -> pyarrow parse in chunks -> one write_pandas per chunk. Nothing else."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    from snowflake.connector.pandas_tools import write_pandas

    from adapters.snowflake import WRITE_PANDAS_OPTIONS
    from pipeline.csv_reader import DEFAULT_BLOCK_SIZE
    from pipeline.settings import Settings

    chunk_rows = int(os.environ.get("CHUNK_ROWS") or Settings.model_fields["chunk_rows"].default)  # the pipeline's
    bucket, key = _ref(event)
    stack = stack_from_env(os.environ)
    s3, conn = stack.client("s3"), stack.snowflake_connect()
    table = os.environ["TARGET_TABLE"]
    cpu = _CpuMeter()
    t0 = time.perf_counter()
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    stream: Any = body
    if key.endswith(".gz"):
        import gzip

        stream = gzip.GzipFile(fileobj=body)
    reader = pacsv.open_csv(stream, read_options=pacsv.ReadOptions(use_threads=False, block_size=DEFAULT_BLOCK_SIZE))
    rows = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    first = True

    def flush() -> None:
        nonlocal first, rows
        frame = pa.Table.from_batches(pending).to_pandas()
        frame.columns = [c.upper().replace(" ", "_") for c in frame.columns]
        if first:
            _create_like(conn, table, frame)
        write_pandas(conn, frame, table, quote_identifiers=False, use_logical_type=True, **WRITE_PANDAS_OPTIONS)
        first = False
        rows += len(frame)

    for batch in reader:
        pending.append(batch)
        pending_rows += batch.num_rows
        if pending_rows >= chunk_rows:
            flush()
            pending, pending_rows = [], 0
    if pending:
        flush()
    wall = time.perf_counter() - t0
    cpu_s = cpu.read()
    conn.close()
    return {"kind": "floor", "seconds": wall, "rows": rows, **cpu_s}


def child_naive(event: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The whole object read, pandas.read_csv, one interpreter call per row (sampled), one write_pandas."""
    import io

    import numpy as np
    import pandas as pd
    from snowflake.connector.pandas_tools import write_pandas

    from benchmarks.raw_interpreter import RawInterpreter
    from scoring import Scorer
    from scoring.scorer import default_model_dir

    scorer = Scorer.load()
    meta = scorer.metadata

    interp = RawInterpreter.for_model(default_model_dir(), meta)
    bucket, key = _ref(event)
    stack = stack_from_env(os.environ)
    s3, conn = stack.client("s3"), stack.snowflake_connect()
    t0 = time.perf_counter()
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    frame = pd.read_csv(io.BytesIO(data), compression="gzip" if key.endswith(".gz") else None)
    del data
    read_s = time.perf_counter() - t0
    x = frame[meta.feature_names].to_numpy(dtype=np.float32)
    n = len(frame)
    sample = min(n, int(options.get("naive_sample", 20_000)))
    it, i_in, i_out = interp.interpreter, interp.input_index, interp.output_index
    t1 = time.perf_counter()
    probs = np.empty(sample, dtype=np.float32)
    # The naive handler's loop: one row at a time out of the DataFrame, one interpreter call per row.
    for i, row in enumerate(frame[meta.feature_names].head(sample).itertuples(index=False, name=None)):
        it.set_tensor(i_in, np.asarray(row, dtype=np.float32).reshape(1, -1))
        it.invoke()
        probs[i] = it.get_tensor(i_out)[0]
    score_sample_s = time.perf_counter() - t1
    score_s = score_sample_s * n / sample
    # The rest of the rows' scores, untimed (the loop's cost is extrapolated above), so the write is the real one.
    rest = scorer.score(x[sample:]).malignant_probability if n > sample else np.empty(0, np.float32)
    frame["MALIGNANT_PROBABILITY"] = np.concatenate([probs, rest]).astype(np.float64)
    frame["CLASSIFICATION"] = (frame["MALIGNANT_PROBABILITY"] >= 0.5).astype(np.int8)
    frame["CONDITION"] = np.where(frame["CLASSIFICATION"] == 1, "malignant", "benign")
    frame.columns = [c.upper().replace(" ", "_") for c in frame.columns]
    t2 = time.perf_counter()
    _create_like(conn, os.environ["TARGET_TABLE"], frame)
    write_pandas(conn, frame, os.environ["TARGET_TABLE"], quote_identifiers=False)
    write_s = time.perf_counter() - t2
    conn.close()
    return {
        "kind": "naive",
        "seconds": read_s + score_s + write_s,
        "rows": n,
        "read_parse_s": read_s,
        "per_row_score_s_extrapolated": score_s,
        "per_row_sample_rows": sample,
        "per_row_sample_s": score_sample_s,
        "write_s": write_s,
    }
