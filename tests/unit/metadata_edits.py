"""Edits of a metadata.json dict, for tests that build altered copies of the committed metadata."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MetadataEdit = Callable[[dict[str, Any]], None]


def set_field(path: str, value: Any) -> MetadataEdit:
    """An edit that sets the dotted ``path`` (e.g. ``signature.input.shape``, ``features.0.domain``) to ``value``."""

    def edit(meta: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = meta
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[last] = value

    return edit
