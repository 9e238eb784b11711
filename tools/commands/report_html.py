"""The report page: one self-contained HTML file (CSS and SVG inline; no script, nothing fetched).

A header says what was read; then one section per model version, its most recent load first: drift per feature,
estimated accuracy, predicted malignant share (a figure each, over the loads that scored rows) and a table of the
most recent loads, failed ones included.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from tools.commands import report_plots
from tools.commands.report_data import MonitoredLoad, MonitoringRead

RECENT_LOADS = 20
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { margin-bottom: .2em; } h2 { border-bottom: 2px solid #ccc; margin-top: 2em; } h3 { margin-bottom: .3em; }
.read { color: #444; } .read dt { float: left; clear: left; width: 9em; font-weight: 600; }
.read dd { margin-left: 9.5em; }
figure { margin: .5em 0 1.2em; } figure svg { max-width: 100%; height: auto; }
figcaption, .note { color: #555; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: .3em .5em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.drift { color: #c0392b; font-weight: 600; } .failed { color: #8a6d3b; }
"""


@dataclass(frozen=True)
class ReadContext:
    """What the header says besides the rows: where they came from, when, and the filters asked for."""

    source: str  # Connection.described
    generated_at: datetime
    model_version: str | None = None
    last: int | None = None


def render(read: MonitoringRead, context: ReadContext) -> str:
    sections = "\n".join(
        _section(version, [load for load in read.loads if load.model_version == version], read.ledger is not None)
        for version in read.model_versions()
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Model monitoring: {escape(read.table)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>Model monitoring</h1>\n{_header(read, context)}\n{sections}\n</body>\n</html>\n"
    )


def _header(read: MonitoringRead, context: ReadContext) -> str:
    loads = read.loads
    scored = sum(1 for load in loads if load.rows_scored > 0)
    versions = read.model_versions()
    status = f"status from {_code(read.ledger)}" if read.ledger else "no ledger table found: no status shown"
    filters = [f"model version {_code(context.model_version)}"] if context.model_version is not None else []
    filters += [f"the last {context.last} loads"] if context.last is not None else []
    rows = [
        ("Read", f"{_code(read.table)} in {escape(context.source)}; {status}"),
        ("Loads", f"{len(loads)} ({scored} that scored rows, {len(loads) - scored} that scored none)"),
        (f"Model version{'s' if len(versions) > 1 else ''}", ", ".join(_code(v or "(none)") for v in versions)),
        ("Monitored", f"{_when(loads[0].monitored_at)} to {_when(loads[-1].monitored_at)} UTC"),
        ("Only", "; ".join(filters) or "no filter: every load in the table"),
        ("Generated", f"{_when(context.generated_at)} UTC"),
    ]
    items = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    return f'<dl class="read">{items}</dl>'


def _section(version: str, loads: Sequence[MonitoredLoad], with_status: bool) -> str:
    scored = [load for load in loads if load.rows_scored > 0]
    tested = [load for load in scored if load.drift_detected is not None]
    drifted = sum(1 for load in tested if load.drift_detected)
    summary = (
        f"{_count(len(loads), 'load')}: {len(scored)} that scored rows (drift tested on {len(tested)}, found in "
        f"{drifted}), {len(loads) - len(scored)} that scored none."
    )
    parts = [
        f'<section class="model-version">\n<h2>Model version {_code(version or "(none)")}</h2>',
        f"<p>{summary}</p>",
    ]
    if scored:
        parts += [_drift(scored), _accuracy(scored), _share(scored)]
    else:
        parts.append('<p class="note">No load of this model version scored a row: nothing to plot.</p>')
    parts += [_recent(loads, with_status), "</section>"]
    return "\n".join(parts)


def _drift(loads: Sequence[MonitoredLoad]) -> str:
    counts = Counter(feature for load in loads for feature in load.drifted_features)
    named = ", ".join(f"{_code(f)} ({_count(n, 'load')})" for f, n in counts.most_common())
    said = f"Features that drifted: {named}." if counts else "No feature drifted in these loads."
    if not any(load.feature_scores for load in loads):
        return f'<h3>1. Drift per feature</h3>\n<p class="note">Drift was not tested on any of these loads. {said}</p>'
    caption = (
        "Top: each column a load (oldest on the left), each row a feature; the colour is the feature's "
        "Kolmogorov-Smirnov distance from the reference over its threshold: 1 or more is drift (marked x). "
        "Bottom: the load's DRIFT_SCORE, its largest feature score, against the drift line at 1."
    )
    return _figure("1. Drift per feature", "drift", report_plots.drift_figure(loads), f"{caption} {said}")


def _accuracy(loads: Sequence[MonitoredLoad]) -> str:
    if all(load.accuracy is None for load in loads):
        return (
            '<h3>2. Estimated accuracy</h3>\n<p class="note">Not estimated for any of these loads: the model has no '
            "calibration (it was imported without labelled rows).</p>"
        )
    caption = (
        "The accuracy expected from the model's calibrated probabilities (no labels needed), with its 95 % "
        "interval; a gap is a load without an estimate."
    )
    return _figure("2. Estimated accuracy", "accuracy", report_plots.accuracy_figure(loads), caption)


def _share(loads: Sequence[MonitoredLoad]) -> str:
    caption = "The share of each load's rows classified malignant, against the model's share on its reference rows."
    return _figure("3. Predicted malignant share", "share", report_plots.share_figure(loads), caption)


def _figure(title: str, name: str, svg: str, caption: str) -> str:
    return (
        f'<h3>{escape(title)}</h3>\n<figure class="plot" data-plot="{name}">\n{svg}\n'
        f"<figcaption>{caption}</figcaption>\n</figure>"
    )


def _recent(loads: Sequence[MonitoredLoad], with_status: bool) -> str:
    shown = list(reversed(loads))[:RECENT_LOADS]
    heads = ["Monitored at (UTC)", "Key", *(["Status"] if with_status else []), "Rows scored", "Drift"]
    heads += ["Drift score", "Drifted features", "Estimated accuracy [low, high]"]
    head = "".join(f"<th>{h}</th>" for h in heads)
    body = "\n".join(_row(load, with_status) for load in shown)
    more = f" ({len(loads) - len(shown)} older not shown)" if len(loads) > len(shown) else ""
    return (
        f'<h3>4. Most recent loads</h3>\n<p class="note">Newest first{more}.</p>\n'
        f'<table class="recent">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>'
    )


def _row(load: MonitoredLoad, with_status: bool) -> str:
    where = f"s3://{load.bucket}/{load.key} (version {load.version}), load {load.load_id}"
    status = load.status or "?"
    cells = [
        escape(_when(load.monitored_at)),
        f'<span title="{escape(where)}">{escape(load.key)}</span>',
        *([f'<span class="failed">{status}</span>' if status == "FAILED" else escape(status)] if with_status else []),
        f"{load.rows_scored:,}",
        _verdict(load),
        "" if load.drift_score is None else f"{load.drift_score:.2f}",
        escape(", ".join(load.drifted_features)),
        _accuracy_cell(load),
    ]
    numeric = {2 + with_status, 4 + with_status}  # rows scored, drift score
    tds = (f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>" for i, cell in enumerate(cells))
    return f"<tr>{''.join(tds)}</tr>"


def _verdict(load: MonitoredLoad) -> str:
    if load.drift_detected is None:
        return f'<span title="{escape(load.not_tested or "")}">not tested</span>'
    return '<span class="drift">drift</span>' if load.drift_detected else "no drift"


def _accuracy_cell(load: MonitoredLoad) -> str:
    if load.accuracy is None:
        return "" if load.rows_scored == 0 else "not estimated"
    low = "?" if load.accuracy_low is None else f"{load.accuracy_low:.3f}"
    high = "?" if load.accuracy_high is None else f"{load.accuracy_high:.3f}"
    return f"{load.accuracy:.3f} [{low}, {high}]"


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def _code(text: str) -> str:
    return f"<code>{escape(text)}</code>"


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")
