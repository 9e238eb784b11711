from __future__ import annotations

from typing import Any

import pytest

from tools.sam_template import load_template, translate


@pytest.fixture(scope="session")
def translated() -> dict[str, Any]:
    """template.yaml as SAM deploys it: the CloudFormation output of aws-sam-translator."""
    return translate()


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()
