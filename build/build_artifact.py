"""Build the Lambda artifact (python3.13, x86_64, Amazon Linux 2023) without Docker.

    python build/build_artifact.py --out .aws-sam/build/ScoringFunction
    python build/build_artifact.py --runtime-provided .aws-sam/runtime-provided

What it does, in order (each step is logged with its byte count):

1. Installs the locked runtime wheels (requirements/runtime.txt) for manylinux_2_34 / cp313 with uv, binary
   wheels only, no dependency resolution (the lock is the resolution). boto3, botocore and s3transfer are
   left out: the python3.13 Lambda runtime provides them.
2. Copies the function code (every package in src/) and the model files (model/model.tflite and
   model/metadata.json, nothing else of model/: no SavedModel, no training code), and, when CHALLENGER_MODEL_DIR
   is set, that imported model's two files as challenger/ (a second model scoring in shadow).
3. Trims what the function never loads (TRIM below, each with its reason). Every rule is proven safe by the
   artifact tests, which run the handler from this directory against the local stack.
4. Strips symbol tables from the shared libraries (``strip --strip-unneeded``; the dynamic symbols the
   loader needs stay).
5. Precompiles every module to bytecode with this same Python 3.13 and ``--invalidation-mode
   unchecked-hash``: /var/task is read-only on Lambda, so without .pyc files every cold start recompiles
   every module; and checked (timestamp) .pyc files would be judged stale after zip/unzip changes mtimes.

``--runtime-provided DIR`` instead installs what the Lambda runtime itself provides (boto3, botocore,
s3transfer and their dependencies, at the locked versions) into DIR, for tools/commands/invoke.py to put after the
artifact on sys.path, the way the runtime does.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_LOCK = ROOT / "requirements" / "runtime.txt"
PLATFORM = "x86_64-manylinux_2_34"  # Amazon Linux 2023: glibc 2.34
PYTHON_VERSION = "3.13"
MODEL_FILES = ("model.tflite", "metadata.json")

# Provided by the python3.13 Lambda runtime: never shipped.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer")
# What tools/commands/invoke.py puts after the artifact to emulate the runtime (boto3 and its dependencies).
RUNTIME_PROVIDED_EMULATION = (*RUNTIME_PROVIDED, "jmespath", "python-dateutil", "six", "urllib3")

# (glob relative to the artifact root, reason). Globs match files and directories; `**/` matches any depth.
TRIM: tuple[tuple[str, str], ...] = (
    ("bin", "console scripts from the wheels; Lambda never runs them"),
    ("**/tests", "test suites of numpy, pandas, pyarrow, ..."),
    ("**/*.pyi", "type stubs"),
    ("**/*.h", "C headers"),
    ("**/*.hpp", "C++ headers"),
    ("**/*.pxd", "Cython declarations"),
    ("**/*.pyx", "Cython sources"),
    ("**/*.pxi", "Cython includes"),
    ("**/*.cpp", "C++ sources"),
    ("numpy/_core/include", "numpy C API headers"),
    ("numpy/f2py", "Fortran wrapper generator (build-time tool)"),
    ("numpy/_pyinstaller", "PyInstaller hooks"),
    ("numpy/random/_examples", "C/Cython examples"),
    ("pyarrow/include", "Arrow C++ headers"),
    ("pyarrow/src", "Arrow python-bridge C++ sources"),
    ("pyarrow/libarrow_flight.so*", "Arrow Flight RPC: not used"),
    ("pyarrow/libarrow_python_flight.so*", "Arrow Flight RPC: not used"),
    ("pyarrow/_flight.*.so", "Arrow Flight RPC: not used"),
    ("pyarrow/flight.py", "Arrow Flight RPC: not used"),
    ("pyarrow/libarrow_s3.so*", "pyarrow's own S3 filesystem: the function reads S3 through boto3"),
    ("pyarrow/_s3fs.*.so", "pyarrow's own S3 filesystem (pyarrow.fs tolerates its absence)"),
    ("pyarrow/_gcsfs.*.so", "Google Cloud Storage filesystem (pyarrow.fs tolerates its absence)"),
    ("pyarrow/_azurefs.*.so", "Azure filesystem (pyarrow.fs tolerates its absence)"),
    ("pyarrow/_hdfs.*.so", "HDFS filesystem (pyarrow.fs tolerates its absence)"),
    ("pyarrow/_orc.*.so", "ORC format: not used"),
    ("pyarrow/_dataset_orc.*.so", "ORC format: not used"),
    ("pyarrow/orc.py", "ORC format: not used"),
    ("pyarrow/_pyarrow_cpp_tests.*.so", "pyarrow's C++ test hooks"),
    ("pyarrow/libarrow_python.so", "duplicate of libarrow_python.so.2600 (the SONAME the loader asks for)"),
    ("pyarrow/libarrow_python.so.*.*.*", "duplicate of libarrow_python.so.2600"),
    ("pyarrow/libarrow_python_parquet_encryption.so", "duplicate of ...so.2600"),
    ("pyarrow/libarrow_python_parquet_encryption.so.*.*.*", "duplicate of ...so.2600"),
    ("pandas/io/formats/templates", "Jinja templates for DataFrame.style (HTML/LaTeX export)"),
    ("**/*.c", "C sources"),
    ("**/*.a", "static libraries (numpy's libnpymath.a, libnpyrandom.a): for building extensions"),
    ("**/*.dist-info/RECORD", "pip's uninstall list"),
    ("numpy/_core/_simd.*.so", "numpy's SIMD test module"),
    ("numpy/_core/_*_tests.*.so", "numpy's C test modules"),
    ("snowflake/connector/nanoarrow_cpp", "C/C++ sources of the connector's Arrow iterator (compiled into its .so)"),
    ("snowflake/connector/aio", "the asyncio connector: the function uses the synchronous one"),
    ("aws_lambda_powertools/event_handler/openapi/swagger_ui", "Swagger UI assets (API Gateway resolvers only)"),
    ("google", "protobuf: only ai_edge_litert's CompiledModel/NPU APIs use it"),
    ("protobuf-*.dist-info", "see google"),
    ("ml_dtypes", "only ai_edge_litert's TensorBuffer API uses it"),
    ("ml_dtypes-*.dist-info", "see ml_dtypes"),
    ("flatbuffers", "only ai_edge_litert's schema_py_generated uses it"),
    ("flatbuffers-*.dist-info", "see flatbuffers"),
    ("tqdm", "progress bars: nothing in the function's import graph uses them"),
    ("tqdm-*.dist-info", "see tqdm"),
    ("**/__pycache__", "stale bytecode; recompiled below"),
)


# Shipped with their .py sources (full tracebacks): the function's own code, and Powertools, whose frames
# appear in every logged exception. Everything else ships as bytecode only (see compile_bytecode).
KEEP_SOURCES = ("handler", "scoring", "pipeline", "adapters", "aws_lambda_powertools")

# ai_edge_litert is 58 MB of which the Interpreter API (all scoring/ uses) needs a few files: keep only those.
# The rest is the CompiledModel/NPU/GPU stack: libLiteRt.so (loaded only if present), the WebGPU accelerator,
# vendor compiler plugins, AOT tools, the converter and calibration wrappers, and their protobuf modules.
KEEP_ONLY: dict[str, tuple[str, ...]] = {
    "ai_edge_litert": (
        "__init__.py",
        "interpreter.py",
        "metrics_interface.py",
        "metrics_portable.py",
        "_pywrap_litert_interpreter_wrapper.so",
        "libpywrap_litert_common.so",  # NEEDED by the interpreter wrapper
        "tflite/__init__.py",
    ),
}


def log(message: str) -> None:
    print(f"[build] {message}", file=sys.stderr, flush=True)


def tree_bytes(path: Path) -> int:
    """What Lambda counts: the sum of the (unzipped) file sizes."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def uv_executable() -> str:
    candidates = [ROOT / ".venv" / "bin" / "uv", Path(sys.executable).parent / "uv"]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    found = shutil.which("uv")
    if not found:
        raise SystemExit("uv not found: run `make install` first")
    return found


def locked_requirements(include: tuple[str, ...] | None = None, exclude: tuple[str, ...] = ()) -> list[str]:
    """Pinned `name==version` lines from the runtime lock, filtered by distribution name."""
    lines = []
    for raw in RUNTIME_LOCK.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name = line.split("==", 1)[0].split("[", 1)[0].strip().lower().replace("_", "-")
        if name in exclude or (include is not None and name not in include):
            continue
        lines.append(line)
    return lines


def install_wheels(target: Path, requirements: list[str]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(requirements) + "\n")
        req_file = handle.name
    try:
        subprocess.run(  # noqa: S603 - fixed argv, no shell
            [
                uv_executable(),
                "pip",
                "install",
                "--quiet",
                "--target",
                str(target),
                "--python-platform",
                PLATFORM,
                "--python-version",
                PYTHON_VERSION,
                "--only-binary",
                ":all:",
                "--no-deps",
                "--link-mode",
                "copy",  # never hard-link into uv's cache: strip rewrites files in place
                "-r",
                req_file,
            ],
            check=True,
        )
    finally:
        os.unlink(req_file)


def copy_function_code(out: Path) -> None:
    src = ROOT / "src"
    packages = sorted(p for p in src.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    if not packages:
        raise SystemExit("no packages found in src/")
    for package in packages:
        shutil.copytree(package, out / package.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    log(f"function code: {', '.join(p.name for p in packages)}")
    model_out = out / "model"
    model_out.mkdir()
    for name in MODEL_FILES:
        shutil.copy2(ROOT / "model" / name, model_out / name)
    # A challenger scoring in shadow (src/pipeline/challenger.py), when the build is given one: its two files go
    # to challenger/, where the function finds it.
    if challenger := os.environ.get("CHALLENGER_MODEL_DIR"):
        challenger_out = out / "challenger"
        challenger_out.mkdir()
        for name in MODEL_FILES:
            shutil.copy2(Path(challenger) / name, challenger_out / name)
        log(f"challenger model: {challenger} -> challenger/")


def _matches(rel: str, pattern: str) -> bool:
    if pattern.startswith("**/"):
        tail = pattern[3:]
        return fnmatch.fnmatch(rel, tail) or fnmatch.fnmatch(rel, "*/" + tail)
    return fnmatch.fnmatch(rel, pattern)


def trim(out: Path) -> int:
    removed_total = 0
    protected = {"handler", "scoring", "monitoring", "pipeline", "adapters", "model", "challenger"}  # ours
    for pattern, reason in TRIM:
        size = 0
        count = 0
        for dirpath, dirnames, filenames in os.walk(out):
            base = Path(dirpath)
            for name in list(dirnames):
                path = base / name
                rel = path.relative_to(out).as_posix()
                if rel.split("/", 1)[0] in protected:
                    dirnames.remove(name)
                elif _matches(rel, pattern):
                    dirnames.remove(name)  # do not descend into what is being removed
                    size += tree_bytes(path)
                    count += 1
                    shutil.rmtree(path)
            for name in filenames:
                path = base / name
                rel = path.relative_to(out).as_posix()
                if rel.split("/", 1)[0] not in protected and _matches(rel, pattern):
                    size += path.stat().st_size
                    count += 1
                    path.unlink()
        removed_total += size
        if count:
            log(f"trim {pattern:52s} {count:5d} x -{size / 1e6:6.1f} MB  ({reason})")
    for package, keep in KEEP_ONLY.items():
        size = 0
        count = 0
        for path in sorted((out / package).rglob("*"), reverse=True):  # files before their folders
            rel = path.relative_to(out / package).as_posix()
            if path.is_file() and rel not in keep:
                size += path.stat().st_size
                count += 1
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        missing = [name for name in keep if not (out / package / name).exists()]
        if missing:
            raise SystemExit(f"{package}: expected files missing from the wheel: {missing}")
        removed_total += size
        log(f"trim {package + '/ (all but ' + str(len(keep)) + ' files)':52s} {count:5d} x -{size / 1e6:6.1f} MB")
    return removed_total


def strip_shared_libraries(out: Path) -> int:
    strip = shutil.which("strip")
    if strip is None:
        log("strip not found: shared libraries left unstripped (install binutils)")
        return 0
    before = 0
    libraries = [p for p in out.rglob("*.so*") if p.is_file() and not p.is_symlink() and _is_elf(p)]
    for lib in libraries:
        before += lib.stat().st_size
    subprocess.run([strip, "--strip-unneeded", *map(str, libraries)], check=True)  # noqa: S603
    after = sum(lib.stat().st_size for lib in libraries)
    log(f"strip {len(libraries)} shared libraries: -{(before - after) / 1e6:.1f} MB")
    return before - after


def _is_elf(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"\x7fELF"


def compile_bytecode(out: Path, *, sourceless: bool) -> None:
    """Precompile everything (see the module docstring). ``sourceless``: third-party modules ship as .pyc only."""
    if sys.version_info[:2] != (3, 13):
        raise SystemExit(f"bytecode must be compiled by Python 3.13 (the Lambda runtime), not {sys.version}")
    keep = sorted(p for p in out.iterdir() if p.name in KEEP_SOURCES)
    rest = sorted(p for p in out.iterdir() if p.name not in KEEP_SOURCES and (p.is_dir() or p.suffix == ".py"))
    base = [sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
    # Some wheels carry files that are not Python 3.13 (templates, py2 leftovers); none is imported at run time,
    # so compile failures are reported, not fatal. The artifact tests prove every imported module has bytecode.
    _run_compileall([*base, *map(str, keep)] if sourceless else [*base, str(out)])
    if not sourceless:
        return
    # Legacy layout (module.pyc beside where module.py was), with /var/task paths in tracebacks.
    _run_compileall([*base, "-b", "-s", str(out), "-p", "/var/task", *map(str, rest)])
    removed = 0
    for root in rest:
        for source in [root] if root.is_file() else root.rglob("*.py"):
            if source.with_suffix(".pyc").exists():
                removed += source.stat().st_size
                source.unlink()
    log(f"sourceless third-party modules: -{removed / 1e6:.1f} MB of .py (kept for {', '.join(KEEP_SOURCES)})")


def _run_compileall(command: list[str]) -> None:
    result = subprocess.run(command, check=False, capture_output=True, text=True)  # noqa: S603
    if result.returncode != 0:
        log("compileall could not compile some files (not imported at run time):\n" + result.stdout[-2000:])


def build(out: Path, *, strip: bool, bytecode: bool, sourceless: bool) -> None:
    started = time.monotonic()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    install_wheels(out, locked_requirements(exclude=RUNTIME_PROVIDED))
    installed = tree_bytes(out)
    log(f"installed wheels: {installed / 1e6:.1f} MB (without {', '.join(RUNTIME_PROVIDED)})")
    for name in RUNTIME_PROVIDED:
        if (out / name).exists():
            raise SystemExit(f"{name} must not be in the artifact (the runtime provides it)")
    copy_function_code(out)
    removed = trim(out)
    log(f"trimmed {removed / 1e6:.1f} MB")
    if strip:
        strip_shared_libraries(out)
    if bytecode:
        compile_bytecode(out, sourceless=sourceless)
    total = tree_bytes(out)
    log(f"artifact {out}: {total:,} bytes unzipped ({total / 1e6:.1f} MB) in {time.monotonic() - started:.1f} s")


def build_runtime_provided(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    install_wheels(out, locked_requirements(include=RUNTIME_PROVIDED_EMULATION))
    shutil.rmtree(out / "bin", ignore_errors=True)
    subprocess.run(  # noqa: S603 - fixed argv, no shell
        [sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(out)],
        check=True,
        capture_output=True,
    )
    log(f"runtime-provided emulation in {out}: {', '.join(RUNTIME_PROVIDED_EMULATION)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", type=Path, help="artifact directory (SAM's $ARTIFACTS_DIR)")
    group.add_argument("--runtime-provided", type=Path, help="install the runtime-provided packages here")
    parser.add_argument("--no-strip", action="store_true", help="keep symbol tables in shared libraries")
    parser.add_argument("--no-bytecode", action="store_true", help="ship .py only (to measure cold start)")
    parser.add_argument(
        "--keep-sources", action="store_true", help="ship third-party .py next to their bytecode (about 20 MB more)"
    )
    args = parser.parse_args(argv)
    if args.runtime_provided:
        build_runtime_provided(args.runtime_provided.resolve())
    else:
        build(
            args.out.resolve(),
            strip=not args.no_strip,
            bytecode=not args.no_bytecode,
            sourceless=not args.keep_sources,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
