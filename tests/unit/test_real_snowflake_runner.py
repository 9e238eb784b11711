"""``make test-snowflake``'s runner (tests/integration/run_real_snowflake.py) without an account."""

from __future__ import annotations

import pytest

from tests.integration.run_real_snowflake import NEEDS, credentials, main


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_USER": "u"},  # no password or key
        {"SNOWFLAKE_USER": "u", "SNOWFLAKE_PASSWORD": "p"},  # no account
    ],
    ids=["nothing", "no-secret-material", "no-account"],
)
def test_without_complete_credentials_nothing_runs(environ: dict[str, str]) -> None:
    assert credentials(environ) is None


def test_with_a_key_path_the_suite_has_what_it_needs() -> None:
    environ = {"SNOWFLAKE_ACCOUNT": "a", "SNOWFLAKE_USER": "u", "SNOWFLAKE_PRIVATE_KEY_PATH": "k.p8", "HOME": "/x"}
    assert credentials(environ) == {k: v for k, v in environ.items() if k.startswith("SNOWFLAKE_")}


def test_without_credentials_it_says_what_it_needs_and_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("SNOWFLAKE_")]:
        monkeypatch.delenv(name)
    assert main([]) == 0
    printed = capsys.readouterr().out
    assert printed.strip() == NEEDS.strip()
    for needed in ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PASSWORD", "SNOWFLAKE_PRIVATE_KEY_PATH"):
        assert needed in printed
