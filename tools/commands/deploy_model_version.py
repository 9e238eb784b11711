"""`make deploy` / `make deploy-guided`: `sam deploy` with the template's `ModelVersion` set to the model the artifact
ships (`model_version` in model/metadata.json), so that the canary's rollback alarms watch that model's drift and
estimated accuracy (template.yaml, DeploymentPreference; docs/deploy.md, "A canary for every new version").

`sam deploy --parameter-overrides` on the command line replaces the overrides saved in samconfig.toml instead of
adding to them, so the saved ones are passed first and `ModelVersion=<version>` last (SAM applies them in order: the
last value of a key wins). Then it runs the given SAM command (`exec`), after the `--`:

    python -m tools.commands.deploy_model_version -- build-cache/venv-sam/bin/sam deploy [--guided]

`--print` prints the command as JSON instead of running it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

from tools.sam_template import ROOT, TEMPLATE, load_template

METADATA = ROOT / "model" / "metadata.json"
SAMCONFIG = ROOT / "samconfig.toml"
PARAMETER = "ModelVersion"


def model_version(metadata: Path = METADATA) -> str:
    """The model_version of the model the artifact ships, checked against the template's AllowedPattern."""
    version = str(json.loads(metadata.read_text(encoding="utf-8")).get("model_version") or "")
    pattern = load_template(TEMPLATE)["Parameters"][PARAMETER]["AllowedPattern"]
    if not version or not re.fullmatch(pattern, version):
        raise SystemExit(
            f"{metadata}: model_version {version!r} does not fit the template's {PARAMETER} ({pattern}):"
            " re-import the model with a model_version of letters, digits and . _ + : @ / - only"
        )
    return version


def saved_overrides(samconfig: Path = SAMCONFIG, config_env: str = "default") -> list[str]:
    """The parameter_overrides samconfig.toml saves for `sam deploy` (its deploy section, else its global one), as
    SAM's own values (a string of Key=Value pairs, or each item of a list), unparsed: SAM parses them."""
    if not samconfig.exists():
        return []
    config: dict[str, Any] = tomllib.loads(samconfig.read_text(encoding="utf-8")).get(config_env, {})
    for section in ("deploy", "global"):
        saved = config.get(section, {}).get("parameters", {}).get("parameter_overrides")
        if saved:
            return [str(item) for item in saved] if isinstance(saved, list) else [str(saved)]
    return []


def command(sam_command: list[str], version: str, saved: list[str]) -> list[str]:
    return [*sam_command, "--parameter-overrides", *saved, f"{PARAMETER}={version}"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metadata", type=Path, default=METADATA)
    parser.add_argument("--samconfig", type=Path, default=SAMCONFIG)
    parser.add_argument("--print", action="store_true", help="print the command (JSON) instead of running it")
    parser.add_argument("sam_command", nargs=argparse.REMAINDER, help="-- then the SAM command, e.g. sam deploy")
    args = parser.parse_args(argv)
    sam_command = args.sam_command[1:] if args.sam_command[:1] == ["--"] else args.sam_command
    if not sam_command:
        parser.error("no SAM command after --")
    version = model_version(args.metadata)
    full = command(sam_command, version, saved_overrides(args.samconfig))
    if args.print:
        print(json.dumps(full))
        return 0
    print(f"[deploy] {PARAMETER}={version} (model/metadata.json): the rollback alarms watch it", file=sys.stderr)
    os.execvp(full[0], full)


if __name__ == "__main__":
    sys.exit(main())
