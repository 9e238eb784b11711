"""The embedded local stack: moto in server mode (real HTTP, for boto3) and fakesnow as an HTTP server
(for the real snowflake-connector-python, including write_pandas' PUT + COPY INTO), both on loopback.

Used by the tests, ``make demo`` and ``make invoke``. Development only: nothing here is shipped.

fakesnow gaps worked around here (and only here, never in the function's code):
* write_pandas issues ``COPY INTO t FROM (SELECT ... FROM '@stage')``: the stage as a quoted string, which
  Snowflake accepts. fakesnow 0.12 accepts only a bare ``@stage``; ``_patch_fakesnow_copy_from_literal``
  teaches it the quoted form.
* fakesnow's server keeps data in memory unless the login names a file; ``db_path`` makes the server's shared
  instance file-backed so results can be queried after the run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGION = "us-east-1"
SECRET_NAME = "local/snowflake/tumour-scoring"
DATABASE = "TUMOURS"
SCHEMA = "SCORING"
WAREHOUSE = "LOCAL_WH"
BUCKET = "hospital-drop-local"
FAKE_CREDENTIALS = {"user": "fake", "password": "snow", "account": "fakesnow"}


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _patch_fakesnow_copy_from_literal() -> None:
    import fakesnow.copy_into as copy_into
    from sqlglot import exp

    if getattr(copy_into, "_tumour_patched", False):
        return
    original = copy_into._from_source

    def _from_source(expr: exp.Copy) -> str:
        source = expr.args["files"][0].this
        if isinstance(source, exp.Select) and (from_ := source.args.get("from_")) is not None:
            table = from_.this
            if isinstance(table, exp.Table) and isinstance(table.this, exp.Literal) and table.this.name.startswith("@"):
                return str(table.this.name)
        return str(original(expr))

    copy_into._from_source = _from_source
    copy_into._tumour_patched = True


@dataclass
class LambdaContext:
    """The parts of Lambda's context object the handler (and Powertools) read, for in-process local runs."""

    function_name: str = "tumour-scoring-local"
    memory_limit_in_mb: int = 2048
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:tumour-scoring-local"
    aws_request_id: str = "local-request"


@dataclass
class LocalStack:
    """Endpoints of a running stack, and the environment that points the function at it."""

    aws_endpoint: str
    snowflake_host: str
    snowflake_port: int
    snowflake_db_path: Path | None
    secret_name: str = SECRET_NAME
    bucket: str = BUCKET
    extra_env: dict[str, str] = field(default_factory=dict)

    def function_env(self) -> dict[str, str]:
        """Environment variables for the Lambda function (what template.yaml sets, pointed at loopback)."""
        return {
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "SNOWFLAKE_SECRET_NAME": self.secret_name,
            "SNOWFLAKE_DATABASE": DATABASE,
            "SNOWFLAKE_SCHEMA": SCHEMA,
            "SNOWFLAKE_WAREHOUSE": WAREHOUSE,
            "SNOWFLAKE_HOST": self.snowflake_host,
            "SNOWFLAKE_PORT": str(self.snowflake_port),
            "SNOWFLAKE_PROTOCOL": "http",
            "SNOWFLAKE_LOGIN_TIMEOUT": "10",
            "POWERTOOLS_SERVICE_NAME": "tumour-scoring",
            "POWERTOOLS_METRICS_NAMESPACE": "TumourScoring",
            "POWERTOOLS_TRACE_DISABLED": "true",
            **self.extra_env,
        }

    def boto3_session(self) -> Any:
        import boto3

        return boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name=REGION,
        )

    def client(self, service: str) -> Any:
        return self.boto3_session().client(service, endpoint_url=self.aws_endpoint)

    def snowflake_connect(self, **kwargs: Any) -> Any:
        """A real snowflake.connector connection to the emulator (for inspecting results)."""
        import snowflake.connector

        return snowflake.connector.connect(
            user="fake",
            password="snow",
            account="fakesnow",
            host=self.snowflake_host,
            port=self.snowflake_port,
            protocol="http",
            database=DATABASE,
            schema=SCHEMA,
            session_parameters={"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
            login_timeout=10,
            **kwargs,
        )

    def seed(self, *, bucket: str | None = None, secret: dict[str, str] | None = None) -> None:
        """Create the bucket and the Snowflake secret (idempotent)."""
        s3 = self.client("s3")
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
            s3.create_bucket(Bucket=bucket or self.bucket)
        sm = self.client("secretsmanager")
        payload = json.dumps(secret or FAKE_CREDENTIALS)
        try:
            sm.create_secret(Name=self.secret_name, SecretString=payload)
        except sm.exceptions.ResourceExistsException:
            sm.put_secret_value(SecretId=self.secret_name, SecretString=payload)


@contextlib.contextmanager
def _moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@contextlib.contextmanager
def _fakesnow_server(db_path: Path | None) -> Iterator[int]:
    import fakesnow.server
    import uvicorn
    from fakesnow.instance import FakeSnow

    _patch_fakesnow_copy_from_literal()
    logging.getLogger("fakesnow").setLevel(logging.WARNING)
    logging.getLogger("fakesnow.server").setLevel(logging.WARNING)  # it sets INFO itself: a line per login
    # DuckDB's advice to fakesnow's own code (about an extra copy when it answers a query); nothing to act on.
    warnings.filterwarnings("ignore", message="Arrow output on a DB-API result", category=UserWarning)
    if db_path is not None:
        db_path.mkdir(parents=True, exist_ok=True)
        fakesnow.server.shared_fs = FakeSnow(db_path=str(db_path))
    else:
        fakesnow.server.shared_fs = FakeSnow()
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(fakesnow.server.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="fakesnow-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("fakesnow server did not start")
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        with contextlib.suppress(Exception):
            fakesnow.server.shared_fs.duck_conn.close()


@contextlib.contextmanager
def local_stack(db_path: Path | None = None, *, seed: bool = True) -> Iterator[LocalStack]:
    """Start moto + fakesnow on loopback for the duration of the block.

    ``db_path``: a folder for fakesnow's DuckDB files (one per database), kept after the run; None = in memory.
    """
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(var, None)
    with _moto_server() as aws_endpoint, _fakesnow_server(db_path) as sf_port:
        stack = LocalStack(
            aws_endpoint=aws_endpoint, snowflake_host="127.0.0.1", snowflake_port=sf_port, snowflake_db_path=db_path
        )
        if seed:
            stack.seed()
        yield stack
