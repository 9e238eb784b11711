"""Secrets and patient data stay out of the logs.

Every log record the function emits (its own JSON lines, and snowflake.connector's, botocore's, urllib3's and
Powertools' at DEBUG) is captured while it loads files full of distinctive measurement values, rejects bad rows,
fails unusable files, survives an injected fault, and connects with a distinctive password or private key. No
line may hold the password, the key, or any measurement value. Messages about bad rows name the column and the
line; the value itself goes only to the rejects table. A second test runs the whole integration suite under
the same capture (in a subprocess) and scans what it logged.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hardening.conftest import Warehouse
from tests.hardening.leak_guard import capture_function_logs

ROOT = Path(__file__).resolve().parents[2]
CANARY_PASSWORD = "Pw-LEAK-CANARY-93f1c2e7!"
SECRET_NAME = "hardening/snowflake/leak-canary"


def _value(row: int, column: int) -> str:
    """A measurement no log line could hold by chance: 9 significant digits, unique per cell."""
    return f"{123 + row}.{456789 + 1000 * column + row:07d}"


@pytest.fixture
def canary_file(sample_bytes: bytes) -> tuple[bytes, set[str]]:
    """Good rows of distinctive values, and bad ones: non-numeric, NaN, empty, too few and too many fields, an
    impossible (negative) size; every value is far beyond the model's training range for most features, so every
    row that loads is flagged."""
    header = sample_bytes.decode().splitlines()[0].split(",")
    values: set[str] = set()
    lines = [",".join(header)]
    for r in range(9):
        cells = [f"LEAK-{r:04d}"] + [_value(r, j) for j in range(1, len(header))]
        values.update(cells[1:])
        if r == 1:
            cells[2] = cells[2] + "x"  # non-numeric: the reason must name 'mean texture' and line 3, not the value
        if r == 2:
            cells[5] = "NaN"
        if r == 3:
            cells[7] = ""
        if r == 4:
            cells = cells[:12]
        if r == 5:
            cells = [*cells, _value(r, 99)]
            values.add(_value(r, 99))
        if r == 7:
            cells[3] = "-" + cells[3]  # impossible: a negative perimeter, rejected naming 'mean perimeter' and line 9
        lines.append(",".join(cells))
    return ("\n".join(lines) + "\n").encode(), values


def _scan(lines: list[str], secrets: list[str], values: set[str]) -> list[str]:
    found = []
    number = re.compile(r"(?<![\d.])\d+\.\d+(?![\d])")
    for line in lines:
        for secret in secrets:
            if secret in line:
                found.append(f"secret in: {line[:300]}")
        leaked = set(number.findall(line)) & values
        if leaked:
            found.append(f"values {sorted(leaked)[:3]} in: {line[:300]}")
    return found


@pytest.fixture
def secret(harness: Any) -> Iterator[Callable[[dict[str, str]], None]]:
    """Seed the function's Snowflake secret with the given content (and forget the cached one)."""
    from aws_lambda_powertools.utilities import parameters

    sm = harness.stack.client("secretsmanager")

    def seed(content: dict[str, str]) -> None:
        payload = json.dumps(content)
        try:
            sm.create_secret(Name=SECRET_NAME, SecretString=payload)
        except sm.exceptions.ResourceExistsException:
            sm.put_secret_value(SecretId=SECRET_NAME, SecretString=payload)
        harness.env["SNOWFLAKE_SECRET_NAME"] = SECRET_NAME
        parameters.clear_caches()

    yield seed
    parameters.clear_caches()


def _private_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_no_log_line_holds_a_secret_or_a_measurement(
    harness: Any,
    warehouse: Warehouse,
    secret: Callable[[dict[str, str]], None],
    monkeypatch: pytest.MonkeyPatch,
    canary_file: tuple[bytes, set[str]],
    sample_bytes: bytes,
) -> None:
    from snowflake.connector import errors as sf
    from snowflake.connector.cursor import SnowflakeCursor

    body, values = canary_file
    header = sample_bytes.decode().splitlines()[0]
    # Given a distinctive password in the secret, and files whose every measurement is distinctive
    secret({"user": "fake", "password": CANARY_PASSWORD, "account": "fakesnow"})
    good = harness.put("incoming/leaks/mixed.csv", body)
    no_header = harness.put("incoming/leaks/no-header.csv", b"\n".join(body.splitlines()[1:]) + b"\n")
    junk = harness.put("incoming/leaks/junk.csv", b"\xa7\xb5 junk\n" + b"\n".join(body.splitlines()[1:]) + b"\n")
    gz = harness.put("incoming/leaks/mixed.csv.gz", body, gz=True)
    dupes = harness.put(
        "incoming/leaks/dupes.csv", (header + ",mean radius\n").encode() + b"\n".join(body.splitlines()[1:])
    )
    faulty = harness.put("incoming/leaks/faulty.csv", body.replace(b"LEAK-", b"LEAKF-"))

    with capture_function_logs() as lines:
        # When the function loads, rejects, fails and retries, with every logger at DEBUG
        summaries = [harness.invoke(e) for e in (good, no_header, junk, gz, dupes, good)]
        original = SnowflakeCursor.execute

        def fail_publish(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
            if command.startswith("INSERT INTO") and harness.tables["target"] in command:
                raise sf.OperationalError(msg="injected: connection reset", errno=250003)
            return original(self, command, *args, **kwargs)

        monkeypatch.setattr(SnowflakeCursor, "execute", fail_publish)
        with pytest.raises(Exception, match="Snowflake publish rows failed"):
            harness.invoke(faulty)
        monkeypatch.setattr(SnowflakeCursor, "execute", original)
        summaries.append(harness.invoke(faulty))

    # Then the loads happened (so there was something to leak) and the capture saw the libraries' DEBUG lines
    assert [s["objects"][0]["status"] for s in summaries] == [
        "loaded",
        "failed",
        "failed",
        "loaded",
        "failed",
        "duplicate",
        "loaded",
    ]
    assert any(line.startswith("snowflake.connector") and "DEBUG" in line for line in lines)
    assert any(line.startswith("botocore") and "DEBUG" in line for line in lines)
    # and no line holds the password or any measurement value
    assert _scan(lines, [CANARY_PASSWORD], values) == []
    # and the summaries the handler returns (which Lambda may log) hold none either
    assert _scan([json.dumps(s) for s in summaries], [CANARY_PASSWORD], values) == []
    # and the reasons name the column and the line, while the value is kept only in the rejects table
    rejects = warehouse.query(
        "SELECT SOURCE_LINE, COLUMN_NAME, REASON, RAW_TEXT FROM {rejects} "
        "WHERE SOURCE_KEY = 'incoming/leaks/mixed.csv' ORDER BY SOURCE_LINE"
    )
    assert [(r[0], r[1]) for r in rejects] == [
        (3, "mean texture"),
        (4, "mean smoothness"),
        (5, "mean concavity"),
        (6, None),
        (7, None),
        (9, "mean perimeter"),
    ]
    assert _scan([r[2] for r in rejects], [], values) == []
    assert rejects[-1][2] == "value below the valid minimum 0 in column 'mean perimeter'"
    # and the rows that loaded are flagged: their values are far beyond the training range (so the flagging ran)
    flags = warehouse.query(
        "SELECT OUT_OF_RANGE_FEATURES FROM {target} WHERE SOURCE_KEY = 'incoming/leaks/mixed.csv' ORDER BY SOURCE_LINE"
    )
    assert len(flags) == 3 and all(f[0] and "MEAN_SMOOTHNESS" in f[0] for f in flags)
    assert all(_scan([r[3]], [], values) for r in rejects)  # the raw text keeps the values, for repair
    ledger_reasons = [r[4] or "" for r in warehouse.ledger()]
    assert _scan(ledger_reasons, [CANARY_PASSWORD], values) == []


def test_a_private_key_in_the_secret_never_reaches_the_logs(
    harness: Any, secret: Callable[[dict[str, str]], None], make_csv: Callable[..., bytes]
) -> None:
    # Given key-pair credentials in the secret
    pem = _private_key_pem()
    key_lines = [line for line in pem.splitlines() if not line.startswith("-----")]
    secret({"user": "fake", "account": "fakesnow", "private_key": pem})
    event = harness.put("incoming/leaks/key-pair.csv", make_csv(5))
    # When the function connects with it (fakesnow accepts any key) and loads, with every logger at DEBUG
    with capture_function_logs() as lines:
        outcome: Any
        try:
            outcome = harness.invoke(event)["objects"][0]["status"]
        except Exception as exc:  # a refused key must not leak either
            outcome = exc
    # Then no line holds any line of the key's body (nor the DER bytes' base64, which is the same text)
    assert lines
    assert _scan(lines, key_lines, set()) == [], outcome


# It runs the whole integration suite once more (about 8 min on a quiet 2-core machine, and growing): its limits
# are the suite's, well above the 600 s per-test default, so a slow machine is not mistaken for a leak.
INTEGRATION_SUITE_LIMIT_SECONDS = 2400


@pytest.mark.slow
@pytest.mark.timeout(INTEGRATION_SUITE_LIMIT_SECONDS + 60)
def test_the_integration_suite_logs_no_secret_and_no_measurement(tmp_path: Path, sample_bytes: bytes) -> None:
    # Given the integration suite, run with every handler invocation's logs captured at DEBUG and a distinctive
    # password in the local stack's secret
    out = tmp_path / "integration-logs.txt"
    env = os.environ | {
        "LEAK_GUARD_OUT": str(out),
        "LEAK_GUARD_PASSWORD": CANARY_PASSWORD,
        "SNOWFLAKE_DISABLE_PLATFORM_DETECTION": "true",
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "tests.hardening.leak_guard", "tests/integration"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=INTEGRATION_SUITE_LIMIT_SECONDS,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    lines = out.read_text(encoding="utf-8").splitlines()
    # Then it logged plenty (so the scan means something) and none of it is a secret or a sample measurement
    assert len(lines) > 100
    number = re.compile(r"\d+\.\d+")
    measurements = {v for row in sample_bytes.decode().splitlines()[1:] for v in row.split(",")[1:] if len(v) >= 6}
    assert measurements and all(number.fullmatch(v) for v in measurements)
    assert _scan(lines, [CANARY_PASSWORD], measurements) == []


CELL_CANARY = "Ward-LEAK-5c1e"


@pytest.mark.parametrize("batch_publish", ["true", "false"])
def test_a_value_snowflake_refuses_never_reaches_a_reason_the_response_or_the_logs(
    harness: Any, make_csv: Callable[..., bytes], batch_publish: str
) -> None:
    """Given a target whose WARD column an operator created as a number, and a file whose ward cells hold a
    distinctive text: Snowflake refuses the rows INSERT at publish with a message that quotes the value (fakesnow,
    DuckDB: 'Could not convert string "..." to DECIMAL'; Snowflake: "Numeric value '...' is not recognized")
    When it is delivered with a good file in one SQS batch, every logger at DEBUG
    Then no log line, no part of the response and no ledger reason holds the value; the reason keeps the error's
    code (errno, SQLSTATE)."""
    from tests.sqs_batches import sqs_batch

    harness.invoke(harness.put("incoming/leaks/first.csv", make_csv(3)))
    harness.query("ALTER TABLE {target} ADD COLUMN WARD NUMBER(10,0)")
    good = harness.put("incoming/leaks/good.csv", make_csv(4))
    bad = harness.put(
        "incoming/leaks/ward.csv",
        make_csv(5, lambda lines: [lines[0] + ",ward"] + [f"{line},{CELL_CANARY}" for line in lines[1:]]),
    )
    with capture_function_logs() as lines:
        summary = harness.invoke(sqs_batch([good, bad]), BATCH_PUBLISH=batch_publish)
    refused = next(o for o in summary["objects"] if o["key"] == "incoming/leaks/ward.csv")
    assert refused["reason_code"] == "snowflake_rejected" and "publish rows" in refused["reason"], refused
    assert lines
    assert [line[:300] for line in lines if CELL_CANARY in line] == []
    assert CELL_CANARY not in json.dumps(summary)
    assert not [r for r in harness.query("SELECT REASON FROM {ledger}") if CELL_CANARY in str(r[0])]
