"""Where a benchmark's figures go: its JSON report, written once the same way by each benchmark."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_report(out: Path, report: dict[str, Any]) -> None:
    """Write ``report`` as indented JSON to ``out`` (its folder created; non-JSON values as text) and say so."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    print(f"wrote {out}")


def verdict(ok: bool) -> str:
    """A goal's line in a benchmark's output: PASS or FAIL."""
    return "PASS" if ok else "FAIL"
