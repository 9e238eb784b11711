"""Where `make query` and `make report` read: the emulated Snowflake a local run left, or a real account.

Local (the default): the folder given, by default the served model's (``default_db_path``: ``$MODEL_DIR``, else
model/), ``.local/snowflake/<model version>/``, served by this process for the duration of the block.

A real account (``--real-account``): where the tables are, as the function reads it (``SNOWFLAKE_ACCOUNT``,
``SNOWFLAKE_DATABASE``, ``SNOWFLAKE_SCHEMA``, optional ``SNOWFLAKE_WAREHOUSE``, ``SNOWFLAKE_ROLE``,
``SNOWFLAKE_HOST`` / ``SNOWFLAKE_PORT`` / ``SNOWFLAKE_PROTOCOL``), and who reads it: ``SNOWFLAKE_USER`` with
``SNOWFLAKE_PASSWORD``, ``SNOWFLAKE_PRIVATE_KEY`` (PEM text) or ``SNOWFLAKE_PRIVATE_KEY_PATH`` (+
``SNOWFLAKE_PRIVATE_KEY_PASSPHRASE``), as `make test-snowflake` takes them, or else the function's own secret
(``SNOWFLAKE_SECRET_NAME``, read from Secrets Manager with your AWS credentials).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.commands.score import EXIT_RETRIABLE, EXIT_USAGE, default_db_path, make_importable
from tools.emulated.local_stack import DATABASE, LOCK_FILE, SCHEMA, DatabaseInUseError, hold_database, local_stack

SESSION_PARAMETERS = {
    "TIMEZONE": "UTC",
    "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False,
    "QUERY_TAG": "tumour-scoring-tools",
}


class CannotConnectError(Exception):
    """Nothing to read as configured, or not now: a one-line message and the exit status it means."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Connection:
    """An open snowflake.connector connection, where its tables are, and how to name that place to a reader."""

    conn: Any
    database: str
    schema: str
    described: str  # "the emulated Snowflake in .local/snowflake/1.0.0/", "Snowflake account myorg-acct"

    def table(self, name: str) -> str:
        return f"{self.database}.{self.schema}.{name}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--db-path DIR`` or ``--real-account``: where to read (the module docstring)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--db-path", type=Path, help="default: the served model's, .local/snowflake/<version>/")
    where.add_argument("--real-account", action="store_true", help="a real account, named by SNOWFLAKE_* variables")


def open_connection(args: argparse.Namespace) -> contextlib.AbstractContextManager[Connection]:
    """What ``add_arguments``' options chose: the real account, or the emulated Snowflake (the served model's)."""
    if args.real_account:
        return real_connection(os.environ)
    return local_connection(args.db_path or default_db_path())


@contextlib.contextmanager
def local_connection(db_path: Path) -> Iterator[Connection]:
    """The emulated Snowflake in ``db_path``, served by this process (moto + fakesnow) for the block."""
    if (db_path / LOCK_FILE).exists():  # in use: say so first (the database file may not be written yet)
        try:
            with hold_database(db_path):
                pass
        except DatabaseInUseError as exc:
            raise CannotConnectError(str(exc), EXIT_RETRIABLE) from None
    if not (db_path / f"{DATABASE}.db").exists():
        raise CannotConnectError(
            f"no emulated database in {db_path}: run `make demo` or `make score FILE=...` first", EXIT_USAGE
        )
    with contextlib.ExitStack() as running:
        try:
            stack = running.enter_context(local_stack(db_path, seed=False))
        except DatabaseInUseError as exc:
            raise CannotConnectError(str(exc), EXIT_RETRIABLE) from None
        conn = stack.snowflake_connect()
        try:
            yield Connection(conn, DATABASE, SCHEMA, f"the emulated Snowflake in {db_path}/")
        finally:
            conn.close()


@contextlib.contextmanager
def real_connection(environ: Mapping[str, str], *, connect: Any = None) -> Iterator[Connection]:
    """The account the SNOWFLAKE_* variables name (module docstring). ``connect``: snowflake.connector's, else."""
    import snowflake.connector

    make_importable()  # the secret's parsing is the function's own (src/adapters/secrets.py)
    kwargs, database, schema = real_account_kwargs(environ)
    try:
        conn = (connect or snowflake.connector.connect)(**kwargs)
    except snowflake.connector.errors.Error as exc:
        errors = snowflake.connector.errors
        network = isinstance(exc, errors.OperationalError | errors.InterfaceError)
        raise CannotConnectError(
            f"cannot log in to Snowflake account {kwargs['account']}: {exc.msg or type(exc).__name__}",
            EXIT_RETRIABLE if network else EXIT_USAGE,
        ) from None
    try:
        yield Connection(conn, database, schema, f"Snowflake account {kwargs['account']}")
    finally:
        conn.close()


def real_account_kwargs(environ: Mapping[str, str]) -> tuple[dict[str, Any], str, str]:
    """The connector's keyword arguments, the database and the schema; CannotConnectError when incomplete."""
    from pipeline.settings import validate_identifier

    env = {name: value for name, value in environ.items() if name.startswith("SNOWFLAKE_") and value}
    credentials = _credentials(env)
    account = env.get("SNOWFLAKE_ACCOUNT") or credentials.account
    missing = [name for name in ("SNOWFLAKE_DATABASE", "SNOWFLAKE_SCHEMA") if name not in env]
    if not account or missing:
        needed = ", ".join((["SNOWFLAKE_ACCOUNT"] if not account else []) + missing)
        raise CannotConnectError(f"--real-account needs {needed} (where the tables are)", EXIT_USAGE)
    try:
        database = validate_identifier(env["SNOWFLAKE_DATABASE"], "SNOWFLAKE_DATABASE")
        schema = validate_identifier(env["SNOWFLAKE_SCHEMA"], "SNOWFLAKE_SCHEMA")
    except ValueError as exc:
        raise CannotConnectError(str(exc), EXIT_USAGE) from None
    kwargs: dict[str, Any] = {
        "account": account,
        "database": database,
        "schema": schema,
        "login_timeout": 30,
        "application": "tumour-scoring-tools",
        "session_parameters": dict(SESSION_PARAMETERS),
        **_key_pair_or_password(credentials),
    }
    for name in ("WAREHOUSE", "ROLE", "HOST", "PROTOCOL"):  # the last two for a private-link host (or an emulator)
        if f"SNOWFLAKE_{name}" in env:
            kwargs[name.lower()] = env[f"SNOWFLAKE_{name}"]
    if "SNOWFLAKE_PORT" in env:
        if not env["SNOWFLAKE_PORT"].isdigit():
            raise CannotConnectError(f"SNOWFLAKE_PORT {env['SNOWFLAKE_PORT']!r} is not a port number", EXIT_USAGE)
        kwargs["port"] = int(env["SNOWFLAKE_PORT"])
    return kwargs, database, schema


def _credentials(env: Mapping[str, str]) -> Any:
    """adapters.secrets' SnowflakeCredentials from SNOWFLAKE_USER & co., else from the secret SNOWFLAKE_SECRET_NAME."""
    from adapters.secrets import SecretsProvider, parse_credentials
    from pipeline.errors import PipelineError

    key_path = env.get("SNOWFLAKE_PRIVATE_KEY_PATH")
    try:
        if "SNOWFLAKE_USER" in env:
            key = env.get("SNOWFLAKE_PRIVATE_KEY") or (Path(key_path).expanduser().read_text() if key_path else None)
            raw = {
                "user": env["SNOWFLAKE_USER"],
                "password": env.get("SNOWFLAKE_PASSWORD"),
                "private_key": key,
                "private_key_passphrase": env.get("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"),
            }
            return parse_credentials(raw, "SNOWFLAKE_USER & co. (the environment)")
        if "SNOWFLAKE_SECRET_NAME" in env:
            return SecretsProvider(env["SNOWFLAKE_SECRET_NAME"]).credentials()
    except OSError as exc:
        raise CannotConnectError(
            f"SNOWFLAKE_PRIVATE_KEY_PATH: cannot read {key_path}: {exc.strerror}", EXIT_USAGE
        ) from None
    except PipelineError as exc:
        raise CannotConnectError(str(exc), EXIT_RETRIABLE if exc.retriable else EXIT_USAGE) from None
    raise CannotConnectError(
        "--real-account needs SNOWFLAKE_USER with SNOWFLAKE_PASSWORD, SNOWFLAKE_PRIVATE_KEY or "
        "SNOWFLAKE_PRIVATE_KEY_PATH, or SNOWFLAKE_SECRET_NAME (the function's secret)",
        EXIT_USAGE,
    )


def _key_pair_or_password(credentials: Any) -> dict[str, Any]:
    from pipeline.errors import PipelineError

    try:
        return dict(credentials.connect_kwargs())
    except PipelineError as exc:  # an unreadable PEM key or a wrong passphrase
        raise CannotConnectError(str(exc), EXIT_USAGE) from None
