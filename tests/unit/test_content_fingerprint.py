"""DUPLICATE_RULE=content: what in S3's answer names an object's content (adapters.s3.content_fingerprint), and
the ledger key it gives (pipeline.ports.LoadIdentity)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from adapters.s3 import S3Source, content_fingerprint
from pipeline.errors import ConfigurationError, ObjectGoneError, SourceUnavailableError
from pipeline.ports import LoadIdentity, ObjectRef, load_key
from pipeline.settings import DuplicateRule, Settings

MD5 = '"5d41402abc4b2a76b9719d911017c592"'
MULTIPART = '"9b2cf535f27731c974343645a3985328-3"'
CRC64 = "AAAAAAAAAAE="
BASE = {"SNOWFLAKE_SECRET_NAME": "s", "SNOWFLAKE_DATABASE": "D", "SNOWFLAKE_SCHEMA": "S"}


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ({"ETag": MD5, "ContentLength": 5}, "md5:5d41402abc4b2a76b9719d911017c592:5"),
        ({"ETag": MD5, "ContentLength": 5, "ServerSideEncryption": "AES256"}, "md5:5d41402abc4b2a76b9719d911017c592:5"),
        (
            {"ETag": MD5, "ContentLength": 5, "ChecksumCRC32": "xyz=", "ChecksumType": "FULL_OBJECT"},
            "md5:5d41402abc4b2a76b9719d911017c592:5",
        ),
        (
            {"ETag": MULTIPART, "ContentLength": 9, "ChecksumCRC64NVME": CRC64, "ChecksumType": "FULL_OBJECT"},
            f"crc64nvme:{CRC64}:9",
        ),
        ({"ETag": MULTIPART, "ContentLength": 9, "ChecksumCRC64NVME": CRC64}, f"crc64nvme:{CRC64}:9"),
        (
            {"ETag": MD5, "ContentLength": 5, "ServerSideEncryption": "aws:kms", "ChecksumCRC64NVME": CRC64},
            f"crc64nvme:{CRC64}:5",
        ),
        (
            {"ETag": MULTIPART, "ContentLength": 9, "ChecksumSHA256": "c2hh", "ChecksumType": "FULL_OBJECT"},
            "sha256:c2hh:9",
        ),
    ],
    ids=["md5", "md5-sse-s3", "md5-over-crc32", "crc64nvme", "crc64nvme-no-type", "kms-crc64nvme", "sha256-full"],
)
def test_a_trustworthy_fingerprint_is_used(head: dict[str, Any], expected: str) -> None:
    # Given a HEAD answer whose ETag is the content's MD5, or that carries a full-object checksum of 64+ bits
    # When its fingerprint is taken
    fingerprint = content_fingerprint(head)
    # Then it names the content (and the size)
    assert (fingerprint.value, fingerprint.why_not) == (expected, None)


@pytest.mark.parametrize(
    ("head", "why"),
    [
        ({"ETag": MD5, "ContentLength": 5, "ServerSideEncryption": "aws:kms"}, "encrypted with aws:kms is not its MD5"),
        ({"ETag": MD5, "ContentLength": 5, "ServerSideEncryption": "aws:kms:dsse"}, "aws:kms:dsse is not its MD5"),
        ({"ETag": MD5, "ContentLength": 5, "SSECustomerAlgorithm": "AES256"}, "encrypted with SSE-C is not its MD5"),
        ({"ETag": MULTIPART, "ContentLength": 9}, "a multipart upload's ETag depends on its part sizes"),
        (
            {"ETag": MULTIPART, "ContentLength": 9, "ChecksumCRC32": "xyz=", "ChecksumType": "FULL_OBJECT"},
            "a multipart upload's ETag depends on its part sizes",
        ),
        (
            {"ETag": MULTIPART, "ContentLength": 9, "ChecksumCRC32C": "xyz=", "ChecksumType": "FULL_OBJECT"},
            "a multipart upload's ETag",
        ),
        (
            {"ETag": MULTIPART, "ContentLength": 9, "ChecksumSHA256": "c2hh-3", "ChecksumType": "COMPOSITE"},
            "a multipart upload's ETag",
        ),
        ({"ContentLength": 9}, "its ETag is not an MD5"),
    ],
    ids=["sse-kms", "dsse-kms", "sse-c", "multipart", "multipart-crc32", "multipart-crc32c", "composite-sha", "none"],
)
def test_without_a_trustworthy_fingerprint_there_is_none_and_a_reason(head: dict[str, Any], why: str) -> None:
    # Given a HEAD answer whose ETag is no content hash and with no 64+-bit full-object checksum
    # When its fingerprint is taken
    fingerprint = content_fingerprint(head)
    # Then there is none, and the reason says why (the version rule applies)
    assert fingerprint.value is None
    assert fingerprint.why_not is not None and why in fingerprint.why_not
    assert fingerprint.why_not.endswith("and S3 gave no full-object CRC64NVME or SHA checksum")


def test_the_content_rule_keys_the_ledger_on_bucket_key_and_content_not_the_version() -> None:
    # Given two versions of one key with the same content, one with other content, and the same content elsewhere
    same = [LoadIdentity("b", "k.csv", version, "id", "md5:x:5") for version in ("v1", "v2")]
    other = LoadIdentity("b", "k.csv", "v3", "id", "md5:y:5")
    elsewhere = [
        LoadIdentity("b", "copy.csv", "v1", "id", "md5:x:5"),
        LoadIdentity("c", "k.csv", "v1", "id", "md5:x:5"),
    ]
    # Then the two versions share one ledger key, and the other content, key and bucket have their own
    keys = {i.load_key for i in same}
    assert len(keys) == 1
    assert keys.isdisjoint({other.load_key, *(i.load_key for i in elsewhere)})
    # and without a fingerprint the key is the version's, as before
    assert LoadIdentity("b", "k.csv", "v1", "id").load_key == load_key("b", "k.csv", "v1")
    assert keys.isdisjoint({load_key("b", "k.csv", "md5:x:5"), load_key("b", "k.csv", "v1")})


@pytest.mark.parametrize(("value", "rule"), [(None, DuplicateRule.CONTENT), ("version", DuplicateRule.VERSION)])
def test_duplicate_rule_defaults_to_content(value: str | None, rule: DuplicateRule) -> None:
    env = BASE | ({"DUPLICATE_RULE": value} if value else {})
    assert Settings.from_env(env).duplicate_rule is rule


def test_an_unknown_duplicate_rule_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="DUPLICATE_RULE"):
        Settings.from_env(BASE | {"DUPLICATE_RULE": "bytes"})


@pytest.mark.parametrize(
    ("ref", "expected_params"),
    [
        (ObjectRef("b", "k.csv", version_id="v1", etag="e"), {"VersionId": "v1"}),
        (ObjectRef("b", "k.csv", etag='"e"'), {"IfMatch": '"e"'}),
    ],
    ids=["versioned", "unversioned"],
)
def test_the_s3_source_heads_the_exact_version_with_checksums_on(
    ref: ObjectRef, expected_params: dict[str, str]
) -> None:
    # Given an S3 client that answers one HEAD for exactly that version, checksums enabled
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        params = {"Bucket": "b", "Key": "k.csv", "ChecksumMode": "ENABLED", **expected_params}
        stub.add_response("head_object", {"ETag": MD5, "ContentLength": 5}, params)
        # When the source takes the version's fingerprint
        fingerprint = S3Source(client).fingerprint(ref)
        # Then it is the HEAD's
        assert fingerprint.value == "md5:5d41402abc4b2a76b9719d911017c592:5"
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("status", "error"), [(404, ObjectGoneError), (503, SourceUnavailableError)], ids=["gone", "unavailable"]
)
def test_a_failed_head_is_the_sources_typed_error(status: int, error: type[Exception]) -> None:
    # Given an S3 client whose HEAD fails (HEAD answers carry no error body: the code is the status)
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_client_error("head_object", service_error_code=str(status), http_status_code=status)
        # When the source takes the fingerprint, Then the failure is the pipeline's typed error
        with pytest.raises(error):
            S3Source(client).fingerprint(ObjectRef("b", "k.csv", version_id="v1"))
