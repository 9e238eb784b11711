"""S3 source (the pipeline's ObjectSource port): open one object version as a stream, failures as typed errors."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pipeline.errors import ObjectGoneError, SourceUnavailableError, UnusableFileError
from pipeline.ports import ContentFingerprint, ObjectRef, OpenedObject

READ_CHUNK_BYTES = 1 << 20
_GONE = {"NoSuchKey", "NoSuchVersion", "404", "NotFound"}
_CHANGED = {"PreconditionFailed", "412"}
# A single-part upload's ETag is the MD5 of its bytes, unless the object is encrypted with SSE-KMS, DSSE-KMS or
# SSE-C (then it is not a hash of the content). SSE-S3 (AES256, the deployed bucket's default encryption) keeps it.
_MD5_ETAG = re.compile(r"^[0-9a-fA-F]{32}$")
_ETAG_IS_MD5 = {None, "AES256"}
# Full-object checksums that name the content: 64 bits or more. CRC32 and CRC32C (what boto3 and the AWS CLI
# send by default) are 32 bits: two different exports of one key would share one about once in 4 billion, and a
# false duplicate drops a file's rows, so they are not trusted.
_FULL_OBJECT_CHECKSUMS = (("ChecksumCRC64NVME", "crc64nvme"), ("ChecksumSHA256", "sha256"), ("ChecksumSHA1", "sha1"))


def content_fingerprint(head: Mapping[str, Any]) -> ContentFingerprint:
    """The content fingerprint in a HEAD (or GET) response with ChecksumMode=ENABLED, or why there is none.

    The ETag first, when it is the content's MD5 (single part, no SSE-KMS/SSE-C): every such upload has it,
    whatever checksum its client sent. Else a full-object checksum of 64 bits or more (a multipart upload's ETag
    depends on its part sizes; S3 computes a full-object CRC64NVME for uploads that send no checksum). The size
    goes into every fingerprint, as a second witness.
    """
    size = head.get("ContentLength")
    etag = str(head.get("ETag") or "").strip('"')
    encryption = head.get("ServerSideEncryption")
    customer_key = head.get("SSECustomerAlgorithm")
    if _MD5_ETAG.match(etag) and encryption in _ETAG_IS_MD5 and not customer_key:
        return ContentFingerprint(f"md5:{etag.lower()}:{size}")
    checksum_type = head.get("ChecksumType")
    for field, name in _FULL_OBJECT_CHECKSUMS:
        value = head.get(field)
        full_object = checksum_type == "FULL_OBJECT" or (checksum_type is None and name == "crc64nvme")
        if value and full_object and "-" not in str(value):
            return ContentFingerprint(f"{name}:{value}:{size}")
    if customer_key or encryption not in _ETAG_IS_MD5:
        why = f"the ETag of an object encrypted with {'SSE-C' if customer_key else encryption} is not its MD5"
    elif "-" in etag:
        why = "a multipart upload's ETag depends on its part sizes"
    else:
        why = "its ETag is not an MD5"
    return ContentFingerprint(None, f"{why}, and S3 gave no full-object CRC64NVME or SHA checksum")


class _GuardedBody(io.RawIOBase):
    """A botocore StreamingBody as a raw stream whose read errors become SourceUnavailableError.

    pyarrow may wrap exceptions raised from Python file objects; ``error`` keeps the typed one so the caller
    can re-raise it.
    """

    def __init__(self, body: Any, ref: ObjectRef) -> None:
        self._body = body
        self._ref = ref
        self.error: SourceUnavailableError | None = None
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` (short only at the end of the object) from reads of at most READ_CHUNK_BYTES.

        pyarrow treats each read as a block, so the buffer is filled whole (a record may be up to a block long);
        urllib3 is only ever asked for 1 MiB at a time, which keeps peak memory flat on large plain files.
        """
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view):
            try:
                data = self._body.read(min(len(view) - filled, READ_CHUNK_BYTES))
            except (BotoCoreError, ClientError, OSError, ValueError) as exc:
                # urllib3's ProtocolError / IncompleteRead / ReadTimeout land here: the connection dropped.
                self.error = SourceUnavailableError(
                    f"S3 stream for s3://{self._ref.bucket}/{self._ref.key} broke after {self.bytes_read} bytes: "
                    f"{type(exc).__name__}"
                )
                raise self.error from exc
            if not data:
                break
            view[filled : filled + len(data)] = data
            filled += len(data)
            self.bytes_read += len(data)
        return filled

    def close(self) -> None:
        try:
            self._body.close()
        finally:
            super().close()


class S3Source:
    """Reads objects from S3 through a boto3 client (built once per container). Implements ports.ObjectSource."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def with_default_client(cls) -> S3Source:
        """The function's own client: adaptive retries (5 attempts), short connect and read timeouts."""
        config = Config(retries={"max_attempts": 5, "mode": "adaptive"}, connect_timeout=5, read_timeout=60)
        return cls(boto3.client("s3", config=config))

    def open(self, ref: ObjectRef, *, max_bytes: int) -> OpenedObject:
        """GET the exact version the event named (VersionId, else If-Match on the ETag) as a stream."""
        response = self._request("GET", self._client.get_object, ref)
        size = int(response.get("ContentLength", 0))
        opened_ref = ObjectRef(
            bucket=ref.bucket,
            key=ref.key,
            version_id=response.get("VersionId") or ref.version_id,
            etag=(response.get("ETag") or ref.etag or "").strip('"') or None,
            size=size,
        )
        if size > max_bytes:
            response["Body"].close()
            raise UnusableFileError(
                f"object is {size} bytes, over the limit of {max_bytes} (MAX_OBJECT_BYTES)", reason="object_too_large"
            )
        return OpenedObject(
            ref=opened_ref,
            size=size,
            body=_GuardedBody(response["Body"], opened_ref),
            last_modified=response.get("LastModified"),
        )

    def fingerprint(self, ref: ObjectRef) -> ContentFingerprint:
        """HEAD the exact version the event named (as open does), checksums on: its content fingerprint."""
        return content_fingerprint(self._request("HEAD", self._client.head_object, ref, ChecksumMode="ENABLED"))

    def _request(self, verb: str, call: Any, ref: ObjectRef, **extra: Any) -> Any:
        """One request for the exact version ``ref`` names (VersionId, else If-Match on the ETag); S3's failures
        as the pipeline's errors."""
        kwargs: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key, **extra}
        if ref.version_id:
            kwargs["VersionId"] = ref.version_id
        elif ref.etag:
            kwargs["IfMatch"] = f'"{ref.etag.strip(chr(34))}"'
        try:
            return call(**kwargs)
        except ClientError as exc:
            raise self._classify(exc, ref) from exc
        except BotoCoreError as exc:
            raise SourceUnavailableError(f"S3 {verb} s3://{ref.bucket}/{ref.key} failed: {type(exc).__name__}") from exc

    @staticmethod
    def _classify(exc: ClientError, ref: ObjectRef) -> Exception:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        where = f"s3://{ref.bucket}/{ref.key}"
        if code in _GONE:
            return ObjectGoneError(f"{where} (version {ref.version or '-'}) no longer exists ({code})")
        if code in _CHANGED:
            return ObjectGoneError(
                f"{where} was overwritten after the event: ETag {ref.etag} is gone ({code}); the newer version's "
                "own event loads it",
                reason="object_superseded",
            )
        return SourceUnavailableError(f"S3 GET {where} failed: {code or type(exc).__name__}")
