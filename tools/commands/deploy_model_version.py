"""`make deploy` / `make deploy-guided`: `sam deploy` with two parameters only this machine knows:

* `ModelVersion`: the model the artifact ships (`model_version` in model/metadata.json), so that the canary's rollback
  alarms watch that model's drift and estimated accuracy (template.yaml, DeploymentPreference; docs/deploy.md,
  "A canary for every new version");
* `ConfigurationFingerprint`: a digest of the built artifact, the function's template settings, the saved parameter
  values and the model version. It is the function's AutoPublishCodeSha256, which replaces SAM's own hash of the
  code: a new version is published behind the alias when any of them changes (SAM alone sees neither a parameter's
  new value nor, with it set, the code), and none when nothing did.

`sam deploy --parameter-overrides` on the command line replaces the overrides saved in samconfig.toml instead of
adding to them, so the saved ones are passed first and `ModelVersion=<version>` last (SAM applies them in order: the
last value of a key wins), then these two. Then it runs the given SAM command (`exec`), after the `--`:

    python -m tools.commands.deploy_model_version -- build-cache/venv-sam/bin/sam deploy [--guided]

`--print` prints the command as JSON instead of running it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

from tools.sam_template import FUNCTION_ID, ROOT, TEMPLATE, load_template

METADATA = ROOT / "model" / "metadata.json"
SAMCONFIG = ROOT / "samconfig.toml"
ARTIFACT = ROOT / ".aws-sam" / "build" / FUNCTION_ID
PARAMETER = "ModelVersion"
FINGERPRINT = "ConfigurationFingerprint"


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


def artifact_digest(artifact: Path = ARTIFACT) -> str:
    """SHA-256 over the built artifact's files (relative path and content), in path order."""
    if not artifact.is_dir():
        raise SystemExit(f"{artifact} missing: run `make build`")
    digest = hashlib.sha256()
    for path in sorted(p for p in artifact.rglob("*") if p.is_file()):
        digest.update(path.relative_to(artifact).as_posix().encode() + b"\0")
        with path.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def fingerprint(artifact: str, saved: list[str], version: str, template: Path = TEMPLATE) -> str:
    """What decides the function's published version: its code, its template settings, the parameter values."""
    spec = load_template(template)
    settings = {
        "artifact": artifact,
        "function": spec["Resources"][FUNCTION_ID].get("Properties", {}),
        "defaults": {name: body.get("Default") for name, body in spec.get("Parameters", {}).items()},
        "overrides": saved,
        "model_version": version,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:32]


def command(sam_command: list[str], version: str, saved: list[str], digest: str) -> list[str]:
    return [*sam_command, "--parameter-overrides", *saved, f"{PARAMETER}={version}", f"{FINGERPRINT}={digest}"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metadata", type=Path, default=METADATA)
    parser.add_argument("--samconfig", type=Path, default=SAMCONFIG)
    parser.add_argument("--artifact", type=Path, default=ARTIFACT)
    parser.add_argument("--print", action="store_true", help="print the command (JSON) instead of running it")
    parser.add_argument("sam_command", nargs=argparse.REMAINDER, help="-- then the SAM command, e.g. sam deploy")
    args = parser.parse_args(argv)
    sam_command = args.sam_command[1:] if args.sam_command[:1] == ["--"] else args.sam_command
    if not sam_command:
        parser.error("no SAM command after --")
    version = model_version(args.metadata)
    saved = saved_overrides(args.samconfig)
    digest = fingerprint(artifact_digest(args.artifact), saved, version)
    full = command(sam_command, version, saved, digest)
    if args.print:
        print(json.dumps(full))
        return 0
    print(
        f"[deploy] {PARAMETER}={version} (model/metadata.json): the rollback alarms watch it;"
        f" {FINGERPRINT}={digest}: a new version if the code, the settings or the parameters changed",
        file=sys.stderr,
    )
    os.execvp(full[0], full)


if __name__ == "__main__":
    sys.exit(main())
