"""How bench_scoring.py and its sweep print rates and labels, and read their command-line values."""

from __future__ import annotations

import argparse


def fmt_rate(rps: float) -> str:
    if rps >= 1e6:
        return f"{rps / 1e6:,.2f} M"
    if rps >= 1e3:
        return f"{rps / 1e3:,.1f} k"
    return f"{rps:,.0f}"


def parse_sizes(text: str) -> list[int]:
    sizes = []
    for part in text.replace("_", "").split(","):
        part = part.strip().lower()
        if not part:
            continue
        mult = 1
        if part[-1] in "km":
            mult = 1000 if part[-1] == "k" else 1_000_000
            part = part[:-1]
        sizes.append(int(float(part) * mult))
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"bad --sizes {text!r}")
    return sizes


def parse_threads(text: str) -> int | None:
    return None if text.lower() in {"none", "default", ""} else int(text)


def threads_label(threads: int | None) -> str:
    return "default" if threads is None else str(threads)


def chunk_label(chunk: int, n: int) -> str:
    return f"whole ({n})" if chunk >= n else str(chunk)
