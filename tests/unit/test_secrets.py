"""The Snowflake secret's content: every field a string, or a ConfigurationError naming the field, never its value."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from adapters.secrets import parse_credentials
from pipeline.errors import ConfigurationError, SecretInvalidError

SECRET_NAME = "tumour/snowflake"
# Every field the secret may hold, aliases included (README, Configuration: SNOWFLAKE_SECRET_NAME)
SECRET_FIELDS = ["user", "username", "password", "private_key", "privateKey", "private_key_passphrase", "account"]
PASSPHRASE = "correct horse"


@pytest.fixture(scope="module")
def secret() -> dict[str, str]:
    """A usable key-pair secret, the key encrypted with a passphrase (Ed25519: quick to make, any PEM will do)."""
    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSPHRASE.encode()),
        )
        .decode()
    )
    return {"user": "LOADER", "account": "xy12345", "private_key": pem, "private_key_passphrase": PASSPHRASE}


def test_the_base_secret_is_usable(secret: dict[str, str]) -> None:
    # Given the secret every case below breaks one field of / When read / Then it gives a user and a DER key
    kwargs = parse_credentials(secret, SECRET_NAME).connect_kwargs()
    assert kwargs["user"] == "LOADER" and isinstance(kwargs["private_key"], bytes)


# Each value is one JSON type that is not a string; its text must never reach the message.
WRONG_TYPES: dict[str, tuple[Any, str]] = {
    "integer": (918273645, "918273645"),
    "float": (3.14159, "3.14159"),
    "true": (True, "True"),
    "false": (False, "False"),
    "array": (["s3cr3t-in-a-list"], "s3cr3t"),
    "object": ({"s3cr3t-key": "s3cr3t-value"}, "s3cr3t"),
}


@pytest.mark.parametrize("wrong", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
@pytest.mark.parametrize("field", SECRET_FIELDS)
def test_a_field_that_is_not_a_string_is_a_configuration_error_naming_it(
    secret: dict[str, str], field: str, wrong: tuple[Any, str]
) -> None:
    # Given the secret with one field (or its alias) holding a JSON value that is not a string
    value, text = wrong
    raw = secret | {field: value}
    # When the credentials are read and turned into connect arguments
    with pytest.raises(ConfigurationError) as caught:
        parse_credentials(raw, SECRET_NAME).connect_kwargs()
    # Then the error names the field and the secret, never the value, and is the permanent secret_invalid kind
    message = str(caught.value)
    assert f"'{field}' must be a JSON string" in message and SECRET_NAME in message
    assert text not in message
    assert isinstance(caught.value, SecretInvalidError) and caught.value.reason == "secret_invalid"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (["user", "password"], "must be a JSON object"),
        ({"password": "p"}, "has no 'user'"),
        ({"user": "", "password": "p"}, "has no 'user'"),
        ({"user": "u"}, "needs a 'password' or a 'private_key'"),
        ({"user": "u", "private_key": "not a pem"}, "not a readable PEM private key"),
    ],
    ids=["not-an-object", "no-user", "empty-user", "no-password-or-key", "unreadable-pem"],
)
def test_every_unusable_secret_is_a_configuration_error(raw: Any, reason: str) -> None:
    # Given a secret that cannot give credentials / When read / Then a ConfigurationError says why
    with pytest.raises(ConfigurationError, match=reason):
        parse_credentials(raw, SECRET_NAME).connect_kwargs()


def test_a_wrong_passphrase_is_a_configuration_error(secret: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="private_key_passphrase is wrong"):
        parse_credentials(secret | {"private_key_passphrase": "nope"}, SECRET_NAME).connect_kwargs()


def test_null_fields_are_absent(secret: dict[str, str]) -> None:
    # Given optional fields set to JSON null / When read / Then they count as absent, not as wrong types
    creds = parse_credentials(secret | {"password": None, "username": None, "privateKey": None}, SECRET_NAME)
    assert creds.password is None and creds.user == "LOADER"
