"""The region `make deploy-guided` offers (mk/sam.mk's SAM_ENV): the user's, as plain `sam` finds it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# SAM_ENV as the deploy recipes use it, without running SAM: the region SAM would be given.
PRINT_REGION = "print-sam-region: ; @$(SAM_ENV) sh -c 'echo $$AWS_DEFAULT_REGION'"


@pytest.mark.parametrize(
    ("env", "profile_region", "offered"),
    [
        ({}, "eu-west-2", "eu-west-2"),
        ({"AWS_PROFILE": "hospital"}, "eu-central-1", "eu-central-1"),
        ({"AWS_REGION": "ca-central-1"}, "eu-west-2", "ca-central-1"),
        ({"AWS_DEFAULT_REGION": "ap-southeast-2"}, "eu-west-2", "ap-southeast-2"),
        ({}, None, "us-east-1"),
    ],
    ids=["default-profile", "named-profile", "aws-region", "aws-default-region", "nothing-configured"],
)
def test_deploy_offers_the_users_region_not_a_fixed_one(
    tmp_path: Path, env: dict[str, str], profile_region: str | None, offered: str
) -> None:
    # Given an AWS config whose profile names a region (or none), and maybe a region in the environment
    config = tmp_path / "config"
    section = "default" if "AWS_PROFILE" not in env else f"profile {env['AWS_PROFILE']}"
    config.write_text(f"[{section}]\n" + (f"region = {profile_region}\n" if profile_region else ""))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # When make builds the environment its SAM commands (deploy-guided, deploy) run with
    proc = subprocess.run(
        ["make", "-s", "--no-print-directory", "--eval", PRINT_REGION, "print-sam-region"],
        cwd=ROOT,
        env={**clean, "AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # Then SAM is given the region the user configured, as plain `sam deploy --guided` would offer
    assert proc.stdout.strip() == offered
