"""Checks and figures for the built Lambda artifact (and the translated template).

    python -m tools.commands.artifact_checks report               size, glibc/libstdc++ needs, init time +/- bytecode
    python -m tools.commands.artifact_checks translated-template  the SAM-translated CloudFormation template (JSON)

Used by tests/artifact/ and tests/template/ and by `make artifact-report`. Development only.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools.sam_template import FUNCTION_ID, ROOT, load_template

ARTIFACT = ROOT / ".aws-sam" / "build" / FUNCTION_ID
RUNTIME_PROVIDED = ROOT / ".aws-sam" / "runtime-provided"
LAMBDA_UNZIPPED_LIMIT = 262_144_000  # bytes, function and layers together
SIZE_GOAL = 210_000_000
# Amazon Linux 2023 (the python3.13 runtime): glibc 2.34, GCC 11's libstdc++ (GLIBCXX_3.4.29, CXXABI_1.3.13).
MAX_VERSIONS = {"GLIBC": (2, 34), "GLIBCXX": (3, 4, 29), "CXXABI": (1, 3, 13)}
_VERSION_NAME = re.compile(r"Name: (GLIBC|GLIBCXX|CXXABI)_([0-9.]+)\b")


def artifact_bytes(root: Path = ARTIFACT) -> int:
    """What Lambda counts against its limit: the sum of the unzipped file sizes."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def shared_libraries(root: Path = ARTIFACT) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*.so*")):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as handle:
                if handle.read(4) == b"\x7fELF":
                    found.append(path)
    return found


def _parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def needed_versions(library: Path) -> dict[str, tuple[int, ...]]:
    """The newest GLIBC / GLIBCXX / CXXABI symbol version a library needs (from its .gnu.version_r)."""
    readelf = shutil.which("readelf")
    if readelf is None:
        raise RuntimeError("readelf not found: install binutils")
    out = subprocess.run([readelf, "-V", "--wide", str(library)], check=True, capture_output=True, text=True).stdout
    needs_section = out.split("Version needs section", 1)[1] if "Version needs section" in out else ""
    newest: dict[str, tuple[int, ...]] = {}
    for family, version in _VERSION_NAME.findall(needs_section):
        parsed = _parse_version(version)
        if parsed > newest.get(family, ()):
            newest[family] = parsed
    return newest


@dataclass(frozen=True)
class VersionNeed:
    library: str
    family: str
    version: tuple[int, ...]

    @property
    def label(self) -> str:
        return f"{self.family}_{'.'.join(map(str, self.version))}"


def version_needs(root: Path = ARTIFACT) -> list[VersionNeed]:
    needs = []
    for library in shared_libraries(root):
        for family, version in needed_versions(library).items():
            needs.append(VersionNeed(str(library.relative_to(root)), family, version))
    return needs


def too_new(needs: list[VersionNeed]) -> list[VersionNeed]:
    return [n for n in needs if n.version > MAX_VERSIONS[n.family]]


def newest(needs: list[VersionNeed], family: str) -> VersionNeed | None:
    candidates = [n for n in needs if n.family == family]
    return max(candidates, key=lambda n: n.version) if candidates else None


# --- init time -----------------------------------------------------------------------------------------------

_INIT_TIMER = r"""
import json, sys, time
sys.dont_write_bytecode = True  # /var/task is read-only on Lambda
cfg = json.loads(sys.argv[1])
sys.path[0:0] = [cfg["task_root"], cfg["runtime_dir"]]
t0 = time.perf_counter()
import importlib
importlib.import_module(cfg["module"])
print(json.dumps({"init_ms": (time.perf_counter() - t0) * 1000}))
"""


def init_times(artifact: Path, runs: int = 7, runtime_dir: Path = RUNTIME_PROVIDED) -> list[float]:
    """Import the handler module (what Lambda's init phase does) in fresh `python3.13 -I -S` processes."""
    from tools.commands.invoke import lambda_environment, python313
    from tools.sam_template import function_spec

    template = load_template()
    spec = function_spec(
        template,
        parameters={"SnowflakeDatabase": "TUMOURS", "SnowflakeSchema": "SCORING", "SnowflakeAccount": "init-timing"},
    )
    function_env = {
        **spec.environment,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # nothing is contacted at init; if it were, fail fast
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    env = lambda_environment(spec, function_env, artifact, runtime_dir)
    module = spec.handler.rpartition(".")[0]
    cfg = json.dumps({"task_root": str(artifact), "runtime_dir": str(runtime_dir), "module": module})
    times = []
    with tempfile.TemporaryDirectory() as home:
        for _ in range(runs):
            proc = subprocess.run(
                [python313(), "-I", "-S", "-c", _INIT_TIMER, cfg],
                env={**env, "HOME": home},
                cwd=str(artifact),
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            )
            times.append(float(json.loads(proc.stdout.strip().splitlines()[-1])["init_ms"]))
    return times


def build_variant(out: Path, *flags: str) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "build" / "build_artifact.py"), "--out", str(out), *flags],
        check=True,
        cwd=str(ROOT),
    )


def report(runs: int = 7) -> dict[str, object]:
    needs = version_needs(ARTIFACT)
    figures: dict[str, object] = {
        "artifact": str(ARTIFACT.relative_to(ROOT)),
        "unzipped_bytes": artifact_bytes(ARTIFACT),
        "lambda_limit_bytes": LAMBDA_UNZIPPED_LIMIT,
        "shared_libraries": len(shared_libraries(ARTIFACT)),
    }
    for family in MAX_VERSIONS:
        need = newest(needs, family)
        figures[f"newest_{family}"] = f"{need.label} ({need.library})" if need else None
    figures["too_new"] = [f"{n.library}: {n.label}" for n in too_new(needs)]
    with_bytecode = init_times(ARTIFACT, runs)
    figures["init_ms_with_bytecode"] = {"median": statistics.median(with_bytecode), "runs": with_bytecode}
    with tempfile.TemporaryDirectory(prefix="artifact-no-bytecode-") as tmp:
        variant = Path(tmp) / FUNCTION_ID
        build_variant(variant, "--no-bytecode")
        figures["no_bytecode_unzipped_bytes"] = artifact_bytes(variant)
        without = init_times(variant, runs)
        figures["init_ms_without_bytecode"] = {"median": statistics.median(without), "runs": without}
    return figures


def translated_template() -> dict[str, object]:
    from tools.sam_template import translate

    return translate()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["report"]:
        print(json.dumps(report(), indent=2))
        return 0
    if args[:1] == ["translated-template"]:
        print(json.dumps(translated_template(), indent=1))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
