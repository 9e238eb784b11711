"""`make lint-template`: cfn-lint, the serverless rules (cfn-lint-serverless) and checkov on template.yaml, and
on the template SAM deploys (its translation: the role, the event source mapping as CloudFormation has them).

The scanners live in their own venv (build-cache/venv-lint, build/requirements-lint.txt). Each runs offline: in a
network namespace with only loopback where the kernel allows it, and checkov without its downloads
(--skip-download, BC_SKIP_MAPPING). A check the template skips on purpose is listed in its Metadata with its
reason: checkov's `skip` entries carry a `comment`; cfn-lint's `ignore_checks` (which has no reason field) sit
beside `cfn-lint-skip-reasons`. This tool refuses a skip without a reason, and prints each skip it honoured.

Exit status 1 when a scanner reports a finding (or fails to run), or a skip has no reason.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tools.sam_template import ROOT, TEMPLATE, load_template, translate


def skips(template: dict[str, Any]) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(scanner, resource, check id) for every skip in the template's Metadata, and the problems found."""
    found: list[tuple[str, str, str]] = []
    problems: list[str] = []
    scopes = [("<template>", template.get("Metadata", {}))]
    scopes += [(name, body.get("Metadata", {})) for name, body in template.get("Resources", {}).items()]
    for resource, metadata in scopes:
        for entry in metadata.get("checkov", {}).get("skip", []):
            found.append(("checkov", resource, entry.get("id", "?")))
            if not str(entry.get("comment", "")).strip():
                problems.append(f"{resource}: checkov skip {entry.get('id')} has no comment (reason)")
        ignored = metadata.get("cfn-lint", {}).get("config", {}).get("ignore_checks", [])
        reasons = metadata.get("cfn-lint-skip-reasons", {})
        for check in ignored:
            found.append(("cfn-lint", resource, check))
            if not str(reasons.get(check, "")).strip():
                problems.append(f"{resource}: cfn-lint ignores {check} without a reason in cfn-lint-skip-reasons")
        for check in set(reasons) - set(ignored):
            problems.append(f"{resource}: cfn-lint-skip-reasons gives a reason for {check}, which is not ignored")
    return found, problems


def offline_prefix() -> list[str]:
    """`unshare -n` (a network namespace with no interface up: nothing leaves) when permitted, else nothing."""
    unshare = shutil.which("unshare")
    if unshare:
        for flags in (["-n"], ["-rn"]):
            if subprocess.run([unshare, *flags, "true"], capture_output=True).returncode == 0:
                return [unshare, *flags]
    return []


def run(name: str, command: list[str], env: dict[str, str]) -> tuple[int, str, float]:
    started = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    elapsed = time.monotonic() - started
    return proc.returncode, (proc.stdout + proc.stderr).strip(), elapsed


def checkov_failures(output: str) -> tuple[int, int, int, list[str]]:
    """(passed, failed, skipped, failed check ids) from checkov's JSON output."""
    start = output.find("{")
    data = json.loads(output[start:]) if start >= 0 else {}
    results = data.get("results", {})
    summary = data.get("summary", {})
    failed = [f"{c['check_id']} {c['resource']}" for c in results.get("failed_checks", [])]
    return summary.get("passed", 0), summary.get("failed", 0), summary.get("skipped", 0), failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", type=Path, default=ROOT / "build-cache" / "venv-lint")
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    args = parser.parse_args(argv)
    bin_dir = args.venv.resolve() / "bin"
    if not (bin_dir / "checkov").exists():
        raise SystemExit(f"{bin_dir / 'checkov'} missing: run `make lint-venv`")
    template = args.template.resolve()
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update({"BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false", "PYTHONWARNINGS": "ignore"})
    prefix = offline_prefix()
    failures = 0

    found, problems = skips(load_template(template))
    for problem in problems:
        print(f"[lint-template] FAIL {problem}", file=sys.stderr)
    failures += len(problems)
    print(
        f"[lint-template] {len(found)} checks skipped on purpose (reasons in template.yaml's Metadata):",
        file=sys.stderr,
    )
    for scanner, resource, check in found:
        print(f"  {scanner:8} {check:12} {resource}", file=sys.stderr)

    scratch = ROOT / ".local" / "lint"
    scratch.mkdir(parents=True, exist_ok=True)
    translated = Path(tempfile.mkdtemp(dir=scratch)) / "translated.json"  # one per run: runs may overlap
    translated.write_text(json.dumps(translate(template), indent=1), encoding="utf-8")
    cfn_lint = str(bin_dir / "cfn-lint")
    scans = [
        ("cfn-lint", [cfn_lint, str(template)]),
        ("cfn-lint-serverless", [cfn_lint, str(template), "-a", "cfn_lint_serverless.rules"]),
        ("cfn-lint-serverless (translated)", [cfn_lint, str(translated), "-a", "cfn_lint_serverless.rules"]),
    ]
    for name, command in scans:
        code, output, elapsed = run(name, prefix + command, env)
        print(f"[lint-template] {name}: {'clean' if code == 0 else 'FINDINGS'} ({elapsed:.1f} s)", file=sys.stderr)
        if code != 0:
            failures += 1
            print(output, file=sys.stderr)

    for label, path in (("checkov", template), ("checkov (translated)", translated)):
        command = [
            str(bin_dir / "checkov"),
            "-f",
            str(path),
            "--framework",
            "cloudformation",
            "--skip-download",
            "--output",
            "json",
            "--quiet",
        ]
        code, output, elapsed = run(label, prefix + command, env)
        try:
            passed, failed, skipped, failed_ids = checkov_failures(output)
        except (ValueError, KeyError):
            print(f"[lint-template] {label}: no JSON result (exit {code})\n{output[-2000:]}", file=sys.stderr)
            failures += 1
            continue
        print(
            f"[lint-template] {label}: {passed} passed, {failed} failed, {skipped} skipped ({elapsed:.1f} s)",
            file=sys.stderr,
        )
        for failure in failed_ids:
            print(f"  FAIL {failure}", file=sys.stderr)
        failures += failed
    shutil.rmtree(translated.parent, ignore_errors=True)
    print(f"[lint-template] {'clean' if failures == 0 else f'{failures} problem(s)'}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
