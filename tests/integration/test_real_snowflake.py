"""Opt-in: the same loads against a real Snowflake account (S3 and Secrets Manager stay on moto).

fakesnow swaps write_pandas for a stand-in of its own, accepts SQL that Snowflake rejects, and resolves
concurrent writes the DuckDB way (the second writer fails at once instead of waiting on the lock). Only this
module checks the real write_pandas path (PUT + COPY INTO a temporary table, quoting), the publish transaction,
and the two-deliveries-at-once race under Snowflake's own locking (docs/exactly-once.md).

Run it with, for example:
    SNOWFLAKE_ACCOUNT=xy12345.eu-west-1 SNOWFLAKE_USER=... SNOWFLAKE_PASSWORD=... \
    SNOWFLAKE_DATABASE=SANDBOX SNOWFLAKE_SCHEMA=PUBLIC SNOWFLAKE_WAREHOUSE=COMPUTE_WH \
    .venv/bin/python -m pytest -q -m real_snowflake tests/integration/test_real_snowflake.py
(or SNOWFLAKE_PRIVATE_KEY_PATH=key.p8 instead of the password). It creates three tables named
TS_HARDENING_<random>_* in that schema and drops them afterwards.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

ACCOUNT = os.environ.get("SNOWFLAKE_ACCOUNT")
USER = os.environ.get("SNOWFLAKE_USER")
PASSWORD = os.environ.get("SNOWFLAKE_PASSWORD")
PRIVATE_KEY_PATH = os.environ.get("SNOWFLAKE_PRIVATE_KEY_PATH")
PRIVATE_KEY = os.environ.get("SNOWFLAKE_PRIVATE_KEY") or (
    Path(PRIVATE_KEY_PATH).read_text() if PRIVATE_KEY_PATH and Path(PRIVATE_KEY_PATH).is_file() else None
)
HAVE_CREDENTIALS = bool(ACCOUNT and USER and (PASSWORD or PRIVATE_KEY))

pytestmark = [
    pytest.mark.real_snowflake,
    pytest.mark.skipif(
        not HAVE_CREDENTIALS,
        reason=(
            "needs a real Snowflake account: set SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER and SNOWFLAKE_PASSWORD (or "
            "SNOWFLAKE_PRIVATE_KEY / SNOWFLAKE_PRIVATE_KEY_PATH) to run it. fakesnow (DuckDB) accepts SQL that "
            "Snowflake rejects and resolves concurrent writes differently, so only this test checks PUT/COPY, "
            "quoting and locking against Snowflake itself"
        ),
    ),
]

DATABASE = os.environ.get("SNOWFLAKE_DATABASE", "SANDBOX")
SCHEMA = os.environ.get("SNOWFLAKE_SCHEMA", "PUBLIC")
SECRET_NAME = "hardening/real-snowflake"


class RealSnowflake:
    """The function's environment pointed at the real account, and a connection to read what landed."""

    def __init__(self, stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        suffix = uuid.uuid4().hex[:8].upper()
        self.stack = stack
        self.monkeypatch = monkeypatch
        self.env = {
            k: v
            for k, v in stack.function_env().items()
            if k not in {"SNOWFLAKE_HOST", "SNOWFLAKE_PORT", "SNOWFLAKE_PROTOCOL"}
        } | {
            "SNOWFLAKE_SECRET_NAME": SECRET_NAME,
            "SNOWFLAKE_ACCOUNT": str(ACCOUNT),
            "SNOWFLAKE_DATABASE": DATABASE,
            "SNOWFLAKE_SCHEMA": SCHEMA,
            "SNOWFLAKE_LOGIN_TIMEOUT": "60",
            "TARGET_TABLE": f"TS_HARDENING_{suffix}_SCORES",
            "REJECTS_TABLE": f"TS_HARDENING_{suffix}_REJECTS",
            "LEDGER_TABLE": f"TS_HARDENING_{suffix}_LOADS",
        }
        for var in ("SNOWFLAKE_WAREHOUSE", "SNOWFLAKE_ROLE"):
            if os.environ.get(var):
                self.env[var] = os.environ[var]
            else:
                self.env.pop(var, None)
        credentials: dict[str, str] = {"user": str(USER), "account": str(ACCOUNT)}
        if PRIVATE_KEY:
            credentials["private_key"] = PRIVATE_KEY
            if os.environ.get("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"):
                credentials["private_key_passphrase"] = os.environ["SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"]
        else:
            credentials["password"] = str(PASSWORD)
        stack.seed(secret=None)
        sm = stack.client("secretsmanager")
        try:
            sm.create_secret(Name=SECRET_NAME, SecretString=json.dumps(credentials))
        except sm.exceptions.ResourceExistsException:
            sm.put_secret_value(SecretId=SECRET_NAME, SecretString=json.dumps(credentials))
        self._credentials = credentials
        self._conn: Any = None

    def put(self, key: str, body: bytes) -> dict[str, Any]:
        from tools.emulated.s3_events import upload

        return upload(self.stack, key, body, self.stack.bucket)

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        from aws_lambda_powertools.utilities import parameters

        from handler import app
        from pipeline.settings import get_settings
        from tests.conftest import LambdaContext

        for name, value in self.env.items():
            self.monkeypatch.setenv(name, value)
        for var in ("SNOWFLAKE_WAREHOUSE", "SNOWFLAKE_ROLE", "SNOWFLAKE_HOST", "SNOWFLAKE_PORT", "SNOWFLAKE_PROTOCOL"):
            if var not in self.env:
                self.monkeypatch.delenv(var, raising=False)
        parameters.clear_caches()
        get_settings.cache_clear()
        app.build_pipeline.cache_clear()
        return app.lambda_handler(event, LambdaContext())  # type: ignore[arg-type]

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self._conn is None:
            import snowflake.connector

            from adapters.secrets import parse_credentials

            kwargs = parse_credentials(self._credentials, SECRET_NAME).connect_kwargs()
            extra = {
                k.lower().removeprefix("snowflake_"): self.env[k]
                for k in ("SNOWFLAKE_WAREHOUSE", "SNOWFLAKE_ROLE")
                if k in self.env
            }
            self._conn = snowflake.connector.connect(
                account=ACCOUNT, database=DATABASE, schema=SCHEMA, **extra, **kwargs
            )
        tables = {
            "target": self.env["TARGET_TABLE"],
            "rejects": self.env["REJECTS_TABLE"],
            "ledger": self.env["LEDGER_TABLE"],
        }
        return list(self._conn.cursor().execute(sql.format(**tables)).fetchall())

    def count(self, table: str = "target") -> int:
        return int(self.query(f"SELECT COUNT(*) FROM {{{table}}}")[0][0])

    def drop_tables(self) -> None:
        for table in ("target", "rejects", "ledger"):
            self.query(f"DROP TABLE IF EXISTS {{{table}}}")
        if self._conn is not None:
            self._conn.close()


@pytest.fixture
def real(stack: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[RealSnowflake]:
    account = RealSnowflake(stack, monkeypatch)
    yield account
    account.drop_tables()


def test_real_write_pandas_loads_rejects_and_deduplicates(real: RealSnowflake, make_csv: Callable[..., bytes]) -> None:
    # Given a file with two bad rows (quoting, PUT, COPY and the publish all run for real)
    def spoil(lines: list[str]) -> list[str]:
        for line_no, bad in ((5, "abc"), (10, "NaN")):
            cells = lines[line_no - 1].split(",")
            cells[1] = bad
            lines[line_no - 1] = ",".join(cells)
        return lines

    event = real.put("incoming/real/o'brien file.csv", make_csv(100, spoil))
    # When it is delivered three times
    statuses = [real.invoke(event)["objects"][0]["status"] for _ in range(3)]
    # Then it loads once; the bad rows are in the rejects table with line and column
    assert statuses == ["loaded", "duplicate", "duplicate"]
    assert real.query("SELECT STATUS, ROWS_LOADED, ROWS_REJECTED FROM {ledger}") == [("LOADED", 98, 2)]
    assert real.count("target") == 98
    assert real.query("SELECT SOURCE_LINE, COLUMN_NAME FROM {rejects} ORDER BY SOURCE_LINE") == [
        (5, "mean radius"),
        (10, "mean radius"),
    ]
    assert real.query("SELECT DISTINCT SOURCE_KEY FROM {target}") == [("incoming/real/o'brien file.csv",)]
    assert real.query("SELECT MEAN_RADIUS FROM {target} WHERE SOURCE_LINE = 2") == [(17.99,)]


def test_real_unusable_file_is_recorded_as_failed(real: RealSnowflake) -> None:
    # Given a file that is not CSV / When it is delivered twice
    event = real.put("incoming/real/scan.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    first, again = real.invoke(event), real.invoke(event)
    # Then it is recorded as failed once, with its reason, and not retried
    assert first["objects"][0]["status"] == "failed" and again["objects"][0]["status"] == "duplicate"
    assert real.query("SELECT STATUS, REASON_CODE FROM {ledger}") == [("FAILED", "not_csv")]


@pytest.mark.parametrize("meet_at", [None, "publish"], ids=["free-race", "same-publish"])
def test_real_two_deliveries_at_once_load_once(
    real: RealSnowflake, monkeypatch: pytest.MonkeyPatch, make_csv: Callable[..., bytes], meet_at: str | None
) -> None:
    from pipeline.batch import handle
    from pipeline.errors import RetriableError
    from tests.hardening.test_duplicates import _meet_at, _race, _two_containers

    # Given one file and two containers (two Snowflake sessions) receiving its event at the same moment
    event = real.put(f"incoming/real/race-{meet_at}.csv", make_csv(200))
    pipelines = _two_containers(SimpleNamespace(env=real.env), monkeypatch)
    if meet_at:
        _meet_at(monkeypatch, meet_at, parties=2)
    # When both run: on Snowflake the second publisher waits on the ledger lock, then finds the file LOADED
    outcomes = _race(pipelines, event)
    for outcome in outcomes:
        assert outcome in {"loaded", "duplicate"} or isinstance(outcome, RetriableError), repr(outcome)
    for i, outcome in enumerate(list(outcomes)):
        if isinstance(outcome, RetriableError):
            outcomes.append(handle(event, pipelines[i])["objects"][0]["status"])
    # Then exactly one delivery loaded it, once, and the ledger holds one LOADED row for it
    assert outcomes.count("loaded") == 1, outcomes
    assert real.count("target") == 200
    assert real.query("SELECT STATUS, COUNT(*) FROM {ledger} GROUP BY STATUS") == [("LOADED", 1)]
    for pipeline in pipelines:
        pipeline.warehouse.close()


def test_real_upsert_keeps_the_newer_version_and_rejects_keyless_rows(
    real: RealSnowflake, monkeypatch: pytest.MonkeyPatch, make_csv: Callable[..., bytes]
) -> None:
    """The upsert publish's statements on Snowflake itself: UPDATE of the staging table with a QUALIFY subquery,
    the COALESCE(sequencer, TO_TIMESTAMP_TZ(last-modified)) comparison, DELETE ... USING and the counts."""
    import time

    from handler import app
    from pipeline.ports import ObjectRef

    # Given upsert mode, a versioned bucket, and versions 1 and 2 of one key (version 1 has a keyless row)
    from pipeline.settings import get_settings
    from tests.integration.test_upsert_order import CHANGED_RADIUS, _versions
    from tests.ledger_invariant import assert_ledger_matches_tables

    for name, value in (real.env | {"LOAD_MODE": "upsert", "MERGE_KEYS": "SAMPLE_ID"}).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    app.build_pipeline.cache_clear()
    s3 = real.stack.client("s3")
    bucket = f"versioned-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    body_v1, body_v2 = _versions(make_csv)
    body_v1 = body_v1.replace(b"WDBC-0003,", b",", 1)
    v1 = s3.put_object(Bucket=bucket, Key="incoming/real/upsert.csv", Body=body_v1)["VersionId"]
    time.sleep(1.1)
    v2 = s3.put_object(Bucket=bucket, Key="incoming/real/upsert.csv", Body=body_v2)["VersionId"]
    pipeline = app.build_pipeline()
    # When version 2's event is delivered, then version 1's (a late retry)
    second = pipeline.process(ObjectRef(bucket, "incoming/real/upsert.csv", version_id=v2, sequencer="100"))
    first = pipeline.process(ObjectRef(bucket, "incoming/real/upsert.csv", version_id=v1, sequencer="FF"))
    # Then version 2's rows stand; version 1 loads only samples 1, 2, 4, 5 and rejects the keyless and older rows
    assert (second.rows_loaded, second.rows_rejected) == (10, 0)
    assert (first.rows_loaded, first.rows_rejected) == (4, 6)
    rows = dict(real.query("SELECT SAMPLE_ID, MEAN_RADIUS FROM {target}"))
    assert len(rows) == 14 and all(rows[f"WDBC-{i:04d}"] == CHANGED_RADIUS for i in range(6, 16))
    tables = {"target": "TARGET_TABLE", "rejects": "REJECTS_TABLE", "ledger": "LEDGER_TABLE"}
    assert_ledger_matches_tables(real.query, {name: real.env[var] for name, var in tables.items()})
    pipeline.warehouse.close()


def test_real_keywords_allowed_as_column_names_load_and_reserved_ones_fail_cleanly(
    real: RealSnowflake, make_csv: Callable[..., bytes]
) -> None:
    """Checks the split in pipeline/output.py: ACCOUNT and VIEW (limited only in SHOW commands) are valid column
    names on Snowflake; GROUP and SAMPLE are refused by the function before any SQL."""

    def add(names: list[str]) -> Callable[[list[str]], list[str]]:
        return lambda lines: (
            [lines[0] + "".join(f",{n}" for n in names)] + [line + ",x" * len(names) for line in lines[1:]]
        )

    loaded = real.invoke(real.put("incoming/real/keywords.csv", make_csv(3, add(["account", "view"]))))
    assert loaded["rows_loaded"] == 3
    assert real.query("SELECT COUNT(ACCOUNT), COUNT(VIEW) FROM {target}") == [(3, 3)]
    for word in ("group", "sample"):
        refused = real.invoke(real.put(f"incoming/real/{word}.csv", make_csv(3, add([word]))))
        assert refused["objects"][0]["reason_code"] == "bad_column_name"


def test_real_two_sessions_adding_one_column_at_once_both_succeed(
    real: RealSnowflake, monkeypatch: pytest.MonkeyPatch, make_csv: Callable[..., bytes]
) -> None:
    """The ALTER race of tests/hardening/test_ddl_races.py under Snowflake's own DDL locking."""
    from pipeline.batch import handle
    from tests.hardening.test_ddl_races import AtOnce, _in_parallel
    from tests.hardening.test_duplicates import _two_containers

    pipelines = _two_containers(SimpleNamespace(env=real.env), monkeypatch)
    assert handle(real.put("incoming/real/ddl-first.csv", make_csv(3)), pipelines[0])["rows_loaded"] == 3

    def with_clinic(lines: list[str]) -> list[str]:
        return [lines[0] + ",clinic"] + [line + ",north" for line in lines[1:]]

    events = [real.put(f"incoming/real/ddl-{i}.csv", make_csv(10, with_clinic)) for i in range(2)]
    at_once = AtOnce(monkeypatch, rf"^ALTER TABLE \S+\.{real.env['TARGET_TABLE']}\b.*\bCLINIC\b")
    outcomes = _in_parallel([lambda i=i: handle(events[i], pipelines[i]) for i in range(2)])
    at_once.armed = False
    for i, outcome in enumerate(outcomes):
        if outcome is not None:
            handle(events[i], pipelines[i])
    assert real.query("SELECT COUNT(*), COUNT(CLINIC) FROM {target}") == [(23, 20)]
    assert real.query("SELECT STATUS, COUNT(*) FROM {ledger} GROUP BY STATUS") == [("LOADED", 3)]
    for pipeline in pipelines:
        pipeline.warehouse.close()
