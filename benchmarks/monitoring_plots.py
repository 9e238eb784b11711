"""benchmarks/bench_monitoring.py's plots: false-alarm and detection rates by file size, and the weak model's estimate
against the truth, file by file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.monitoring_stats import FALSE_ALARM_GOAL, Estimates

NULL_LABELS = {
    "null_sample": "resampled from the whole sample",
    "null_reference": "resampled from the reference rows",
    "null_shipped": "shipped profile, resampled from the sample",
    "null_independent": "independent draws (smoothed population)",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _errorbar(ax: Any, sizes: list[int], rates: list[dict[str, Any]], label: str, offset: float, **style: Any) -> None:
    x = np.array(sizes) * offset  # a small shift along the log axis keeps the bars apart
    y = np.array([100 * r["rate"] for r in rates])
    low = np.maximum(y - np.array([100 * r["low"] for r in rates]), 0.0)  # >= 0: rounding gives -1e-15
    high = np.maximum(np.array([100 * r["high"] for r in rates]) - y, 0.0)
    ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=label, **style)


def plot_drift(drift: dict[str, dict[Any, dict[str, Any]]], out: Path) -> Path:
    """``drift``: bench_monitoring's (sizes as int, or as text when read back from its JSON)."""
    plt = _pyplot()
    drift = {name: {int(size): r for size, r in by_size.items()} for name, by_size in drift.items()}
    sizes = sorted(next(iter(drift.values())))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    nulls = [n for n in NULL_LABELS if n in drift]
    for i, name in enumerate(nulls):
        offset = 1.0 + 0.06 * (i - (len(nulls) - 1) / 2)
        _errorbar(left, sizes, [drift[name][s]["detected"] for s in sizes], NULL_LABELS[name], offset)
    left.axhline(100 * FALSE_ALARM_GOAL, color="red", linestyle="--", label="goal: at most 1 %")
    left.set(xscale="log", xlabel="rows in the file", ylabel="files with drift detected (%)")
    left.set_title("False alarms: unchanged files (95 % Wilson intervals)")
    worst = max(100 * drift[n][s]["detected"]["rate"] for n in nulls for s in sizes)
    left.set_ylim(-0.1, max(3.0, 1.5 * worst))  # the goal's scale; wider intervals run off the top
    left.legend(fontsize=8)
    for i, (name, colour) in enumerate((("unit_error", "tab:blue"), ("shift", "tab:green"))):
        first = drift[name][sizes[0]]
        offset = 1.0 + 0.05 * (i - 0.5)
        rates = [drift[name][s]["detected"] for s in sizes]
        _errorbar(right, sizes, rates, f"{first['title']}: detected", offset, color=colour)
        right.plot(
            np.array(sizes) * offset,
            [100 * drift[name][s]["target_named"]["rate"] for s in sizes],
            linestyle=":",
            marker="x",
            color=colour,
            label=f"{first['title']}: {first['target']} named",
        )
    right.axhline(90, color="red", linestyle="--", label="goal: unit error >= 90 % at 200 rows")
    right.axvline(200, color="red", linestyle=":", linewidth=0.8)
    right.set(xscale="log", xlabel="rows in the file", ylabel="files (%)", ylim=(-3, 103))
    right.set_title("Detection: altered files")
    right.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_accuracy(weak: Estimates, out: Path) -> Path:
    plt = _pyplot()
    a = {k: np.asarray(v) for k, v in weak.arrays().items()}
    fig, ax = plt.subplots(figsize=(6.4, 6.0))
    for k, name in enumerate(weak.kinds):
        m = a["kind"] == k
        ax.scatter(a["truth"][m], a["estimate"][m], s=6, alpha=0.35, label=name)
    lo = float(min(a["truth"].min(), a["estimate"].min())) - 0.02
    hi = float(max(a["truth"].max(), a["estimate"].max())) + 0.02
    line = np.array([lo, hi])
    ax.plot(line, line, color="black", linewidth=1, label="estimate = truth")
    ax.fill_between(line, line - 0.05, line + 0.05, color="grey", alpha=0.15, label="±0.05 (the MAE goal)")
    error = float(np.abs(a["estimate"] - a["truth"]).mean())
    splits = len(set(weak.split))
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="true accuracy of the file", ylabel="estimated accuracy (no labels)")
    ax.set_title(f"Weak model, 300-row files from half B ({len(a['truth'])} files, {splits} splits): MAE {error:.3f}")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8, loc="upper left", markerscale=2)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
