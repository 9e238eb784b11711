"""One object version through the stages: read -> parse -> convert -> score -> stage -> publish, exactly once.

``Pipeline.process_batch`` is the one place that decides what happens to the objects of a batch (``process``: a
batch of one): one claim, each object read, parsed, converted, scored and staged, then one publish transaction for
all of them. It never logs a measurement
value: reasons name the column and line, and raw text goes only to the rejects table. The object source and the
warehouse are ports (pipeline/ports.py); staging runs in the background (staging.py), stages are timed
(timing.py), and rows and rejects take their shape from output.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import pandas as pd
import pyarrow as pa

from monitoring import FileMonitor, LoadMonitoring
from pipeline.challenger import Challenger, Shadow
from pipeline.csv_reader import DEFAULT_BLOCK_SIZE, LARGE_BLOCK_SIZE, CsvChunks, TextChunk
from pipeline.errors import (
    ConcurrentLoadError,
    OutOfTimeError,
    PermanentError,
    PipelineError,
    RefusedInBatchError,
    SchemaEvolutionError,
    SharedStagingError,
    SourceUnavailableError,
    UnusableFileError,
)
from pipeline.features import convert_features
from pipeline.output import OutputLayout, reject_unscored, rejects_frame
from pipeline.plausibility import PlausibilityCheck, plausibility_check
from pipeline.ports import (
    NEVER_LOADED,
    ContentFingerprint,
    LoadBatch,
    LoadIdentity,
    ObjectRef,
    ObjectSource,
    ObjectStaging,
    OpenedObject,
    Outcome,
    SourceOrder,
    Warehouse,
    new_load_id,
)
from pipeline.settings import DuplicateRule, LoadMode, Settings
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
    # What made it a load of its own, or a duplicate: "content" (the same bytes under the key), or "version"
    # (each version), with why when DUPLICATE_RULE=content could not apply (docs/exactly-once.md).
    duplicate_rule: str = "version"
    model_version: str | None = None  # the model that scored it
    rescore: bool = False  # a rescore: the version scored again with the served model (ledger: RESCORE_OF)
    # The file's monitoring verdict (monitoring/; the whole row is in MONITORING_TABLE): None when not tested.
    drift_detected: bool | None = None
    drifted_features: str | None = None
    estimated_accuracy: float | None = None
    monitoring_failed: str | None = None  # monitoring itself failed on this file (its rows loaded all the same)
    challenger_agreement: float | None = None  # share of rows the challenger labelled as the champion did

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# A batch that loses a race with a concurrent delivery (ConcurrentLoadError) is run again this many times in all.
MAX_BATCH_ATTEMPTS = 3
# Objects publish together while their sizes (as the event gives them) add up to at most this; a bigger object,
# or one of unknown size, publishes on its own. Small files gain from sharing a transaction (one ledger lock, one
# staging write); a big file's load is long anyway, and publishing it alone means a timeout in a later file of the
# batch never throws its work away.
BATCH_MAX_BYTES = 64 * 1024**2
# A publish may wait up to SNOWFLAKE_LOCK_TIMEOUT for the ledger lock, and needs up to this much more for its other
# statements (the INSERTs from staging, the ledger UPDATE, the COMMIT). It is never started with less of the
# invocation left: a Lambda timeout inside it would leave a detached transaction holding the ledger lock, and
# every other publish waiting on it, until Snowflake aborts it (after 5 idle minutes).
PUBLISH_MARGIN_SECONDS = 60

TimeLeft = Callable[[], float]  # seconds left in the invocation (Lambda's context.get_remaining_time_in_millis)


def publish_groups(refs: Sequence[ObjectRef], max_bytes: int = BATCH_MAX_BYTES) -> list[list[ObjectRef]]:
    """The batch, in order, cut into the groups that publish together."""
    groups: list[list[ObjectRef]] = []
    total = max_bytes + 1  # start a new group with the first ref
    for ref in refs:
        size = ref.size if ref.size is not None else max_bytes + 1
        if groups and total + size <= max_bytes:
            groups[-1].append(ref)
            total += size
        else:
            groups.append([ref])
            total = size
    return groups


@contextlib.contextmanager
def _blamed_in_batch() -> Iterator[None]:
    """Inside an open batch (entered after Warehouse.batch, so a refusal to connect is not one): a permanent error
    becomes RefusedInBatchError, and the batch is rolled back. A file's own refusals never reach it (_stage pins
    them on the file); what does (the publish's, the claim's) the statement cannot pin on one object."""
    try:
        yield
    except RefusedInBatchError:
        raise
    except PermanentError as exc:
        raise RefusedInBatchError(exc) from exc


@dataclass
class _Item:
    """One object version of a batch on its way through the stages."""

    index: int  # its place in the batch
    ref: ObjectRef
    identity: LoadIdentity
    result: ObjectResult
    timer: StageTimer
    sequencer: str | None
    opened: OpenedObject | None = None
    unopenable: PermanentError | None = None  # the GET that was to learn the version failed for good


@dataclass(frozen=True)
class _Monitored:
    """One file's monitoring row: the monitor's verdict, and the challenger's agreement when one scores."""

    monitoring: LoadMonitoring
    shadow: Shadow | None

    @property
    def row(self) -> dict[str, Any]:
        columns = self.monitoring.columns()
        if self.shadow is not None:
            columns |= self.shadow.columns()
            if self.shadow.failure is not None:
                detail = json.loads(columns["DRIFT_DETAIL"])
                columns["DRIFT_DETAIL"] = json.dumps(detail | {"challenger_failed": self.shadow.failure})
        return columns

    @property
    def challenger_agreement(self) -> float | None:
        return self.shadow.agreement if self.shadow is not None else None


@dataclass(eq=False)  # compared and hashed by identity, as one per container
class Pipeline:
    """The stages of one object, with the ports it reads from and writes to (built once per container)."""

    settings: Settings
    scorer: Scorer
    source: ObjectSource
    warehouse: Warehouse
    challenger: Challenger | None = None  # a second model scoring in shadow (pipeline/challenger.py)
    plausibility: PlausibilityCheck = field(init=False)
    monitored_columns: list[str] = field(init=False)  # each feature's output column, in the model's order

    def __post_init__(self) -> None:
        self.plausibility = plausibility_check(self.scorer.metadata, self.settings)
        self.monitored_columns = self.plausibility.columns
        # Warm up at construction (Lambda's init); a failure here is ignored: the real event will raise it properly.
        with contextlib.suppress(Exception):
            warm_up(self.scorer, self.settings, self.warehouse)

    def process(self, ref: ObjectRef) -> ObjectResult:
        """Load one object version. Permanent input problems are recorded and returned; transient ones raise."""
        [outcome] = self.process_batch([ref])
        if isinstance(outcome, PipelineError):
            raise outcome
        return outcome

    def process_batch(
        self, refs: Sequence[ObjectRef], time_left: TimeLeft | None = None
    ) -> list[ObjectResult | PipelineError]:
        """Load object versions together: one claim, shared staging, one publish transaction (one ledger lock).

        One result per ref, in order: an ObjectResult (loaded, duplicate or failed), or the retriable error that
        kept it from loading. An error of one object's source fails that object only; a transient warehouse error
        fails every object of the batch not yet settled (nothing of them was published). What one object may have
        caused never fails the others: a permanent refusal inside the batch, a failed DDL statement or a failed
        shared staging write makes the batch run again one object at a time, and a lone object's refusal is
        recorded FAILED (_record_refused). With BATCH_PUBLISH off,
        each object is its own batch; with it on, big objects are (see publish_groups). With ``time_left`` (the
        invocation's), a group is neither started nor published with less time left than a publish may need: its
        objects come back as OutOfTimeError, and the groups already published stay published.
        """
        groups = publish_groups(refs) if self.settings.batch_publish else [[ref] for ref in refs]
        return [result for group in groups for result in self._with_retries(group, time_left)]

    def _out_of_time(self, time_left: TimeLeft | None) -> OutOfTimeError | None:
        """The error to return instead of starting a publish, when the invocation has too little time left."""
        if time_left is None:
            return None
        left, needed = time_left(), self.settings.lock_timeout + PUBLISH_MARGIN_SECONDS
        if left >= needed:
            return None
        return OutOfTimeError(
            f"not published: {left:.0f} s of the invocation left, and a publish may need {needed} s (the wait for "
            f"the ledger lock, SNOWFLAKE_LOCK_TIMEOUT, plus {PUBLISH_MARGIN_SECONDS} s); none of its rows "
            "were published, and it is retried"
        )

    def _with_retries(
        self, refs: Sequence[ObjectRef], time_left: TimeLeft | None
    ) -> list[ObjectResult | PipelineError]:
        for attempt in range(1, MAX_BATCH_ATTEMPTS + 1):
            if short := self._out_of_time(time_left):
                return [short for _ in refs]
            try:
                return self._batch(refs, time_left)
            except (SharedStagingError, RefusedInBatchError, SchemaEvolutionError) as exc:
                # A write that carried several objects' rows failed, Snowflake refused for good a statement of the
                # batch that several objects were waiting on (the publish), or one object's DDL failed: load them
                # again one by one, so that each object's outcome (and a refusal of one file's data) is its own.
                if len(refs) == 1:
                    return [exc]
                return [result for ref in refs for result in self._with_retries([ref], time_left)]
            except ConcurrentLoadError as exc:
                # A concurrent delivery loaded one of these versions after the claim: run the batch again (its
                # claim now skips that version), or, after a few rounds, give the retry back to the queue.
                if attempt == MAX_BATCH_ATTEMPTS:
                    return [exc for _ in refs]
        raise AssertionError("unreachable")

    def _batch(self, refs: Sequence[ObjectRef], time_left: TimeLeft | None) -> list[ObjectResult | PipelineError]:
        results: list[ObjectResult | PipelineError | None] = [None] * len(refs)
        items: list[_Item] = []
        try:
            for index, ref in enumerate(refs):
                item = self._identify(index, ref)
                if isinstance(item, PipelineError):
                    results[index] = item
                else:
                    items.append(item)
            try:
                self._claim_stage_publish(items, results, time_left)
            except (ConcurrentLoadError, SharedStagingError):
                raise  # the batch runs again (process_batch)
            except (RefusedInBatchError, SchemaEvolutionError) as exc:
                # Which object is to blame the statement cannot say (the publish's), or the batch cannot go on
                # without it (a DDL statement, which commits the open transaction): with several objects waiting,
                # they run again one by one (process_batch).
                unsettled = [item for item in items if results[item.index] is None]
                if len(unsettled) > 1:
                    raise
                for item in unsettled:  # the one object to blame: a refusal is recorded, a DDL failure retried
                    if isinstance(exc, RefusedInBatchError):
                        results[item.index] = self._record_refused(item, exc.refusal, time_left)
                    else:
                        results[item.index] = exc
            except PipelineError as exc:
                for item in items:  # nothing of the batch was published: each comes back to be retried
                    if results[item.index] is None:
                        results[item.index] = exc
        finally:
            for item in items:
                if item.opened is not None:
                    item.opened.body.close()
        assert all(r is not None for r in results)
        return cast(list[ObjectResult | PipelineError], results)

    def _identify(self, index: int, ref: ObjectRef) -> _Item | PipelineError:
        """The version the ledger keys on: the event's, else the one the GET returns."""
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
            except PipelineError as exc:
                return exc
        assert ref.version is not None
        content, rule = None, "version"
        if self.settings.duplicate_rule is DuplicateRule.CONTENT and unopenable is None:
            fingerprint = self._fingerprint(ref, timer)
            if isinstance(fingerprint, SourceUnavailableError):
                return fingerprint
            content, rule = fingerprint.value, "content" if fingerprint.value else f"version: {fingerprint.why_not}"
        rescore_for = self.scorer.model_version if ref.rescore else None
        identity = LoadIdentity(ref.bucket, ref.key, ref.version, new_load_id(), content, rescore_for)
        result = ObjectResult(
            ref.bucket,
            ref.key,
            ref.version,
            "loaded",
            load_id=identity.load_id,
            seconds=timer.seconds,
            duplicate_rule=rule,
            model_version=self.scorer.model_version,
            rescore=ref.rescore,
        )
        return _Item(index, ref, identity, result, timer, sequencer, opened, unopenable)

    def _fingerprint(self, ref: ObjectRef, timer: StageTimer) -> ContentFingerprint | SourceUnavailableError:
        """What the content rule keys on, or why the version rule applies instead (part of _identify)."""
        if self.settings.load_mode is LoadMode.UPSERT:
            # Each version replaces its keys' rows: an older export sent again must win over the newer one it
            # follows (a revert), and a re-send only rewrites its own rows with the same values.
            return ContentFingerprint(None, "LOAD_MODE=upsert applies every version, in S3's order")
        fingerprint = getattr(self.source, "fingerprint", None)
        if fingerprint is None:
            return ContentFingerprint(None, "the object source gives no content fingerprint")
        try:
            with timer("s3_read"):
                return cast(ContentFingerprint, fingerprint(ref))
        except SourceUnavailableError as exc:
            return exc
        except PipelineError as exc:
            # The version is gone (or was overwritten): its GET fails the same way and records it, by version.
            return ContentFingerprint(None, f"its HEAD failed ({exc.reason})")

    def _claim_stage_publish(
        self, items: list[_Item], results: list[ObjectResult | PipelineError | None], time_left: TimeLeft | None
    ) -> None:
        first: dict[str, LoadIdentity] = {}  # one identity per version: a notification twice in a batch loads once
        for item in items:
            first.setdefault(item.identity.load_key, item.identity)
        with self.warehouse.batch(time_left) as batch, _blamed_in_batch():
            final = batch.claim(list(first.values()), self.scorer.model_version)
            if never := [key for key, (status, _) in final.items() if status == NEVER_LOADED]:
                final = self._load_instead(batch, items, first, final, never)
            staged: list[tuple[_Item, Outcome]] = []
            for item in items:
                key = item.identity.load_key
                if key in final or first[key] is not item.identity:
                    item.result.status = "duplicate"
                    item.result.load_id = final[key][1] if key in final else first[key].load_id
                    results[item.index] = item.result
                    continue
                outcome = self._stage(batch, item)
                if isinstance(outcome, PipelineError):
                    results[item.index] = outcome
                else:
                    staged.append((item, outcome))
            if staged and (short := self._out_of_time(time_left)):
                raise short  # staged but not published: the batch is rolled back, each object comes back
            start = time.perf_counter()
            published = batch.publish([outcome for _, outcome in staged])
            for item, _ in staged:  # the batch's one publish, on each object's clock
                item.timer.seconds["publish"] += time.perf_counter() - start
            for (item, outcome), done in zip(staged, published, strict=True):
                if outcome.failure is None:
                    # What the publish inserted (upsert may keep staged rows out, as rejects): the ledger's counts.
                    item.result.rows_loaded, item.result.rows_rejected = done.rows_loaded, done.rows_rejected
                    item.result.rows_flagged = done.rows_flagged
                results[item.index] = item.result

    def _load_instead(
        self,
        batch: LoadBatch,
        items: list[_Item],
        first: dict[str, LoadIdentity],
        final: dict[str, tuple[str, str | None]],
        never: list[str],
    ) -> dict[str, tuple[str, str | None]]:
        """Rescores of versions no load has recorded: each is the version's ordinary load instead, claimed now (a
        second claim), so that it and the version's own notification are one load."""
        loads: list[LoadIdentity] = []
        for key in never:
            del final[key]
            load = dataclasses.replace(first[key], rescore_for=None)
            for item in items:
                if item.identity is first[key]:
                    item.identity, item.result.rescore = load, False
            if load.load_key not in first:  # else an ordinary delivery in the batch claimed it: this is its duplicate
                first[load.load_key] = load
                loads.append(load)
        return final | batch.claim(loads, self.scorer.model_version)

    def _record_refused(
        self, item: _Item, refusal: PermanentError, time_left: TimeLeft | None
    ) -> ObjectResult | PipelineError:
        """A lone object Snowflake refused for good: recorded FAILED, so that its redelivery is a duplicate.

        The batch's transaction was rolled back; this is a new one (a claim, then a publish of the FAILED row
        alone). An object that had already failed on its own input keeps its own reason. If even that is refused
        (the ledger itself refuses the object's row), the refusal is returned: the message comes back, and ends
        in the dead-letter queue.
        """
        result = item.result
        failure = (
            (result.reason_code, result.reason)
            if result.status == "failed" and result.reason_code and result.reason
            else (refusal.reason, str(refusal))
        )
        if short := self._out_of_time(time_left):
            return short
        identity = dataclasses.replace(item.identity, load_id=new_load_id())  # the rolled-back attempt's is spent
        try:
            with self.warehouse.batch(time_left) as batch:
                final = batch.claim([identity], self.scorer.model_version)
                if identity.load_key not in final:
                    staging = batch.staging(identity)
                    batch.publish([Outcome(staging, self.scorer.model_version, failure=failure)])
        except PipelineError as exc:
            return exc
        result.rows_loaded = result.rows_rejected = result.rows_blank = result.rows_flagged = 0
        if identity.load_key in final:  # a concurrent delivery finished it meanwhile
            result.status, result.load_id = "duplicate", final[identity.load_key][1]
            result.reason_code = result.reason = None
        else:
            result.status, result.load_id = "failed", identity.load_id
            result.reason_code, result.reason = failure
        return result

    def _stage(self, batch: LoadBatch, item: _Item) -> Outcome | PipelineError:
        """Read, parse, score and stage one object; what it publishes, or the error of its source."""
        staging = batch.staging(item.identity)
        model_version = self.scorer.model_version
        result = item.result
        try:
            if item.unopenable is not None:
                raise item.unopenable
            item.opened = item.opened or self._open(item.ref, item.timer)
            last_modified = item.opened.last_modified
            layout, monitored = self._load_object(batch, staging, item.opened, item.timer, result)
        except PermanentError as exc:
            staging.discard_staged()
            result.status, result.reason_code, result.reason = "failed", exc.reason, str(exc)
            result.rows_loaded = result.rows_rejected = 0
            return Outcome(
                staging,
                model_version,
                failure=(exc.reason, str(exc)),
                monitoring=LoadMonitoring.nothing_scored(f"the file was not loaded ({exc.reason})").columns(),
            )
        except SourceUnavailableError as exc:
            staging.discard_staged()  # this object only: the others of the batch go on
            return exc
        finally:
            if item.opened is not None:
                item.opened.body.close()
                item.opened = None
        monitoring = monitored.monitoring
        result.drift_detected = monitoring.drift_detected
        result.drifted_features = monitoring.drifted_features
        result.estimated_accuracy = monitoring.estimated_accuracy
        result.monitoring_failed = monitoring.failed
        result.challenger_agreement = monitored.challenger_agreement
        return Outcome(
            staging,
            model_version,
            layout.staged_column_names,
            SourceOrder.of(item.sequencer, last_modified),
            layout.merge_key_columns,
            monitoring=monitored.row,
        )

    def _open(self, ref: ObjectRef, timer: StageTimer) -> OpenedObject:
        with timer("s3_read"):
            return self.source.open(ref, max_bytes=self.settings.max_object_bytes)

    def _load_object(
        self, batch: LoadBatch, staging: ObjectStaging, opened: OpenedObject, timer: StageTimer, result: ObjectResult
    ) -> tuple[OutputLayout, _Monitored]:
        """Read with small parser blocks (flat memory); a file with a longer record is read once more, from S3."""
        try:
            with opened.body:
                return self._load(batch, staging, opened.ref, TimedStream(opened.body, timer), timer, result)
        except UnusableFileError as exc:
            if exc.reason != "record_too_large":
                raise
        staging.discard_staged()
        result.rows_blank = 0
        again = self.source.open(opened.ref, max_bytes=self.settings.max_object_bytes)  # the same version
        with again.body:
            return self._load(
                batch, staging, again.ref, TimedStream(again.body, timer), timer, result, block_size=LARGE_BLOCK_SIZE
            )

    def _load(
        self,
        batch: LoadBatch,
        staging: ObjectStaging,
        ref: ObjectRef,
        body: io.RawIOBase,
        timer: StageTimer,
        result: ObjectResult,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> tuple[OutputLayout, _Monitored]:
        """Parse, convert, score and stage every chunk; return the layout the rows were staged in, and the file's
        monitoring (monitoring/: its rows against the model's reference profile; the challenger's agreement)."""
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
            challenger = self.challenger.model_version if self.challenger is not None else None
            layout = OutputLayout(chunks.columns, self.scorer.metadata, s, challenger=challenger)
        with timer("stage"):
            batch.ensure_target(layout.ddl_columns())
        staged_columns = layout.staged_ddl()
        lineage = {
            "SOURCE_BUCKET": ref.bucket,
            "SOURCE_KEY": ref.key,
            "SOURCE_VERSION": str(ref.version),
            "MODEL_VERSION": self.scorer.model_version,
            "LOAD_ID": staging.identity.load_id,
        }
        monitor = FileMonitor(self.scorer.metadata.monitoring, self.monitored_columns)
        shadow = Shadow(self.challenger) if self.challenger is not None else None
        iterator = iter(chunks)
        with BackgroundStager(staging, staged_columns, timer) as stager:
            while True:
                with timer("parse"):
                    chunk = next(iterator, None)
                if chunk is None:
                    break
                stager.submit(*self._prepare_chunk(chunks, layout, chunk, lineage, timer, result, monitor, shadow))
        if staging.rows_staged == 0 and staging.rejects_staged == 0:
            raise UnusableFileError("the file has a header but no data rows", reason="no_rows")
        result.rows_loaded, result.rows_rejected = staging.rows_staged, staging.rejects_staged
        with timer("monitor"):
            return layout, _Monitored(monitor.result(), shadow)

    def _prepare_chunk(
        self,
        chunks: CsvChunks,
        layout: OutputLayout,
        chunk: TextChunk,
        lineage: dict[str, str],
        timer: StageTimer,
        result: ObjectResult,
        monitor: FileMonitor,
        shadow: Shadow | None = None,
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
            pending = shadow.submit(batch) if shadow is not None else None  # scores beside the champion
            with timer("score"):
                scores = self.scorer.score(batch)
            kept = scores.scored
            # A row without a usable probability is a reject, never labelled (whatever the model).
            converted, scores, flags = reject_unscored(converted, scores, checked.flags)
            ok = converted.ok
            with timer("challenger"):  # what the champion's scoring did not hide of the challenger's
                challenger = shadow.collect(pending, scores, kept) if shadow is not None else None
            if ok.any():  # rows the model scored
                with timer("monitor"):
                    monitor.add(converted.good_values, scores.malignant_probability, scores.classification)
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
                    frame = layout.frame(text, converted.good_values, scores, lines, flags, challenger)
        rejects = rejects_frame(
            chunk, chunks.columns, chunks.delimiter, converted.problems, lineage, self.settings.max_reject_text_chars
        )
        return frame, rejects
