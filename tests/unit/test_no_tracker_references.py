"""The project speaks of itself only: no file points at an internal tracker ("issue 6", "issue 2, item 6").

Every tracked text file is read (the git index lists them; no network). Commit messages are not files and are
not checked.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRACKER_REFERENCE = re.compile(r"\bissues? ?#?\d+\b", re.IGNORECASE)
# Lock files name package versions, not trackers; binary files are skipped.
SKIPPED_SUFFIXES = {".png", ".tflite", ".gz", ".pb", ".txt"}


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / n for n in names.decode().split("\0") if n and Path(n).suffix not in SKIPPED_SUFFIXES]


def references(text: str) -> list[str]:
    return [m.group(0) for m in TRACKER_REFERENCE.finditer(text)]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("# Performance (issue 6)", ["issue 6"]),
        ('print("Scoring benchmark (Issue 2, item 6)")', ["Issue 2"]),
        ("see issues #14 and #15", ["issues #14"]),
        ("write_pandas issues COPY INTO; an issue with 2 columns", []),
    ],
)
def test_the_pattern_finds_tracker_references_only(text: str, found: list[str]) -> None:
    # Given a line, When it is searched, Then only a tracker reference is found
    assert references(text) == found


def test_no_tracked_file_refers_to_the_tracker() -> None:
    # Given every tracked text file
    files = tracked_text_files()
    assert len(files) > 50, "git ls-files listed too few files: is this a checkout?"

    # When each is searched
    found = {
        str(path.relative_to(ROOT)): hits
        for path in files
        if path.is_file() and path != Path(__file__).resolve()
        if (hits := references(path.read_text(encoding="utf-8", errors="replace")))
    }

    # Then none refers to the tracker
    assert found == {}
