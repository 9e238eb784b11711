"""``make test-snowflake``: the real-account acceptance suite (tests/integration/test_real_snowflake.py) in one command.

Credentials come from the environment, or from a named AWS Secrets Manager secret in the function's own format
(``SNOWFLAKE_TEST_SECRET``, read with the caller's AWS credentials). Without them it says exactly what it needs and
exits 0: a fresh clone's CI has no account. With them it runs the suite and exits with pytest's status.

Never prints a credential: only which variables are set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping

NEEDS = """\
make test-snowflake runs tests/integration/test_real_snowflake.py against a real Snowflake account. It needs:
  SNOWFLAKE_ACCOUNT      the account identifier (orgname-accountname)
  SNOWFLAKE_USER         a user whose default (or SNOWFLAKE_ROLE) role has, on SNOWFLAKE_DATABASE.SNOWFLAKE_SCHEMA,
                         USAGE and CREATE TABLE, CREATE STAGE (docs/deploy.md, section 1: the TUMOUR_LOADER role)
  one of SNOWFLAKE_PASSWORD, SNOWFLAKE_PRIVATE_KEY (PEM text) or SNOWFLAKE_PRIVATE_KEY_PATH (a .p8 file),
                         plus SNOWFLAKE_PRIVATE_KEY_PASSPHRASE for an encrypted key
or, instead of those three, SNOWFLAKE_TEST_SECRET: the name of a Secrets Manager secret holding the function's
  secret JSON (account, user, password or private_key [+ private_key_passphrase]), read with your AWS credentials.
Optional: SNOWFLAKE_DATABASE (default SANDBOX), SNOWFLAKE_SCHEMA (default PUBLIC), SNOWFLAKE_WAREHOUSE (an XSMALL
  warehouse is plenty), SNOWFLAKE_ROLE.
It creates tables named TS_HARDENING_<random>_* in that schema and drops them; one run keeps an XSMALL warehouse
busy for a few minutes: about 0.1 credit (docs/exactly-once.md, The real-account suite).
Nothing was run."""

_FROM_SECRET = {
    "account": "SNOWFLAKE_ACCOUNT",
    "user": "SNOWFLAKE_USER",
    "password": "SNOWFLAKE_PASSWORD",
    "private_key": "SNOWFLAKE_PRIVATE_KEY",
    "private_key_passphrase": "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
}


def credentials(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The SNOWFLAKE_* variables the suite needs, from the environment or the named secret; None if incomplete."""
    found = {name: value for name, value in environ.items() if name.startswith("SNOWFLAKE_") and value}
    secret_name = found.pop("SNOWFLAKE_TEST_SECRET", None)
    if secret_name:
        import boto3

        secret = json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=secret_name)["SecretString"])
        for key, variable in _FROM_SECRET.items():
            if secret.get(key):
                found.setdefault(variable, str(secret[key]))
    key_set = any(found.get(v) for v in ("SNOWFLAKE_PASSWORD", "SNOWFLAKE_PRIVATE_KEY", "SNOWFLAKE_PRIVATE_KEY_PATH"))
    if not (found.get("SNOWFLAKE_ACCOUNT") and found.get("SNOWFLAKE_USER") and key_set):
        return None
    return found


def main(argv: list[str]) -> int:
    found = credentials(os.environ)
    if found is None:
        print(NEEDS)
        return 0
    source = "a secret" if os.environ.get("SNOWFLAKE_TEST_SECRET") else "the environment"
    print(f"real Snowflake suite: credentials from {source}; variables set: {', '.join(sorted(found))}", flush=True)
    suite = "tests/integration/test_real_snowflake.py"
    command = [sys.executable, "-m", "pytest", "-q", "-m", "real_snowflake", suite, *argv]
    return subprocess.call(command, env={**os.environ, **found})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
