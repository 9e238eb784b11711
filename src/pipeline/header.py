"""Which header column is which model feature (HEADER_MATCHING).

``normalised`` (the default): a header name matches a feature when both have the same words, compared
ignoring case. Words are separated by any run of whitespace (spaces, tabs, no-break spaces), ``_``, ``-`` or
``.``, and separators at either end are ignored. So ``Mean Radius``, ``mean_radius``, ``MEAN_RADIUS``,
``mean-radius``, ``mean.radius`` (R's ``write.csv``) and ``mean   radius`` all match ``mean radius``. Nothing
else is folded: ``MeanRadius`` (no separator), ``mean radius (mm)`` or ``mean/radius`` match no feature.

``strict``: a header name matches only the feature of exactly its spelling (the reader has already trimmed
the spaces around it).

Only the matching is decided here; ``CsvChunks`` turns the result into errors and renames each matched column
to its feature's name, so conversion and output see the model's names whatever the file's spelling.
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s_.\-]+")


def header_words(name: str) -> str:
    """``' Mean__Radius '`` -> ``'mean radius'``: the name's words, case-folded, one space apart."""
    return " ".join(word for word in _SEPARATORS.split(name.casefold()) if word)


def _squashed(name: str) -> str:
    """The name with case and every separator gone: ``MeanRadius`` and ``mean radius`` agree here."""
    return _SEPARATORS.sub("", name.casefold())


def match_features(header: list[str], features: list[str], *, strict: bool) -> list[list[str]]:
    """For each header column, in order, the features its name matches: none, one, or (ambiguous) several."""
    key = (lambda name: name) if strict else header_words
    by_key: dict[str, list[str]] = {}
    for feature in features:
        by_key.setdefault(key(feature), []).append(feature)
    return [by_key.get(key(name), []) if name else [] for name in header]


def ambiguity(header: list[str], matches: list[list[str]]) -> str | None:
    """Why the header cannot be matched one column to one feature, or None when it can.

    A column that matches two features, or two columns that match one feature, would be a guess: which column
    holds the measurement? The reason quotes only names that match a feature, never a data cell.
    """
    for name, features in zip(header, matches, strict=True):
        if len(features) > 1:
            listed = ", ".join(repr(f) for f in features)
            return (
                f"header column {name!r} matches more than one model feature ({listed}) once case and separators "
                "are ignored; set HEADER_MATCHING=strict to match names exactly"
            )
    columns: dict[str, list[str]] = {}
    for name, features in zip(header, matches, strict=True):
        for feature in features:
            columns.setdefault(feature, []).append(name)
    for feature, names in columns.items():
        if len(names) > 1:
            listed = " and ".join(repr(n) for n in names)
            return (
                f"header columns {listed} match the same feature {feature!r} (names are compared ignoring case and "
                "separators); remove or rename all but one"
            )
    return None


def missing_reason(header: list[str], matches: list[list[str]], missing: list[str], *, strict: bool) -> str:
    """Which required names are missing, and which header names differ from them only in case or separators.

    Only header names whose letters and digits are a missing feature's are quoted, so never a data cell.
    """
    reason = f"{len(missing)} required column(s) missing from the header: {missing}"
    unmatched = [name for name, features in zip(header, matches, strict=True) if not features and name]
    near = [(name, f) for f in missing for name in unmatched if _squashed(name) == _squashed(f)]
    if not near:
        return reason
    pairs = ", ".join(f"{name!r} for {feature!r}" for name, feature in near)
    how = (
        "HEADER_MATCHING=strict compares names exactly; normalised, the default, ignores case and separators"
        if strict
        else "names match ignoring case and the separators space, '_', '-' and '.', but their words must be apart"
    )
    return f"{reason}; header names that differ from these only in case or separators: {pairs} ({how})"
