"""What the pipeline needs from the outside world, in its own words: an object source and a warehouse.

The pipeline imports nothing of ``adapters``. ``adapters/s3.py`` and ``adapters/snowflake/`` implement these
protocols (they may import the types below); ``handler/app.py`` builds them and hands them to ``Pipeline``.
Tests hand in their own (moto- or fakesnow-backed, or plain fakes).
"""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import pandas as pd


# --- the object source ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectRef:
    """One S3 object version named by an event. ``key`` is already URL-decoded."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    sequencer: str | None = None
    # The message asked to score this version again with the served model (a rescore, docs/exactly-once.md).
    rescore: bool = False

    @property
    def version(self) -> str | None:
        """What identifies this version of the key: the version id if the bucket is versioned, else the ETag."""
        return self.version_id or (self.etag.strip('"') if self.etag else None)


@dataclass
class OpenedObject:
    ref: ObjectRef  # with version/etag filled in from the response
    size: int
    body: io.RawIOBase
    last_modified: datetime | None = None  # the response's Last-Modified: orders versions without a sequencer


@dataclass(frozen=True)
class ContentFingerprint:
    """What S3 says about one object version's bytes: equal bytes share ``value``, different bytes never do.

    ``value`` is None when S3 gave nothing that can be trusted to mean the content (``why_not`` says why): then
    the object is known by its version only (DUPLICATE_RULE, docs/exactly-once.md).
    """

    value: str | None
    why_not: str | None = None


class ObjectSource(Protocol):
    """Opens one object version as a byte stream; failures are the pipeline's typed errors (pipeline.errors)."""

    def open(self, ref: ObjectRef, *, max_bytes: int) -> OpenedObject:
        """The exact version ``ref`` names; UnusableFileError(object_too_large) when it is over ``max_bytes``."""
        ...

    def fingerprint(self, ref: ObjectRef) -> ContentFingerprint:
        """The content fingerprint of the exact version ``ref`` names, without reading it (a HEAD)."""
        ...


# --- the warehouse --------------------------------------------------------------------------------------------
def load_key(bucket: str, key: str, version: str) -> str:
    """The ledger's identity of one object version (the version rule: every version is a load of its own)."""
    return hashlib.sha256(f"{bucket}\0{key}\0{version}".encode()).hexdigest()


def content_load_key(bucket: str, key: str, content: str) -> str:
    """The ledger's identity of one content of an S3 key (the content rule: the same bytes again are a duplicate)."""
    return load_key(bucket, key, f"content\0{content}")


def rescore_load_key(load_key: str, model_version: str) -> str:
    """The ledger's identity of one load scored again for one model version (a rescore): derived from the load's
    own key, so that the content and the version rule carry over, and each (load, model version) is one load."""
    return hashlib.sha256(f"{load_key}\0rescore\0{model_version}".encode()).hexdigest()


def new_load_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class LoadIdentity:
    """One load: ``version`` is the object's real version (what rows and the ledger's SOURCE_VERSION say);
    ``content``, when set, its content fingerprint, and then the ledger keys the load on the content instead.
    ``rescore_for``, when set, makes it a rescore: the version scored again for that model version, keyed on
    (``base_key``, model version); its claim needs a final ledger row for ``base_key`` (or ``version_key``) under
    another model version, and none under this one."""

    bucket: str
    key: str
    version: str
    load_id: str
    content: str | None = None
    rescore_for: str | None = None

    @property
    def base_key(self) -> str:
        """The key of the version's ordinary load (what its S3 notification claims)."""
        if self.content is not None:
            return content_load_key(self.bucket, self.key, self.content)
        return load_key(self.bucket, self.key, self.version)

    @property
    def load_key(self) -> str:
        if self.rescore_for is not None:
            return rescore_load_key(self.base_key, self.rescore_for)
        return self.base_key

    @property
    def version_key(self) -> str:
        """The per-version key, which the ledger used for every load before the content rule: a version a ledger
        row records as loaded under it is loaded, whatever rule keys this load (an upgrade loads nothing twice)."""
        return load_key(self.bucket, self.key, self.version)


@dataclass(frozen=True)
class PublishResult:
    rows_loaded: int
    rows_rejected: int
    load_id: str
    rows_flagged: int = 0  # of rows_loaded, those with FLAG_COLUMN set


SEQUENCER_WIDTH = 64  # S3 sequencers are stored left-padded with zeros to this many hex digits
_HEX = re.compile(rf"^[0-9A-Fa-f]{{1,{SEQUENCER_WIDTH}}}$")


@dataclass(frozen=True)
class SourceOrder:
    """Where one object version stands among the versions of its S3 key, by S3's own ordering.

    ``sequencer``: the event's ``sequencer`` (S3 notification or EventBridge), upper-case hex left-padded to
    SEQUENCER_WIDTH digits, so that comparing two of them as text is S3's documented comparison (pad the
    shorter one with zeros, then compare). Only meaningful between events of the same bucket and key.
    ``last_modified``: the object's Last-Modified from the GET (one-second resolution), the fallback when either
    side has no sequencer (backfill, hand-made events). The rule and its limits: docs/exactly-once.md.
    """

    sequencer: str | None = None
    last_modified: datetime | None = None

    @classmethod
    def of(cls, sequencer: str | None, last_modified: datetime | None) -> SourceOrder:
        """A malformed sequencer counts as none (the Last-Modified fallback applies), never as a wrong order."""
        seq = sequencer.strip() if isinstance(sequencer, str) else ""
        padded = seq.upper().rjust(SEQUENCER_WIDTH, "0") if _HEX.match(seq) else None
        if last_modified is not None and last_modified.tzinfo is None:
            last_modified = last_modified.replace(tzinfo=UTC)  # S3's times are UTC
        return cls(padded, last_modified)

    @property
    def last_modified_text(self) -> str | None:
        return self.last_modified.astimezone(UTC).isoformat() if self.last_modified is not None else None


# The rejects an ObjectStaging stages (a frame with these columns, built by output.rejects_frame): one row per line
# or cell that could not be loaded, with its reason and raw text; with their Snowflake types.
REJECT_COLUMNS: list[tuple[str, str]] = [
    ("LOAD_ID", "VARCHAR(36) NOT NULL"),
    ("SOURCE_BUCKET", "VARCHAR(255) NOT NULL"),
    ("SOURCE_KEY", "VARCHAR(2048) NOT NULL"),
    ("SOURCE_VERSION", "VARCHAR(1024) NOT NULL"),
    ("SOURCE_LINE", "NUMBER(19,0)"),
    ("COLUMN_NAME", "VARCHAR(255)"),
    ("REASON", "VARCHAR(1024) NOT NULL"),
    ("RAW_TEXT", "VARCHAR"),
]


# The monitoring table (MONITORING_TABLE): one row per load, in the load's own transaction (monitoring/ computes
# the values; the warehouse adds the lineage and MONITORED_AT). DRIFT_DETAIL holds the per-feature detail as JSON.
MONITORING_COLUMNS: list[tuple[str, str]] = [
    ("LOAD_ID", "VARCHAR(36) NOT NULL"),
    ("SOURCE_BUCKET", "VARCHAR(255) NOT NULL"),
    ("SOURCE_KEY", "VARCHAR(2048) NOT NULL"),
    ("SOURCE_VERSION", "VARCHAR(1024) NOT NULL"),
    ("MODEL_VERSION", "VARCHAR(128)"),
    ("MONITORED_AT", "TIMESTAMP_TZ"),
    ("ROWS_SCORED", "NUMBER(19,0)"),
    ("DRIFT_DETECTED", "BOOLEAN"),
    ("DRIFT_SCORE", "FLOAT"),
    ("DRIFTED_FEATURES", "VARCHAR(4096)"),
    ("ESTIMATED_ACCURACY", "FLOAT"),
    ("ESTIMATED_ACCURACY_LOW", "FLOAT"),
    ("ESTIMATED_ACCURACY_HIGH", "FLOAT"),
    ("PREDICTED_MALIGNANT_SHARE", "FLOAT"),
    ("REFERENCE_MALIGNANT_SHARE", "FLOAT"),
    ("DRIFT_DETAIL", "VARIANT"),
    # A challenger scoring in shadow (pipeline/challenger.py): its version and the share of rows it labelled as
    # the champion did (NULL without a challenger, or when it failed on the file).
    ("CHALLENGER_MODEL_VERSION", "VARCHAR(128)"),
    ("CHALLENGER_AGREEMENT", "FLOAT"),
]

# A staged row's column naming the features far beyond the model's training range (pipeline/plausibility.py); the
# session counts the rows that have it set, and the publish reports them as rows_flagged.
FLAG_COLUMN = "OUT_OF_RANGE_FEATURES"


class ObjectStaging(Protocol):
    """One object version's rows and rejects, staged in its batch (LoadBatch.staging).

    Staging may run on a worker thread (pipeline/staging.py), one write at a time, while the caller goes on.
    """

    identity: LoadIdentity
    rows_staged: int
    rejects_staged: int

    def stage_rows(self, frame: pd.DataFrame, columns: list[tuple[str, str]]) -> None: ...

    def stage_rejects(self, frame: pd.DataFrame) -> None:
        """A frame with REJECT_COLUMNS (output.rejects_frame)."""
        ...

    def discard_staged(self) -> None:
        """Forget everything staged so far for this object (it is about to be read again from the start)."""
        ...


@dataclass(frozen=True)
class Outcome:
    """What one object of a batch publishes: its staged rows and rejects, or (``failure``) a FAILED ledger row."""

    staging: ObjectStaging
    model_version: str
    columns: list[str] = field(default_factory=list)  # the staged columns, in order (OutputLayout)
    order: SourceOrder = field(default_factory=lambda: SourceOrder())
    merge_key_columns: str | None = None  # the merge key's input column names, for the rejects upsert adds
    failure: tuple[str, str] | None = None  # (reason code, reason): the file cannot be used; nothing else lands
    # The load's MONITORING_COLUMNS values but its lineage (monitoring.LoadMonitoring.columns); None: not tested.
    monitoring: Mapping[str, Any] | None = None


# What LoadBatch.claim answers for a rescore of a version the ledger has no final row for.
NEVER_LOADED = "NEVER_LOADED"


class LoadBatch(Protocol):
    """The statements of one batch of object versions, on one connection: claim them, stage each, then publish
    all of them in one transaction (one ledger lock per batch), each exactly once."""

    def claim(self, identities: Sequence[LoadIdentity], model_version: str) -> dict[str, tuple[str, str | None]]:
        """Record that the new versions started loading; return those the ledger already says LOADED or FAILED:
        {load key: (status, load id)}. A rescore whose version no final row records (under any model version) is
        returned as (NEVER_LOADED, None): nothing was written for it (the pipeline loads it as an ordinary load)."""
        ...

    def ensure_target(self, columns: list[tuple[str, str]]) -> None:
        """Create the target table with these (name, SQL type) columns, or add the ones it lacks."""
        ...

    def staging(self, identity: LoadIdentity) -> ObjectStaging:
        """Where one object version's rows and rejects are staged until the publish."""
        ...

    def publish(self, outcomes: Sequence[Outcome]) -> list[PublishResult]:
        """Every outcome's rows + rejects + ledger row, atomically, in one transaction; one result per outcome.

        Raises ConcurrentLoadError (nothing published) when a concurrent delivery loaded one of these versions
        after the claim: the caller runs the batch again, and the claim then skips it.
        """
        ...


class Warehouse(Protocol):
    """Where scored rows are published: one LoadBatch per batch of object versions."""

    def batch(self, time_left: Callable[[], float] | None = None) -> AbstractContextManager[LoadBatch]:
        """A batch on this container's connection; leaving it drops what was staged and ends any transaction.
        ``time_left``: the invocation's clock (seconds left), so that the warehouse's own limits end a statement
        that would outlive the invocation."""
        ...

    def warm_up(self, frame: pd.DataFrame) -> None:
        """Pay the staging path's one-off costs on a synthetic frame at init, touching nothing remote."""
        ...
