"""The embedded local stack: moto in server mode (real HTTP, for boto3) and fakesnow as an HTTP server
(for the real snowflake-connector-python, including write_pandas' PUT + COPY INTO), both on loopback.

Used by the tests, ``make demo`` and ``make invoke``. Development only: nothing here is shipped.

fakesnow gaps worked around here (and only here, never in the function's code):
* write_pandas issues ``COPY INTO t FROM (SELECT ... FROM '@stage')``: the stage as a quoted string, which
  Snowflake accepts. fakesnow 0.12 accepts only a bare ``@stage``; ``_patch_fakesnow_copy_from_literal``
  teaches it the quoted form.
* DuckDB resolves two transactions writing one row by failing the second at once (snapshot isolation; Snowflake
  makes it wait for the lock, then lets each statement see what committed meanwhile). fakesnow answers that with
  HTTP 500, which the connector retries until its network timeout; ``_patch_fakesnow_conflicts`` reports it at
  once as the serialization failure it is (SQLSTATE 40001), which the function treats as a retriable conflict; a
  DDL statement (two sessions creating one table) is run again instead, as Snowflake's DDL lock would.
* fakesnow's server keeps data in memory unless the login names a file; ``db_path`` makes the server's shared
  instance file-backed so results can be queried after the run.
* fakesnow's server logs every session into one module-wide instance (``fakesnow.server.shared_fs``), so a second
  stack started in the same process (a test's own, beside the test session's) would take over the first one's
  logins and, when it stops, leave the first serving a closed database. ``_logging_in_to`` gives each server its
  own instance, and a stack that stops puts back the instance it found.

moto gaps worked around here (local_queue.py wires the bucket to the queues as template.yaml does; moto 5.2
delivers S3 -> SQS notifications and redrives to the DLQ after maxReceiveCount receives by itself):
* its S3 notification has no ``versionId`` (even on a versioned bucket) and no ``sequencer``, and encodes ``/`` in
  the key as ``%2F``; ``_patch_moto_s3_notifications`` adds the first two (the sequencer from a counter, growing
  with every event) and leaves ``/`` as S3 does.
* its ReceiveMessage takes no lock, so two consumers polling at once can both receive one message;
  ``_patch_moto_sqs_receive`` makes receives of one queue take turns, as SQS hands a message to one consumer.
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


def _free_port(host: str = "127.0.0.1", port: int | None = None) -> int:
    """A port free on ``host``: any (port None) or the one asked for, with a clear error if it is taken."""
    with contextlib.closing(socket.socket()) as sock:
        # as the servers themselves bind: connections of a stack just stopped (TIME_WAIT) do not block the port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port or 0))
        except OSError as exc:
            raise RuntimeError(f"cannot listen on {host}:{port}: {exc.strerror} (is a local stack running?)") from exc
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


DDL_CONFLICT_RETRIES = 5


def _patch_fakesnow_conflicts() -> None:
    import duckdb
    import snowflake.connector.errors as sf
    from fakesnow.cursor import FakeSnowflakeCursor

    if getattr(FakeSnowflakeCursor, "_tumour_conflicts_patched", False):
        return
    original = FakeSnowflakeCursor.execute

    def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        command = str(args[0] if args else kwargs.get("command", ""))
        ddl = command.lstrip().split(" ", 1)[0].upper() in {"CREATE", "ALTER", "DROP"}
        for attempt in range(DDL_CONFLICT_RETRIES + 1):
            try:
                return original(self, *args, **kwargs)
            except (duckdb.TransactionException, duckdb.ConstraintException) as exc:
                # For DDL, either is a race with another session creating the same table (fakesnow's own catalog
                # bookkeeping, a table's text lengths, can also collide when the two commit).
                if not ddl and "conflict" not in str(exc).lower():
                    raise
                if ddl and attempt < DDL_CONFLICT_RETRIES:
                    # Snowflake serialises DDL on one object behind its lock; the second CREATE ... IF NOT EXISTS
                    # then finds the table. DuckDB fails it at once: run it again, as the lock would have.
                    with contextlib.suppress(Exception):
                        self._duck_conn.rollback()
                    time.sleep(0.05 * (attempt + 1))
                    continue
                raise sf.OperationalError(
                    msg=f"transaction conflict (DuckDB): {str(exc).splitlines()[0][:200]}", errno=604, sqlstate="40001"
                ) from exc
        raise AssertionError("unreachable")

    FakeSnowflakeCursor.execute = execute  # type: ignore[method-assign]
    FakeSnowflakeCursor._tumour_conflicts_patched = True  # type: ignore[attr-defined]


def _put_over_http(app: Any) -> Any:
    """fakesnow's ASGI app, with write_pandas' uploads sent over HTTP (for a function in a container).

    write_pandas uploads with ``PUT 'file://...' ?`` and the stage as a bound parameter. fakesnow answers a PUT
    with a bound stage with a path in its own filesystem (LOCAL_FS), which a client in a container cannot
    write to, and only a PUT without bindings with an HTTP upload URL. This wrapper inlines the bound stage so
    the upload goes over HTTP, as it does with real Snowflake (the client sends the file over the network).
    The connector's direct uploads carry no command text, so it does not re-request the URL without the
    binding. Used only when the stack listens for containers; on loopback the shared filesystem suffices.
    """
    import gzip

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("path") != "/queries/v1/query-request":
            await app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        headers = [(k, v) for k, v in scope.get("headers", [])]
        gzipped = any(k.lower() == b"content-encoding" and v.lower() == b"gzip" for k, v in headers)
        try:
            data = json.loads(gzip.decompress(body) if gzipped else body)
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict):
            sql = str(data.get("sqlText", ""))
            bindings = data.get("bindings") or {}
            stage = (bindings.get("1") or {}).get("value") if set(bindings) == {"1"} else None
            if sql.lstrip().upper().startswith("PUT ") and sql.count("?") == 1 and isinstance(stage, str):
                data["sqlText"] = sql.replace("?", stage)
                del data["bindings"]
                body = json.dumps(data).encode()
                headers = [(k, v) for k, v in headers if k.lower() not in (b"content-encoding", b"content-length")]
                headers.append((b"content-length", str(len(body)).encode()))
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await app({**scope, "headers": headers}, replay, send)

    return wrapped


@dataclass
class LambdaContext:
    """The parts of Lambda's context object the handler (and Powertools) read, for in-process local runs."""

    function_name: str = "tumour-scoring-local"
    memory_limit_in_mb: int = 2048
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:tumour-scoring-local"
    aws_request_id: str = "local-request"
    timeout_seconds: float = 900.0  # template.yaml's Timeout, counted from when the context is made
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.started + self.timeout_seconds - time.monotonic()) * 1000))


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
    queues: Any = None  # tools.emulated.local_queue.Queues, once seed_queue() has wired the bucket to them

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

    def seed_queue(self, settings: Any = None) -> Any:
        """The ingest queue and its DLQ as template.yaml declares them, the bucket notifying the queue (idempotent).

        ``settings``: a local_queue.QueueSettings (default: the template's). Returns (and keeps) the Queues."""
        from tools.emulated.local_queue import wire_queue

        self.queues = wire_queue(self, settings, bucket=self.bucket)
        return self.queues


def _patch_moto_s3_notifications() -> None:
    import itertools
    from urllib.parse import quote_plus

    import moto.s3.notifications as notifications

    if getattr(notifications, "_tumour_patched", False):
        return
    original = notifications._get_s3_event
    sequencer = itertools.count(int(time.time() * 1000) << 16)

    def _get_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        event: dict[str, Any] = original(event_name, bucket, key, notification_id)
        obj = event["Records"][0]["s3"]["object"]
        obj["key"] = quote_plus(key.name, safe="/")
        if bucket.is_versioned:
            obj["versionId"] = key.version_id
        obj["sequencer"] = f"{next(sequencer):018X}"
        return event

    notifications._get_s3_event = _get_s3_event
    notifications._tumour_patched = True


def _patch_moto_sqs_receive() -> None:
    from moto.sqs.models import SQSBackend

    if getattr(SQSBackend, "_tumour_patched", False):
        return
    original = SQSBackend.receive_message
    locks: dict[tuple[int, str], threading.Lock] = {}
    guard = threading.Lock()

    def receive_message(
        self: Any,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> Any:
        with guard:
            lock = locks.setdefault((id(self), queue_name), threading.Lock())
        deadline = time.monotonic() + wait_seconds_timeout
        while True:  # the long poll, without holding the lock while it waits
            with lock:
                received = original(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
            remaining = deadline - time.monotonic()
            if received or remaining <= 0:
                return received
            self.get_queue(queue_name).wait_for_messages(min(1.0, remaining))

    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
    SQSBackend._tumour_patched = True  # type: ignore[attr-defined]


@contextlib.contextmanager
def _moto_server(host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    _patch_moto_s3_notifications()
    _patch_moto_sqs_receive()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = _free_port(host, port)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


LOCK_FILE = ".in-use"  # in the db_path folder: held (flock) by the process serving it, naming that process


class DatabaseInUseError(RuntimeError):
    """Another process serves this emulated Snowflake folder: DuckDB lets one process write a database file."""


def _command_line() -> str:
    """How this process was started, as a user would recognise it (``python -m tools.commands.score x.csv``)."""
    import sys

    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    first = f"-m {spec.name}" if spec is not None and spec.name else Path(sys.argv[0]).name
    return " ".join(["python", first, *sys.argv[1:]])[:200]


@contextlib.contextmanager
def hold_database(db_path: Path, owner: str | None = None) -> Iterator[None]:
    """Hold ``db_path`` for this process for the duration of the block, or refuse at once.

    DuckDB (fakesnow's engine) lets one process open a database file for writing; a second stack on the same
    folder would fail on its first query, deep inside the emulator, and the connector would retry that for
    minutes. The lock is an flock on ``db_path/.in-use`` (released by the kernel when the process ends, however it
    ends), and the file names the holder, so the refusal can say which process to stop.
    ``owner``: how to name this process to the next one (default: its command line)."""
    import fcntl

    db_path.mkdir(parents=True, exist_ok=True)
    fd = os.open(db_path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 1024, 0).decode("utf-8", "replace").strip() or "another process"
            raise DatabaseInUseError(
                f"the emulated Snowflake in {db_path}/ is in use by {holder}; DuckDB lets one process open it: "
                "stop that one first (Ctrl-C), or give this one another --db-path"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} ({owner or _command_line()})".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def _fakesnow_server(
    db_path: Path | None, host: str = "127.0.0.1", port: int | None = None, *, owner: str | None = None
) -> Iterator[int]:
    import fakesnow.server
    from fakesnow.instance import FakeSnow

    _patch_fakesnow_copy_from_literal()
    _patch_fakesnow_conflicts()
    logging.getLogger("fakesnow").setLevel(logging.WARNING)
    logging.getLogger("fakesnow.server").setLevel(logging.WARNING)  # it sets INFO itself: a line per login
    # DuckDB's advice to fakesnow's own code (about an extra copy when it answers a query); nothing to act on.
    warnings.filterwarnings("ignore", message="Arrow output on a DB-API result", category=UserWarning)
    with contextlib.ExitStack() as held:
        if db_path is not None:
            held.enter_context(hold_database(db_path, owner))
        instance = FakeSnow(db_path=str(db_path)) if db_path is not None else FakeSnow()
        # the module-wide instance is this stack's while it runs (the lock model's app logs in through it)
        previous, fakesnow.server.shared_fs = fakesnow.server.shared_fs, instance
        own = _logging_in_to(instance)
        app = own if host.startswith("127.") else _put_over_http(own)
        try:
            with serve_asgi(app, host, port, name="fakesnow-server") as bound:
                yield bound
        finally:
            if fakesnow.server.shared_fs is instance:
                fakesnow.server.shared_fs = previous
            with contextlib.suppress(Exception):
                instance.duck_conn.close()


_LOGIN = threading.Lock()


def _logging_in_to(instance: Any) -> Any:
    """fakesnow's server app, with every login opening its session in ``instance``.

    fakesnow's own login reads the module-wide ``shared_fs``; it is set to ``instance`` for the length of the
    call, under a lock shared by every server of the process (each runs its own event loop on its own thread).
    The request's body is read first, so fakesnow's login runs to its end without waiting for anything: a login
    that would wait is refused rather than holding the lock across a wait."""
    import fakesnow.server as fs
    from starlette.requests import Request
    from starlette.responses import Response

    async def login(request: Request) -> Response:
        await request.body()  # cached on the request: fakesnow's own read below returns at once
        with _LOGIN:
            previous, fs.shared_fs = fs.shared_fs, instance
            try:
                pending = fs.login_request(request)
                try:
                    pending.send(None)
                except StopIteration as done:
                    response: Response = done.value
                    return response
                pending.close()
                raise RuntimeError("fakesnow's login waited for something; the local stack cannot pin its instance")
            finally:
                fs.shared_fs = previous

    return fakesnow_app({"/session/v1/login-request": login})


def fakesnow_app(endpoints: dict[str, Any]) -> Any:
    """fakesnow's server app with the endpoints of some paths replaced (path -> endpoint); the others are its own."""
    import fakesnow.server as fs
    from starlette.applications import Starlette
    from starlette.routing import Route

    routes = [
        Route(r.path, endpoints.get(r.path, r.endpoint), methods=list(r.methods or []))
        for r in fs.routes
        if isinstance(r, Route)
    ]
    return Starlette(routes=routes)


@contextlib.contextmanager
def serve_asgi(app: Any, host: str = "127.0.0.1", port: int | None = None, *, name: str) -> Iterator[int]:
    """Serve an ASGI app with uvicorn on a thread of this process for the duration of the block; yields its port."""
    import uvicorn

    port = _free_port(host, port)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def local_stack(
    db_path: Path | None = None,
    *,
    seed: bool = True,
    host: str = "127.0.0.1",
    aws_port: int | None = None,
    snowflake_port: int | None = None,
    owner: str | None = None,
) -> Iterator[LocalStack]:
    """Start moto + fakesnow on loopback (or on ``host``) for the duration of the block.

    ``db_path``: a folder for fakesnow's DuckDB files (one per database), kept after the run; None = in memory.
    ``host``: the address both servers listen on: loopback, or the gateway of a Docker network this run
    created (``docker_network_gateway``), so that a function in a container can reach them. Ports: free ones
    unless given. ``owner``: how a second process refused the same ``db_path`` names this one
    (``DatabaseInUseError``, raised before either server starts; default: this process's command line).
    """
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(var, None)
    with (
        _fakesnow_server(db_path, host, snowflake_port, owner=owner) as sf_port,
        _moto_server(host, aws_port) as aws_endpoint,
    ):
        stack = LocalStack(
            aws_endpoint=aws_endpoint, snowflake_host=host, snowflake_port=sf_port, snowflake_db_path=db_path
        )
        if seed:
            stack.seed()
            stack.seed_queue()
        yield stack
