"""The spellings of a missing value in an export, one list for every stage that must recognise them.

R's ``write.csv`` writes ``NA``, Excel ``#N/A``, other tools ``null``, ``-`` or ``?``. Compared after trimming
spaces, ignoring case. ``NaN`` is in the list (a header cell that reads ``NaN`` is a value, not a name), but a
measurement cell ``NaN`` is reported as non-finite, which is what it says.
"""

from __future__ import annotations

MISSING_VALUE_MARKERS = frozenset({"na", "n/a", "nan", "null", "none", "-", "?", "#n/a"})


def is_missing_value_marker(text: str) -> bool:
    return text.strip().lower() in MISSING_VALUE_MARKERS
