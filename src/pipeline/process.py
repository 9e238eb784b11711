"""One S3 object through the whole pipeline: read -> convert -> score -> stage -> publish, exactly once.

``Pipeline.process`` is the one place that decides what happens to an object. It never logs a measurement
value: reasons name the column and line, and raw text goes only to the rejects table.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import mimetypes
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from adapters.s3 import ObjectRef, OpenedObject, S3Source
from adapters.snowflake import (
    REJECT_COLUMNS,
    WRITE_PANDAS_OPTIONS,
    LoadIdentity,
    LoadSession,
    SnowflakeWarehouse,
    SourceOrder,
    new_load_id,
)
from pipeline.csv_reader import DEFAULT_BLOCK_SIZE, LARGE_BLOCK_SIZE, CsvChunks, TextChunk
from pipeline.errors import PermanentError, UnusableFileError
from pipeline.features import convert_features
from pipeline.output import OutputLayout
from pipeline.plausibility import plausibility_check
from pipeline.settings import LoadMode, Settings
from scoring import Scorer

STAGES = ("s3_read", "parse", "convert", "check", "score", "stage", "publish")


@dataclass
class ObjectResult:
    bucket: str
    key: str
    version: str | None
    status: str  # loaded | duplicate | failed
    rows_loaded: int = 0
    rows_rejected: int = 0
    rows_blank: int = 0
    rows_flagged: int = 0  # loaded with OUT_OF_RANGE_FEATURES set
    load_id: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Timer:
    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start


class _TimedStream(io.RawIOBase):
    """Attributes the time spent waiting on S3 to the s3_read stage."""

    def __init__(self, raw: io.RawIOBase, timer: _Timer) -> None:
        self._raw = raw
        self._timer = timer

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        start = time.perf_counter()
        try:
            return self._raw.readinto(buffer) or 0
        finally:
            self._timer.seconds["s3_read"] += time.perf_counter() - start


class _BackgroundStager:
    """Stages chunk k on one worker thread while the caller parses, converts and scores chunk k+1.

    At most one write is in flight (memory stays at about two chunks). Writes keep their order on the one
    connection, which only this thread uses meanwhile. A failed write is re-raised in the caller at the next
    submit or at the end; on the way out everything in flight is waited for, so nothing writes after the
    caller has moved on (to a rollback, cleanup or the publish).
    """

    def __init__(self, session: LoadSession, staged_columns: list[tuple[str, str]], timer: _Timer) -> None:
        self._session = session
        self._columns = staged_columns
        self._timer = timer
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stage")
        self._pending: Future[None] | None = None

    def __enter__(self) -> _BackgroundStager:
        return self

    def submit(self, frame: pd.DataFrame | None, rejects: pd.DataFrame | None) -> None:
        self._wait()
        self._pending = self._pool.submit(self._write, frame, rejects)

    def _write(self, frame: pd.DataFrame | None, rejects: pd.DataFrame | None) -> None:
        with self._timer("stage"):
            if frame is not None:
                self._session.stage_rows(frame, self._columns)
            if rejects is not None:
                self._session.stage_rejects(rejects)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self._wait()
            elif self._pending is not None:
                # The caller's error is the one that matters; the in-flight write only has to be finished.
                with contextlib.suppress(BaseException):
                    self._pending.result()
                self._pending = None
        finally:
            self._pool.shutdown(wait=True)


class Pipeline:
    def __init__(self, settings: Settings, scorer: Scorer, source: S3Source, warehouse: SnowflakeWarehouse) -> None:
        self.settings = settings
        self.scorer = scorer
        self.source = source
        self.warehouse = warehouse
        self.plausibility = plausibility_check(scorer.metadata, settings)
        self._warm_up()

    def _warm_up(self) -> None:
        # A failure here is ignored: the real event will raise it properly.
        with contextlib.suppress(Exception):
            warm_up(self.scorer, self.settings)

    def process(self, ref: ObjectRef) -> ObjectResult:
        """Load one object version. Permanent input problems are recorded and returned; transient ones raise."""
        timer = _Timer()
        opened: OpenedObject | None = None
        unopenable: PermanentError | None = None
        sequencer = ref.sequencer  # the event's; the GET's reply does not carry it
        if ref.version is None:  # the event did not say which version: learn it from the GET
            try:
                opened = self._open(ref, timer)
                ref = opened.ref
            except PermanentError as exc:
                # Without a version the ledger cannot key on it: the key + "unknown" records the failure once.
                ref, unopenable = dataclasses.replace(ref, version_id="unknown"), exc
        assert ref.version is not None
        identity = LoadIdentity(ref.bucket, ref.key, ref.version, new_load_id())
        result = ObjectResult(
            ref.bucket, ref.key, ref.version, "loaded", load_id=identity.load_id, seconds=timer.seconds
        )
        model_version = self.scorer.model_version

        with self.warehouse.session(identity) as session:
            status, previous_load = session.claim(model_version)
            if status in {"LOADED", "FAILED"}:
                result.status, result.load_id = "duplicate", previous_load
                if opened is not None:
                    opened.body.close()
                return result
            try:
                if unopenable is not None:
                    raise unopenable
                opened = opened or self._open(ref, timer)
                layout = self._load_object(session, opened, timer, result)
            except PermanentError as exc:
                session.cleanup()
                session.record_failure(exc.reason, str(exc), model_version)
                result.status, result.reason_code, result.reason = "failed", exc.reason, str(exc)
                result.rows_loaded = result.rows_rejected = 0
                return result
            with timer("publish"):
                published = session.publish(
                    layout.staged_column_names,
                    model_version,
                    SourceOrder.of(sequencer, opened.last_modified),
                    layout.merge_key_columns,
                )
            # What the publish inserted (upsert may keep staged rows out, as rejects): the ledger's counts.
            result.rows_loaded, result.rows_rejected = published.rows_loaded, published.rows_rejected
            result.rows_flagged = published.rows_flagged
            if not published.published:
                result.status, result.load_id = "duplicate", published.load_id
        return result

    def _open(self, ref: ObjectRef, timer: _Timer) -> OpenedObject:
        with timer("s3_read"):
            return self.source.open(ref, max_bytes=self.settings.max_object_bytes)

    def _load_object(
        self, session: LoadSession, opened: OpenedObject, timer: _Timer, result: ObjectResult
    ) -> OutputLayout:
        """Read with small parser blocks (flat memory); a file with a longer record is read once more, from S3."""
        try:
            with opened.body:
                return self._load(session, opened.ref, _TimedStream(opened.body, timer), timer, result)
        except UnusableFileError as exc:
            if exc.reason != "record_too_large":
                raise
        session.discard_staged()
        result.rows_blank = 0
        again = self.source.open(opened.ref, max_bytes=self.settings.max_object_bytes)  # the same version
        with again.body:
            return self._load(
                session, again.ref, _TimedStream(again.body, timer), timer, result, block_size=LARGE_BLOCK_SIZE
            )

    def _load(
        self,
        session: LoadSession,
        ref: ObjectRef,
        body: io.RawIOBase,
        timer: _Timer,
        result: ObjectResult,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> OutputLayout:
        """Parse, convert, score and stage every chunk; return the layout the rows were staged in."""
        s = self.settings
        features = self.scorer.metadata.feature_names
        with timer("parse"):
            chunks = CsvChunks(
                body,
                required=features,
                chunk_rows=s.chunk_rows,
                max_uncompressed_bytes=s.max_uncompressed_bytes,
                block_size=block_size,
                header_matching=s.header_matching,
            )
            layout = OutputLayout(chunks.columns, self.scorer.metadata, s)
        with timer("stage"):
            session.ensure_target(layout.ddl_columns())
        staged_columns = layout.staged_ddl()
        lineage = {
            "SOURCE_BUCKET": ref.bucket,
            "SOURCE_KEY": ref.key,
            "SOURCE_VERSION": str(ref.version),
            "MODEL_VERSION": self.scorer.model_version,
            "LOAD_ID": session.identity.load_id,
        }
        iterator = iter(chunks)
        with _BackgroundStager(session, staged_columns, timer) as stager:
            while True:
                with timer("parse"):
                    chunk = next(iterator, None)
                if chunk is None:
                    break
                stager.submit(*self._prepare_chunk(chunks, layout, chunk, lineage, timer, result))
        if session.rows_staged == 0 and session.rejects_staged == 0:
            raise UnusableFileError("the file has a header but no data rows", reason="no_rows")
        result.rows_loaded, result.rows_rejected = session.rows_staged, session.rejects_staged
        return layout

    def _prepare_chunk(
        self,
        chunks: CsvChunks,
        layout: OutputLayout,
        chunk: TextChunk,
        lineage: dict[str, str],
        timer: _Timer,
        result: ObjectResult,
    ) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
        """Convert and score one chunk: the rows to stage and the rejects to stage (either may be None)."""
        names = self.scorer.metadata.feature_names
        with timer("convert"):
            converted = convert_features(chunk.table, names, decimal_mark=chunks.decimal_mark)
            converted = layout.reject_missing_merge_keys(chunk.table, converted)
            result.rows_blank += int(converted.blank.sum())
        with timer("check"):  # impossible values rejected, far out-of-range ones flagged (pipeline.plausibility)
            checked = self.plausibility.check(converted)
            converted, ok = checked.converted, checked.converted.ok
        frame = None
        if ok.any():
            batch = converted.model_input()
            with timer("score"):
                scores = self.scorer.score(batch)
            with timer("convert"):
                keep = None if converted.all_ok else pa.array(ok)
                text = {
                    c.source: pd.arrays.ArrowExtensionArray(
                        chunk.table.column(c.source) if keep is None else chunk.table.column(c.source).filter(keep)
                    )
                    for c in layout.data_columns
                    if c.source is not None and c.sql_type != "FLOAT"
                }
                lines = chunk.lines if keep is None else chunk.lines[ok]
                frame = layout.frame(text, converted.good_values, scores, lines, checked.flags)
        return frame, self._rejects(chunks, chunk, converted.problems, lineage)

    def _rejects(
        self, chunks: CsvChunks, chunk: TextChunk, problems: list[Any], lineage: dict[str, str]
    ) -> pd.DataFrame | None:
        limit = self.settings.max_reject_text_chars
        rows: list[tuple[Any, ...]] = []
        for invalid in chunk.invalid:
            rows.append((invalid.line, None, invalid.reason, invalid.text[:limit]))
        for problem in problems:
            raw = _record_text([chunk.table.column(c)[problem.index].as_py() for c in chunks.columns], chunks.delimiter)
            rows.append((int(chunk.lines[problem.index]), problem.column, problem.reason, raw[:limit]))
        if not rows:
            return None
        frame = pd.DataFrame(rows, columns=["SOURCE_LINE", "COLUMN_NAME", "REASON", "RAW_TEXT"])
        frame.insert(0, "SOURCE_VERSION", lineage["SOURCE_VERSION"])
        frame.insert(0, "SOURCE_KEY", lineage["SOURCE_KEY"])
        frame.insert(0, "SOURCE_BUCKET", lineage["SOURCE_BUCKET"])
        frame.insert(0, "LOAD_ID", lineage["LOAD_ID"])
        frame["SOURCE_LINE"] = frame["SOURCE_LINE"].astype(np.int64)
        return frame[[n for n, _ in REJECT_COLUMNS]]


def _record_text(fields: list[Any], delimiter: str) -> str:
    """A record's fields written back as one CSV line (the raw text pyarrow parsed them from)."""
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="").writerow(["" if f is None else f for f in fields])
    return out.getvalue()


def warm_up(scorer: Scorer, settings: Settings) -> None:
    """Run one synthetic row through convert, score, output and Parquet at init, not on the first event.

    The first call of a pyarrow compute function, the first DataFrame -> Parquet write and the scorer's first
    invocation each cost up to a second once per process, and the first write_pandas PUT reads the system's
    MIME tables; paying that here moves it into Lambda's init phase. Nothing is read or written outside this
    process. The synthetic file's header has only the features, so the layout is built as for an append (upsert
    keys such as SAMPLE_ID are not in it).
    """
    import pyarrow.parquet as pq

    mimetypes.init()
    names = scorer.metadata.feature_names
    table = pa.table({n: pa.array(["1"], pa.string()) for n in names})
    checked = plausibility_check(scorer.metadata, settings).check(convert_features(table, names))
    converted = checked.converted
    scores = scorer.score(converted.model_input())
    layout = OutputLayout(
        names, scorer.metadata, settings.model_copy(update={"load_mode": LoadMode.APPEND, "merge_keys": []})
    )
    frame = layout.frame({}, converted.good_values, scores, np.array([2], np.int64), checked.flag_column())
    pq.write_table(pa.Table.from_pandas(frame), io.BytesIO(), **WRITE_PANDAS_OPTIONS)  # the staging writes' options
