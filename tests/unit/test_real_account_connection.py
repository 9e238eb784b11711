"""`make query REAL=1` / `make report REAL=1`: the SNOWFLAKE_* variables to the connector's arguments, or one line
saying what is missing (tools/commands/connection.py). No account is reached: the connector is a stand-in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import snowflake.connector.errors as sf
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tools.commands.connection import CannotConnectError, real_account_kwargs, real_connection

WHERE = {"SNOWFLAKE_ACCOUNT": "myorg-acct", "SNOWFLAKE_DATABASE": "analytics", "SNOWFLAKE_SCHEMA": "Scoring"}


def test_a_user_and_password_read_the_database_and_schema_the_variables_name() -> None:
    # Given the function's variables for where the tables are, and a user with a password
    env = WHERE | {"SNOWFLAKE_USER": "ANALYST", "SNOWFLAKE_PASSWORD": "pw", "SNOWFLAKE_WAREHOUSE": "XS_WH"}

    # When they are turned into the connector's arguments
    kwargs, database, schema = real_account_kwargs(env | {"SNOWFLAKE_ROLE": "READER", "SNOWFLAKE_PORT": "8443"})

    # Then the connection goes to that account, database and schema, as that user, with the optional settings
    assert (database, schema) == ("ANALYTICS", "SCORING")
    assert kwargs["account"] == "myorg-acct" and kwargs["user"] == "ANALYST" and kwargs["password"] == "pw"
    assert (kwargs["database"], kwargs["schema"]) == ("ANALYTICS", "SCORING")
    assert (kwargs["warehouse"], kwargs["role"], kwargs["port"]) == ("XS_WH", "READER", 8443)
    assert kwargs["session_parameters"]["TIMEZONE"] == "UTC"


def test_a_private_key_file_is_read_and_passed_as_der_bytes(tmp_path: Path) -> None:
    # Given SNOWFLAKE_PRIVATE_KEY_PATH naming a PEM key, as `make test-snowflake` takes it
    key = tmp_path / "rsa_key.p8"
    key.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )

    # When the arguments are built
    kwargs, _, _ = real_account_kwargs(WHERE | {"SNOWFLAKE_USER": "ANALYST", "SNOWFLAKE_PRIVATE_KEY_PATH": str(key)})

    # Then the key goes to the connector as DER bytes, and no password
    assert isinstance(kwargs["private_key"], bytes) and "password" not in kwargs


def test_the_functions_own_secret_serves_when_no_user_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given SNOWFLAKE_SECRET_NAME (the deployed function's variables) and no SNOWFLAKE_USER
    from adapters import secrets

    read: list[str] = []

    def credentials(self: secrets.SecretsProvider, **_: Any) -> secrets.SnowflakeCredentials:
        read.append(self.secret_name)
        return secrets.parse_credentials({"user": "LOADER", "password": "pw", "account": "from-secret"}, "x")

    monkeypatch.setattr(secrets.SecretsProvider, "credentials", credentials)
    env = {k: v for k, v in WHERE.items() if k != "SNOWFLAKE_ACCOUNT"} | {"SNOWFLAKE_SECRET_NAME": "tumour/sf"}

    # When the arguments are built
    kwargs, _, _ = real_account_kwargs(env)

    # Then the secret is read, and its account used when SNOWFLAKE_ACCOUNT is not set
    assert read == ["tumour/sf"]
    assert (kwargs["user"], kwargs["account"]) == ("LOADER", "from-secret")


@pytest.mark.parametrize(
    ("env", "said"),
    [
        pytest.param(WHERE, "--real-account needs SNOWFLAKE_USER with SNOWFLAKE_PASSWORD", id="no-credentials"),
        pytest.param(
            {"SNOWFLAKE_USER": "A", "SNOWFLAKE_PASSWORD": "pw"},
            "--real-account needs SNOWFLAKE_ACCOUNT, SNOWFLAKE_DATABASE, SNOWFLAKE_SCHEMA",
            id="nowhere",
        ),
        pytest.param(
            WHERE | {"SNOWFLAKE_USER": "A", "SNOWFLAKE_PRIVATE_KEY_PATH": "/no/such/key.p8"},
            "SNOWFLAKE_PRIVATE_KEY_PATH: cannot read /no/such/key.p8",
            id="no-key-file",
        ),
        pytest.param(
            WHERE | {"SNOWFLAKE_USER": "A", "SNOWFLAKE_PRIVATE_KEY": "not a key"},
            "not a readable PEM private key",
            id="bad-key",
        ),
        pytest.param(
            WHERE | {"SNOWFLAKE_USER": "A", "SNOWFLAKE_PASSWORD": "pw", "SNOWFLAKE_SCHEMA": "no;such"},
            "SNOWFLAKE_SCHEMA 'no;such' is not a valid Snowflake identifier",
            id="bad-schema",
        ),
    ],
)
def test_what_is_missing_or_unusable_is_said_in_one_line_with_status_2(env: dict[str, str], said: str) -> None:
    # Given incomplete or unusable settings / When the arguments are built
    with pytest.raises(CannotConnectError) as refused:
        real_account_kwargs(env)

    # Then the refusal names what to set, with the usage status
    assert said in str(refused.value)
    assert refused.value.status == 2
    assert "pw" not in str(refused.value)


@pytest.mark.parametrize(
    ("error", "status"),
    [(sf.DatabaseError(msg="Incorrect username or password was specified."), 2), (sf.OperationalError(msg="x"), 3)],
    ids=["refused-login-2", "unreachable-3"],
)
def test_a_failed_login_is_one_line_naming_the_account(error: Exception, status: int) -> None:
    # Given an account that refuses the login, or cannot be reached
    def connect(**_: Any) -> Any:
        raise error

    env = WHERE | {"SNOWFLAKE_USER": "A", "SNOWFLAKE_PASSWORD": "pw"}

    # When a connection is opened / Then it is refused with the account named, and the status for a retry or not
    with pytest.raises(CannotConnectError) as refused, real_connection(env, connect=connect):
        pass
    assert str(refused.value).startswith("cannot log in to Snowflake account myorg-acct: ")
    assert refused.value.status == status
