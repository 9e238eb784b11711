"""Snowflake credentials from AWS Secrets Manager, fetched through Powertools with a cache."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError

from pipeline.errors import ConfigurationError, SecretInvalidError, SecretUnavailableError

SECRET_MAX_AGE_SECONDS = 300
# Every field the secret may hold (with the aliases Secrets Manager's templates use); each must be a string.
SECRET_FIELDS = ("user", "username", "password", "private_key", "privateKey", "private_key_passphrase", "account")
_JSON_TYPES = {bool: "a boolean", int: "a number", float: "a number", list: "an array", dict: "an object"}


class SecretConfigurationError(SecretInvalidError, ConfigurationError):
    """The secret's content cannot be used: configuration to fix (ConfigurationError) that no retry fixes.

    Still a SecretInvalidError (reason ``secret_invalid``); the message names the secret and the field, never a
    value of it.
    """


class _WhileFetchingSecret(logging.Filter):
    """Drops botocore's DEBUG records made while this thread fetches the secret.

    botocore.parsers logs every response body at DEBUG, and GetSecretValue's body is the secret itself; anyone
    turning DEBUG on (AWS_LAMBDA_LOG_LEVEL, a debugging session) would otherwise put the password in the logs.
    """

    _state = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self._state, "active", False)

    @classmethod
    @contextlib.contextmanager
    def active(cls) -> Iterator[None]:
        cls._state.active = True
        try:
            yield
        finally:
            cls._state.active = False


_QUIET = _WhileFetchingSecret()
for _name in ("botocore.parsers", "botocore.endpoint", "botocore.hooks", "botocore.retryhandler"):
    logging.getLogger(_name).addFilter(_QUIET)


@dataclass(frozen=True)
class SnowflakeCredentials:
    user: str
    account: str | None = None
    password: str | None = field(default=None, repr=False)
    private_key_pem: str | None = field(default=None, repr=False)
    private_key_passphrase: str | None = field(default=None, repr=False)

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for snowflake.connector.connect (a password, or a key-pair as DER bytes)."""
        kwargs: dict[str, Any] = {"user": self.user}
        if self.private_key_pem:
            from cryptography.hazmat.primitives import serialization

            passphrase = self.private_key_passphrase.encode() if self.private_key_passphrase else None
            try:
                key = serialization.load_pem_private_key(self.private_key_pem.encode(), password=passphrase)
            except (ValueError, TypeError) as exc:
                raise SecretConfigurationError(
                    "the secret's private_key is not a readable PEM private key (or private_key_passphrase is wrong)"
                ) from exc
            kwargs["private_key"] = key.private_bytes(
                encoding=serialization.Encoding.DER,
                format=serialization.PrivateFormat.PKCS8,
                encryption_algorithm=serialization.NoEncryption(),
            )
        else:
            kwargs["password"] = self.password
        return kwargs


def parse_credentials(raw: Any, secret_name: str) -> SnowflakeCredentials:
    if not isinstance(raw, dict):
        raise SecretConfigurationError(f"secret {secret_name!r} must be a JSON object")
    for name in SECRET_FIELDS:
        value = raw.get(name)
        if value is not None and not isinstance(value, str):
            kind = _JSON_TYPES.get(type(value), "something else")
            raise SecretConfigurationError(f"secret {secret_name!r}: {name!r} must be a JSON string, not {kind}")
    user = raw.get("user") or raw.get("username")
    if not user:
        raise SecretConfigurationError(f"secret {secret_name!r} has no 'user'")
    password = raw.get("password")
    private_key = raw.get("private_key") or raw.get("privateKey")
    if not password and not private_key:
        raise SecretConfigurationError(f"secret {secret_name!r} needs a 'password' or a 'private_key' (PEM)")
    return SnowflakeCredentials(
        user=user,
        account=raw.get("account"),
        password=password,
        private_key_pem=private_key,
        private_key_passphrase=raw.get("private_key_passphrase"),
    )


class SecretsProvider:
    """Fetches and caches the Snowflake secret; never logs its content."""

    def __init__(self, secret_name: str, *, max_age: int = SECRET_MAX_AGE_SECONDS, boto3_client: Any = None) -> None:
        self.secret_name = secret_name
        self._max_age = max_age
        self._provider = parameters.SecretsProvider(boto3_client=boto3_client) if boto3_client else None

    def credentials(self, *, force_fetch: bool = False) -> SnowflakeCredentials:
        try:
            with _WhileFetchingSecret.active():
                raw = self._fetch(force_fetch)
        except TransformParameterError as exc:
            raise SecretConfigurationError(f"secret {self.secret_name!r} is not valid JSON") from exc
        except GetParameterError as exc:
            raise SecretUnavailableError(
                f"cannot read secret {self.secret_name!r} from Secrets Manager: {type(exc.__cause__ or exc).__name__}"
            ) from exc
        return parse_credentials(raw, self.secret_name)

    def _fetch(self, force_fetch: bool) -> Any:
        if self._provider is not None:
            return self._provider.get(
                self.secret_name, transform="json", max_age=self._max_age, force_fetch=force_fetch
            )
        return parameters.get_secret(self.secret_name, transform="json", max_age=self._max_age, force_fetch=force_fetch)
