"""The report's figures, drawn with matplotlib (no pyplot, no display) and returned as inline ``<svg>`` elements.

Every figure has the same x axis: the loads that scored rows, oldest on the left, so a column of the drift map, a
point of the accuracy line and a point of the malignant share are the same load.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib.axes import Axes
from matplotlib.colors import Colormap, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.typing import RcKeyType

from tools.commands.report_data import MonitoredLoad

WIDTH_INCHES = 10.0
MAX_TICKS = 12
MAX_MARKED_CELLS = 2_500  # cells of the drift map marked with an x when they drifted (beyond: colour only)
DRIFTED, STEADY, BAND = "#c0392b", "#2c6fbb", "#9ecae1"
STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def drift_figure(loads: Sequence[MonitoredLoad]) -> str:
    """Per feature and load, the feature's score (KS distance / threshold; >= 1 is drift), and each load's
    DRIFT_SCORE (its largest feature score) under it against the drift line at 1."""
    features = sorted({name for load in loads for name in load.feature_scores})
    scores = np.array([[load.feature_scores.get(f, math.nan) for load in loads] for f in features], dtype=float)
    with rc_context(STYLE):
        height = 1.2 + 0.17 * max(len(features), 1)
        fig = Figure(figsize=(WIDTH_INCHES, height + 2.0), layout="constrained")
        heat, line = fig.subplots(2, 1, sharex=True, height_ratios=[height, 2.0])
        top = max(2.0, float(np.nanmax(scores)) if np.isfinite(scores).any() else 2.0)
        norm = TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=min(top, 4.0))
        cmap = _cmap()
        image = heat.imshow(np.ma.masked_invalid(scores), aspect="auto", cmap=cmap, norm=norm, interpolation="none")
        heat.set_yticks(range(len(features)), features, fontsize=7)
        if len(features) * len(loads) <= MAX_MARKED_CELLS:
            rows, cols = np.nonzero(np.nan_to_num(scores) >= 1.0)
            heat.scatter(cols, rows, marker="x", s=14, color="black", linewidths=0.8)
        heat.set_title("feature score by load (KS distance / threshold; x: 1 or more, drift; grey: not tested)")
        bar = fig.colorbar(image, ax=heat, shrink=0.8, pad=0.01, extend="max" if top > 4.0 else "neither")
        bar.ax.axhline(1.0, color="black", linewidth=1.2)
        bar.set_label("score (drift at 1)")
        values = np.array([_nan(load.drift_score) for load in loads])
        x = np.arange(len(loads))
        line.plot(x, values, color="#555555", linewidth=0.8, zorder=1)
        drifted = np.nan_to_num(values) >= 1.0
        line.scatter(x[~drifted], values[~drifted], s=16, color=STEADY, label="no drift", zorder=2)
        line.scatter(x[drifted], values[drifted], s=22, color=DRIFTED, label="drift", zorder=3)
        line.axhline(1.0, color=DRIFTED, linestyle="--", linewidth=1, label="drift line (1)")
        line.set_ylim(bottom=0)
        line.set_ylabel("DRIFT_SCORE")
        line.legend(loc="upper left", fontsize=7, frameon=False, ncols=3)
        _time_axis(line, loads)
        return _svg(fig)


def accuracy_figure(loads: Sequence[MonitoredLoad]) -> str:
    """The estimated accuracy of each load with its 95 % interval (a band); gaps where none was estimated."""
    x = np.arange(len(loads))
    estimate = np.array([_nan(load.accuracy) for load in loads])
    low = np.array([_nan(load.accuracy_low) for load in loads])
    high = np.array([_nan(load.accuracy_high) for load in loads])
    with rc_context(STYLE):
        fig = Figure(figsize=(WIDTH_INCHES, 3.0), layout="constrained")
        ax = fig.subplots()
        ax.fill_between(x, low, high, color=BAND, alpha=0.6, linewidth=0, label="95 % interval")
        ax.vlines(x, low, high, color=BAND, linewidth=2)  # a lone load's interval, which a band cannot show
        ax.plot(x, estimate, color=STEADY, marker="o", markersize=3.5, linewidth=1.2, label="estimated accuracy")
        lowest = np.nanmin(np.concatenate([low, estimate]))
        ax.set_ylim(max(0.0, math.floor(lowest * 20) / 20 - 0.05), 1.0)
        ax.set_ylabel("estimated accuracy")
        ax.legend(loc="lower left", fontsize=7, frameon=False, ncols=2)
        _time_axis(ax, loads)
        return _svg(fig)


def share_figure(loads: Sequence[MonitoredLoad]) -> str:
    """Each load's predicted malignant share, against the model's share on its reference rows."""
    x = np.arange(len(loads))
    share = np.array([_nan(load.malignant_share) for load in loads])
    reference = np.array([_nan(load.reference_share) for load in loads])
    with rc_context(STYLE):
        fig = Figure(figsize=(WIDTH_INCHES, 2.8), layout="constrained")
        ax = fig.subplots()
        ax.bar(x, share, width=0.7, color=STEADY, alpha=0.8, label="predicted malignant share")
        ax.step(x, reference, where="mid", color="black", linestyle="--", linewidth=1.2, label="reference share")
        ax.set_ylim(0, max(0.5, float(np.nanmax(np.concatenate([share, reference, [0.0]]))) * 1.15))
        ax.yaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
        ax.set_ylabel("malignant")
        ax.legend(loc="upper left", fontsize=7, frameon=False, ncols=2)
        _time_axis(ax, loads)
        return _svg(fig)


def _cmap() -> Colormap:
    """Blue (far below 1) through pale yellow (at 1) to red (drift); grey for a load drift was not tested on."""
    return colormaps["RdYlBu_r"].with_extremes(bad="#d9d9d9")


def _time_axis(ax: Axes, loads: Sequence[MonitoredLoad]) -> None:
    """Load order on x, labelled with when a load was monitored (at most MAX_TICKS labels)."""
    step = max(1, math.ceil(len(loads) / MAX_TICKS))
    ticks = list(range(0, len(loads), step))
    ax.set_xticks(ticks, [loads[i].monitored_at.strftime("%Y-%m-%d\n%H:%M") for i in ticks], fontsize=7)
    ax.set_xlim(-0.5, len(loads) - 0.5)
    ax.set_xlabel("loads, oldest to newest (monitored at, UTC)")


def _nan(value: float | None) -> float:
    return math.nan if value is None else value


def _svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element to put in HTML: no XML prolog, no DOCTYPE, no metadata block."""
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = out.getvalue()
    text = text[text.index("<svg") :]
    return re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.DOTALL)
