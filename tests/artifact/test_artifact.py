"""The built artifact fits Lambda: size, glibc, contents, and bytecode for every module it imports."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.commands.artifact_checks import (
    LAMBDA_UNZIPPED_LIMIT,
    MAX_VERSIONS,
    SIZE_GOAL,
    artifact_bytes,
    shared_libraries,
    too_new,
    version_needs,
)

pytestmark = pytest.mark.slow


def test_unzipped_size_is_below_lambdas_limit(artifact: Path) -> None:
    # Given the built artifact
    # When its unzipped size is summed as Lambda does
    size = artifact_bytes(artifact)
    # Then Lambda accepts it
    assert size < LAMBDA_UNZIPPED_LIMIT, f"{size:,} bytes unzipped; Lambda refuses {LAMBDA_UNZIPPED_LIMIT:,} or more"


def test_unzipped_size_meets_the_budget(artifact: Path) -> None:
    # The 210 MB goal leaves room for growth under the hard limit; a dependency bump that breaks it should be
    # a decision (trim more in build/build_artifact.py, or raise SIZE_GOAL), not an accident.
    size = artifact_bytes(artifact)
    assert size <= SIZE_GOAL, f"{size:,} bytes unzipped, over the {SIZE_GOAL:,} byte budget"


def test_no_shared_library_needs_a_newer_glibc_or_libstdcxx_than_amazon_linux_2023(artifact: Path) -> None:
    # Given every ELF shared library in the artifact
    libraries = shared_libraries(artifact)
    assert libraries, "no shared libraries found: is this the right directory?"
    # When their version needs (.gnu.version_r) are read
    needs = version_needs(artifact)
    # Then none needs a symbol version newer than Amazon Linux 2023 provides
    limits = {family: ".".join(map(str, v)) for family, v in MAX_VERSIONS.items()}
    assert not [f"{n.library}: {n.label}" for n in too_new(needs)], f"limits: {limits}"


@pytest.mark.parametrize("package", ["boto3", "botocore", "s3transfer"])
def test_runtime_provided_packages_are_not_shipped(artifact: Path, package: str) -> None:
    assert not (artifact / package).exists(), f"{package} is provided by the python3.13 runtime"


@pytest.mark.parametrize(
    "path",
    ["tensorflow", "tensorflow_cpu", "keras", "sklearn", "scikit_learn", "model/saved_model", "model/train.py"],
)
def test_training_stack_is_not_shipped(artifact: Path, path: str) -> None:
    assert not (artifact / path).exists()


@pytest.mark.parametrize(
    "path",
    ["handler/app.py", "scoring", "pipeline", "adapters", "model/model.tflite", "model/metadata.json"],
)
def test_function_code_and_model_are_shipped(artifact: Path, path: str) -> None:
    assert (artifact / path).exists()


def test_function_code_is_precompiled_with_unchecked_hash(artifact: Path) -> None:
    # Given the handler module's bytecode
    pyc = artifact / "handler" / "__pycache__" / "app.cpython-313.pyc"
    assert pyc.is_file(), "the function's code must be precompiled (/var/task is read-only)"
    # Then it is valid whatever the file's mtime after zip/unzip (PEP 552 flags: hash-based, unchecked)
    flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
    assert flags == 0b01, f"pyc flags {flags:#b}: expected unchecked-hash (0b01)"
