"""The built artifact, built once per session (CI runs `make test` from a clean clone)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tools.commands.artifact_checks import ARTIFACT, RUNTIME_PROVIDED
from tools.sam_template import ROOT


def make_command(*targets: str) -> list[str]:
    """`make <targets>`, with mk/sam.mk added when the Makefile does not include it (yet)."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    if "mk/sam.mk" in makefile:
        return ["make", "--no-print-directory", *targets]
    return ["make", "--no-print-directory", "-f", "Makefile", "-f", "mk/sam.mk", *targets]


@pytest.fixture(scope="session")
def artifact() -> Path:
    """`make build` (sam build, no Docker; a no-op when the artifact is up to date), the runtime-provided packages
    and awslambdaric (the runtime `make invoke` runs the artifact under)."""
    subprocess.run(make_command("build", "runtime-provided", "runtime-ric"), cwd=ROOT, check=True)
    assert ARTIFACT.is_dir(), f"{ARTIFACT} was not built"
    assert RUNTIME_PROVIDED.is_dir()
    return ARTIFACT
