"""The project's typed errors: what went wrong, and whether a retry can help.

* ``RetriableError``  transient (throttling, network, Snowflake unavailable, lock conflict). It is re-raised
  (a batch item failure when SQS delivered the object), so the message comes back and, after the queue's
  maxReceiveCount, goes to the dead-letter queue.
* ``PermanentError``  the same input will fail the same way. The object is recorded as failed in the
  ledger with the reason, and the invocation succeeds so Lambda does not retry forever.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class. ``reason`` is a short machine-friendly code, the message is for humans."""

    retriable: bool = False
    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class ConfigurationError(PipelineError):
    """A missing or invalid environment variable; the message names it."""

    reason = "configuration"


class RetriableError(PipelineError):
    retriable = True
    reason = "transient"


class PermanentError(PipelineError):
    retriable = False
    reason = "permanent"


# --- input problems: the object cannot be used (permanent) ---
class UnusableFileError(PermanentError):
    """The object is not a usable CSV: empty, no header, missing columns, undecodable, too big..."""

    reason = "unusable_file"


class ObjectGoneError(PermanentError):
    """The object (or that version of it) no longer exists."""

    reason = "object_not_found"


# --- infrastructure problems ---
class SourceUnavailableError(RetriableError):
    """S3 throttled, timed out or dropped the connection."""

    reason = "s3_unavailable"


class SecretUnavailableError(RetriableError):
    """Secrets Manager could not be reached."""

    reason = "secret_unavailable"


class SecretInvalidError(PermanentError):
    """The secret exists but does not hold usable Snowflake credentials."""

    reason = "secret_invalid"


class WarehouseUnavailableError(RetriableError):
    """Snowflake could not be reached, or a statement failed for a transient reason."""

    reason = "snowflake_unavailable"


class WarehouseConnectionError(WarehouseUnavailableError):
    """The Snowflake session itself is gone: network failure, closed connection, expired session or token.

    The container's cached connection is dropped, so the retry logs in again instead of failing on it forever.
    """

    reason = "snowflake_connection_lost"


class SharedStagingError(WarehouseUnavailableError):
    """A staging write that carried several objects' rows failed: none of them can be published from this batch.
    The pipeline loads those objects again one by one, so that a refusal is pinned on the file that caused it."""

    reason = "shared_staging_failed"


class SchemaEvolutionError(RetriableError):
    """Creating or widening a table failed (a concurrent delivery may be adding the same column right now).

    Never a reason to fail a file for good: the retry finds the table as the other delivery left it.
    """

    reason = "schema_evolution_failed"


class LoadConflictError(RetriableError):
    """Another delivery of the same object version is publishing right now; retry to find it loaded."""

    reason = "concurrent_load"


class ConcurrentLoadError(LoadConflictError):
    """A concurrent delivery loaded a version of this batch after the claim: nothing was published, and running
    the batch again (its claim now skips that version) loads the others."""

    reason = "concurrent_load"


class OutOfTimeError(RetriableError):
    """Too little of the invocation was left to start a publish: nothing was published, and the object is retried.

    A publish may wait SNOWFLAKE_LOCK_TIMEOUT for the ledger lock; a timeout inside it would leave a detached
    transaction holding that lock until Snowflake aborts it."""

    reason = "out_of_time"


class WarehouseRejectedError(PermanentError):
    """Snowflake refused a statement in a way a retry cannot fix (permissions, bad schema, a value its column's
    type refuses). The message holds Snowflake's error code and a fixed text, never the server's own message (it
    may quote a cell's value)."""

    reason = "snowflake_rejected"


class RefusedInBatchError(PermanentError):
    """Snowflake refused for good a statement of a batch it had opened (the claim, a staging write, the publish).

    A statement of the batch (the rows INSERT at publish) carries several objects' rows and cannot say which one
    it refused; nothing of the batch was published. The pipeline never fails the other objects for it: it loads
    a batch of several objects again one by one, and records a lone object FAILED with ``refusal`` (in a new
    transaction), so that its redelivery is a duplicate.
    """

    def __init__(self, refusal: PermanentError) -> None:
        super().__init__(str(refusal), reason=refusal.reason)
        self.refusal = refusal
