"""Opt-in: the same loads against a real Snowflake account (S3 and Secrets Manager stay on moto).

fakesnow swaps write_pandas for a stand-in of its own, accepts SQL that Snowflake rejects, and resolves
concurrent writes the DuckDB way (the second writer fails at once instead of waiting on the lock). Only this
module checks the real write_pandas path (PUT + COPY INTO a temporary table, quoting), the publish transaction,
and the two-deliveries-at-once race under Snowflake's own locking (docs/exactly-once.md).

Run it with ``make test-snowflake`` (tests/integration/run_real_snowflake.py: credentials from the environment
or a named Secrets Manager secret; without them it says what it needs and exits 0), for example:
    SNOWFLAKE_ACCOUNT=myorg-myaccount SNOWFLAKE_USER=... SNOWFLAKE_PASSWORD=... \
    SNOWFLAKE_DATABASE=SANDBOX SNOWFLAKE_SCHEMA=PUBLIC SNOWFLAKE_WAREHOUSE=COMPUTE_WH make test-snowflake
(or SNOWFLAKE_PRIVATE_KEY_PATH=key.p8 instead of the password). The role needs USAGE on the database, schema and
warehouse and CREATE TABLE, CREATE STAGE on the schema (docs/deploy.md's TUMOUR_LOADER). Each test creates three
tables named TS_HARDENING_<random>_* in that schema, checks that the ledger matches the tables after it, and drops
them. A run keeps an XSMALL warehouse busy for a few minutes (about 0.1 credit; AUTO_SUSPEND = 60 adds a minute).

What it proves that fakesnow and the lock model cannot: a cold file (PUT, COPY, quoting); a warm SQS batch of 10
(multi-row VALUES, mixed LOADED/FAILED rows, one shared write_pandas) whose round trips and lock-held statements are
counted from the account's own query history (at most 9, and 3); two deliveries of one file racing, with the lock
wait observed in the query history (TRANSACTION_BLOCKED_TIME) when both meet at the publish, and, unsynchronised,
the race shown by the ledger (the loser's claim before the winner's ledger UPDATE) or a lock wait, else skipped
with the reason (tests/race_evidence.py); a schema-drift race; upsert; rejects; a file Snowflake refuses (recorded
FAILED); and, after each test, ledger = tables.
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

    def invoke(self, event: dict[str, Any], *, warm: bool = False) -> dict[str, Any]:
        """One invocation; ``warm``: in the container (and Snowflake session) of the previous one."""
        from aws_lambda_powertools.utilities import parameters

        from handler import app
        from pipeline.settings import get_settings
        from tests.conftest import LambdaContext

        if warm:
            return app.lambda_handler(event, LambdaContext())  # type: ignore[arg-type]
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

    @property
    def tables(self) -> dict[str, str]:
        return {
            "target": self.env["TARGET_TABLE"],
            "rejects": self.env["REJECTS_TABLE"],
            "ledger": self.env["LEDGER_TABLE"],
        }

    def history(self, session_id: int, since: str) -> list[tuple[str, int]]:
        """The session's statements since ``since`` (a TIMESTAMP_LTZ text) from the account's query history, in
        order: (the statement's text, the milliseconds it waited for a lock)."""
        rows = self.query(
            "SELECT QUERY_TEXT, TRANSACTION_BLOCKED_TIME FROM TABLE(INFORMATION_SCHEMA.QUERY_HISTORY_BY_SESSION("
            f"SESSION_ID => {int(session_id)}, RESULT_LIMIT => 1000)) WHERE START_TIME >= '{since}'::TIMESTAMP_LTZ "
            "ORDER BY START_TIME, END_TIME"
        )
        return [(str(text), int(blocked or 0)) for text, blocked in rows]

    def now(self) -> str:
        return str(self.query("SELECT TO_VARCHAR(CURRENT_TIMESTAMP()::TIMESTAMP_LTZ)")[0][0])

    def drop_tables(self) -> None:
        for table in ("target", "rejects", "ledger"):
            self.query(f"DROP TABLE IF EXISTS {{{table}}}")
        if self._conn is not None:
            self._conn.close()


@pytest.fixture
def real(stack: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[RealSnowflake]:
    from tests.ledger_invariant import assert_ledger_matches_tables

    account = RealSnowflake(stack, monkeypatch)
    try:
        yield account
        assert_ledger_matches_tables(account.query, account.tables)  # after every test: ledger = tables
    finally:
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
    assert real.query("SELECT STATUS, REASON_CODE FROM {ledger} WHERE STATUS <> 'STARTED'") == [("FAILED", "not_csv")]


@pytest.mark.parametrize("meet_at", [None, "publish"], ids=["free-race", "same-publish"])
def test_real_two_deliveries_at_once_load_once(
    real: RealSnowflake, monkeypatch: pytest.MonkeyPatch, make_csv: Callable[..., bytes], meet_at: str | None
) -> None:
    from pipeline.batch import handle
    from pipeline.errors import RetriableError
    from tests.hardening.test_duplicates import _meet_at, _race, _two_containers
    from tests.race_evidence import not_raced, race_evidence

    # Given one file and two containers (two Snowflake sessions) receiving its event at the same moment
    event = real.put(f"incoming/real/race-{meet_at}.csv", make_csv(200))
    pipelines = _two_containers(SimpleNamespace(env=real.env), monkeypatch, login_timeout="60")
    since = real.now()
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
    # (the loser's STARTED row is the record of its attempt: it survives when the race really interleaved)
    ledger = real.query("SELECT STATUS, STARTED_AT, FINISHED_AT FROM {ledger} ORDER BY STARTED_AT, STATUS")
    assert [row[0] for row in ledger if row[0] != "STARTED"] == ["LOADED"], ledger
    # Snowflake's own record of both sessions' ledger statements: (text, milliseconds blocked on a lock)
    statements = [
        (text.lstrip().upper(), blocked)
        for pipeline in pipelines
        if pipeline.warehouse._conn is not None
        for text, blocked in real.history(pipeline.warehouse._conn.session_id, since)
        if real.tables["ledger"] in text.upper()
    ]
    for pipeline in pipelines:
        pipeline.warehouse.close()
    lock_waits = [blocked for text, blocked in statements if text.startswith("UPDATE") and "LOCK_TOKEN" in text]
    waits = [blocked for _, blocked in statements]
    if meet_at == "publish":
        # And the two publishes met at the ledger's lock: one of them waited for it
        assert len(lock_waits) >= 2 and max(lock_waits) > 0, statements
    else:
        # And the deliveries really raced (the loser's claim before the winner's publish, or a lock wait): a run
        # whose deliveries happened to go one after the other proved only the claim's duplicate check, and says so
        evidence = race_evidence(ledger, waits)
        if evidence is None:
            pytest.skip(f"free-race did not exercise the race, run it again: {not_raced(ledger, waits)}")
        print(f"free-race: {evidence}; {len(lock_waits)} of the deliveries' publishes took the ledger lock")


def test_real_warm_sqs_batch_of_ten_costs_nine_round_trips_three_under_the_lock(
    real: RealSnowflake, make_csv: Callable[..., bytes]
) -> None:
    """Counted from the account's query history: the multi-row VALUES lists, mixed LOADED/FAILED ledger rows and
    one shared write_pandas of a whole batch, on Snowflake itself."""
    from handler import app
    from tests.sqs_batches import sqs_batch

    # Given a warm container (one file loaded), and nine small files and one that is not CSV
    assert real.invoke(real.put("incoming/real/batch-warm.csv", make_csv(20)))["rows_loaded"] == 20
    events = [real.put(f"incoming/real/batch-{i}.csv", make_csv(20 + i)) for i in range(9)]
    events.append(real.put("incoming/real/batch-scan.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"))
    since = real.now()
    # When the ten arrive in one SQS batch
    summary = real.invoke(sqs_batch(events), warm=True)
    # Then nine load and one is recorded FAILED, in one transaction
    assert [o["status"] for o in summary["objects"]] == ["loaded"] * 9 + ["failed"]
    assert real.query("SELECT STATUS, COUNT(*) FROM {ledger} WHERE STATUS <> 'STARTED' GROUP BY STATUS ORDER BY 1") == [
        ("FAILED", 1),
        ("LOADED", 10),
    ]
    # And the account's query history shows at most 9 statements, 3 of them from the ledger lock to COMMIT
    session = app.build_pipeline().warehouse._conn.session_id
    texts = [text.lstrip().upper() for text, _ in real.history(session, since)]
    assert len(texts) <= 9, texts
    locked = next(i for i, text in enumerate(texts) if text.startswith("UPDATE") and "LOCK_TOKEN" in text)
    committed = next(i for i, text in enumerate(texts) if i > locked and text.startswith("COMMIT"))
    assert committed - locked + 1 <= 3, texts[locked : committed + 1]
    app.build_pipeline().warehouse.close()


def test_real_refused_file_is_recorded_failed_and_redelivery_is_a_duplicate(
    real: RealSnowflake, make_csv: Callable[..., bytes]
) -> None:
    """A file whose values Snowflake itself refuses (not the function's checks): recorded FAILED, never retried."""
    # Given the target, with a CLINIC column an administrator made a number
    assert real.invoke(real.put("incoming/real/refused-first.csv", make_csv(3)))["rows_loaded"] == 3
    real.query("ALTER TABLE {target} ADD COLUMN CLINIC NUMBER(10,0)")

    def with_clinic(lines: list[str]) -> list[str]:
        return [lines[0] + ",clinic"] + [line + ",north" for line in lines[1:]]

    event = real.put("incoming/real/refused.csv", make_csv(5, with_clinic))
    # When a file brings text in that column, twice
    first, again = real.invoke(event), real.invoke(event)
    # Then Snowflake's refusal is recorded FAILED (no cell value in the reason) and the redelivery is a duplicate
    assert first["objects"][0]["status"] == "failed" and again["objects"][0]["status"] == "duplicate"
    [(code, reason)] = real.query("SELECT REASON_CODE, REASON FROM {ledger} WHERE STATUS = 'FAILED'")
    assert code == "snowflake_rejected" and "north" not in str(reason)
    assert real.count("target") == 3


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

    pipelines = _two_containers(SimpleNamespace(env=real.env), monkeypatch, login_timeout="60")
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
    assert real.query("SELECT STATUS, COUNT(*) FROM {ledger} WHERE STATUS <> 'STARTED' GROUP BY STATUS") == [
        ("LOADED", 3)
    ]
    for pipeline in pipelines:
        pipeline.warehouse.close()
