"""One object version through the stages: read -> parse -> convert -> score -> stage -> publish, exactly once.

``Pipeline.process`` is the one place that decides what happens to an object. It never logs a measurement
value: reasons name the column and line, and raw text goes only to the rejects table. The object source and the
warehouse are ports (pipeline/ports.py); staging runs in the background (staging.py), stages are timed
(timing.py), and rows and rejects take their shape from output.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from pipeline.csv_reader import DEFAULT_BLOCK_SIZE, LARGE_BLOCK_SIZE, CsvChunks, TextChunk
from pipeline.errors import PermanentError, UnusableFileError
from pipeline.features import convert_features
from pipeline.output import OutputLayout, rejects_frame
from pipeline.plausibility import PlausibilityCheck, plausibility_check
from pipeline.ports import (
    LoadIdentity,
    LoadSession,
    ObjectRef,
    ObjectSource,
    OpenedObject,
    SourceOrder,
    Warehouse,
    new_load_id,
)
from pipeline.settings import Settings
from pipeline.staging import BackgroundStager
from pipeline.timing import StageTimer, TimedStream
from pipeline.warm_up import warm_up
from scoring import Scorer


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


@dataclass(eq=False)  # compared and hashed by identity, as one per container
class Pipeline:
    """The stages of one object, with the ports it reads from and writes to (built once per container)."""

    settings: Settings
    scorer: Scorer
    source: ObjectSource
    warehouse: Warehouse
    plausibility: PlausibilityCheck = field(init=False)

    def __post_init__(self) -> None:
        self.plausibility = plausibility_check(self.scorer.metadata, self.settings)
        # Warm up at construction (Lambda's init); a failure here is ignored: the real event will raise it properly.
        with contextlib.suppress(Exception):
            warm_up(self.scorer, self.settings, self.warehouse)

    def process(self, ref: ObjectRef) -> ObjectResult:
        """Load one object version. Permanent input problems are recorded and returned; transient ones raise."""
        timer = StageTimer()
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

    def _open(self, ref: ObjectRef, timer: StageTimer) -> OpenedObject:
        with timer("s3_read"):
            return self.source.open(ref, max_bytes=self.settings.max_object_bytes)

    def _load_object(
        self, session: LoadSession, opened: OpenedObject, timer: StageTimer, result: ObjectResult
    ) -> OutputLayout:
        """Read with small parser blocks (flat memory); a file with a longer record is read once more, from S3."""
        try:
            with opened.body:
                return self._load(session, opened.ref, TimedStream(opened.body, timer), timer, result)
        except UnusableFileError as exc:
            if exc.reason != "record_too_large":
                raise
        session.discard_staged()
        result.rows_blank = 0
        again = self.source.open(opened.ref, max_bytes=self.settings.max_object_bytes)  # the same version
        with again.body:
            return self._load(
                session, again.ref, TimedStream(again.body, timer), timer, result, block_size=LARGE_BLOCK_SIZE
            )

    def _load(
        self,
        session: LoadSession,
        ref: ObjectRef,
        body: io.RawIOBase,
        timer: StageTimer,
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
        with BackgroundStager(session, staged_columns, timer) as stager:
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
        timer: StageTimer,
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
        rejects = rejects_frame(
            chunk, chunks.columns, chunks.delimiter, converted.problems, lineage, self.settings.max_reject_text_chars
        )
        return frame, rejects
