"""Edits for the ``make_csv`` fixture (tests/conftest.py): each takes the file's lines and returns them changed."""

from __future__ import annotations

from collections.abc import Callable


def set_sample_ids(ids: dict[int, str]) -> Callable[[list[str]], list[str]]:
    """Line number (header = 1) -> the SAMPLE_ID written on that line."""

    def edit(lines: list[str]) -> list[str]:
        for line_no, sample_id in ids.items():
            cells = lines[line_no - 1].split(",")
            cells[0] = sample_id
            lines[line_no - 1] = ",".join(cells)
        return lines

    return edit
