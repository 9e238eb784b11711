"""Linters on the template: `sam validate --lint`, and cfn-lint on the SAM-translated template.

cfn-lint 1.54+ no longer expands SAM itself, so linting template.yaml directly misses what the translation
creates (the role, the permissions, the bucket's notification: a circular dependency, a bad !Ref).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.artifact.conftest import make_command
from tools.commands.lint_template import skips
from tools.sam_template import ROOT, TEMPLATE

SAM = ROOT / "build-cache" / "venv-sam" / "bin" / "sam"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"


def cfn_lint(template: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    out = tmp_path / "translated.json"
    out.write_text(json.dumps(template), encoding="utf-8")
    return subprocess.run([str(CFN_LINT), str(out)], capture_output=True, text=True, check=False, cwd=ROOT)


def test_cfn_lint_passes_on_the_translated_template(translated: dict[str, Any], tmp_path: Path) -> None:
    # Given the CloudFormation template SAM would deploy
    # When cfn-lint checks it
    proc = cfn_lint(translated, tmp_path)
    # Then it finds nothing (errors, warnings or informational)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cfn_lint_on_the_translation_catches_the_classic_circular_dependency(
    translated: dict[str, Any], tmp_path: Path
) -> None:
    # Given the translated template with the classic mistake of an S3 -> SQS trigger: the queue policy naming the
    # bucket by reference (the bucket waits for that policy, so the reference closes a loop)
    broken = copy.deepcopy(translated)
    statements = broken["Resources"]["IngestQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    allow = next(s for s in statements if s["Effect"] == "Allow")
    allow["Condition"]["ArnEquals"]["aws:SourceArn"] = {"Fn::GetAtt": ["InputBucket", "Arn"]}
    # When cfn-lint checks it
    proc = cfn_lint(broken, tmp_path)
    # Then it reports the cycle (so the check above would catch one)
    assert proc.returncode != 0
    assert "E3004" in proc.stdout, proc.stdout


def test_sam_validate_lint_passes() -> None:
    # Given the pinned SAM CLI (its own venv, installed by `make sam-cli`; build/requirements-sam.txt)
    subprocess.run(make_command("sam-cli"), cwd=ROOT, check=True, capture_output=True)
    assert SAM.exists()
    # When `sam validate --lint` checks template.yaml
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}
    proc = subprocess.run(
        [str(SAM), "validate", "--lint", "--template-file", str(TEMPLATE)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=env,
    )
    # Then it is valid
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_scanner_check_the_template_skips_has_a_reason(template: dict[str, Any]) -> None:
    # Given the checks template.yaml's Metadata tells checkov and cfn-lint to skip
    found, problems = skips(template)
    # Then there are some (the scanners' noise: SSE-SQS, Lambda DLQ, VPC, ...), and each has its reason
    assert found
    assert problems == []


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ({"checkov": {"skip": [{"id": "CKV_AWS_27"}]}}, "checkov skip CKV_AWS_27 has no comment"),
        ({"checkov": {"skip": [{"id": "CKV_AWS_27", "comment": " "}]}}, "checkov skip CKV_AWS_27 has no comment"),
        ({"cfn-lint": {"config": {"ignore_checks": ["ES6000"]}}}, "cfn-lint ignores ES6000 without a reason"),
        ({"cfn-lint-skip-reasons": {"W1": "why"}}, "gives a reason for W1, which is not ignored"),
    ],
)
def test_a_skip_without_its_reason_is_refused(metadata: dict[str, Any], problem: str) -> None:
    # Given a resource whose Metadata skips a check without saying why
    template = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Metadata": metadata}}}
    # When the skips are read
    _, problems = skips(template)
    # Then the skip is refused, naming the resource and the check
    assert len(problems) == 1
    assert problems[0].startswith("Queue: ") and problem in problems[0], problems


def test_the_template_scanners_find_nothing() -> None:
    # Given the pinned scanners (build-cache/venv-lint, `make lint-venv`)
    # When `make lint-template` runs cfn-lint, the serverless rules and checkov on template.yaml
    proc = subprocess.run(make_command("lint-template"), cwd=ROOT, capture_output=True, text=True, check=False)
    # Then none reports a finding (the skips above excepted)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "checkov: " in proc.stderr and ", 0 failed," in proc.stderr, proc.stderr
