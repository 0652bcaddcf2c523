"""The alert report as one self-contained HTML file: a Jinja2 template (autoescaped: every
attacker-controlled string, an ARN, a userAgent, a raw event, is text, never markup) and Plotly
figures, with plotly.js inlined once so the file opens offline and fetches nothing.

Plotly writes its figure data as JSON with ``<`` escaped, and the labels given to it are
HTML-escaped first (Plotly reads a few tags in labels, such as links).
"""

from __future__ import annotations

import html
import json
from collections import Counter
from pathlib import Path
from typing import Any

from loader.report.data import Alert, EntityView, ReportData

TEMPLATE = Path(__file__).with_name("report.html.j2")
SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")
SEVERITY_COLOUR = {
    "critical": "#7f0000", "high": "#d7301f", "medium": "#fc8d59", "low": "#fdcc8a",
    "info": "#9ecae1",
}  # fmt: skip
PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def visible(value: Any) -> Any:
    """Text with its invisible format characters (bidi overrides, zero-width joiners) shown as
    ``[U+202E]``: they can reorder what a reader sees. Markup made here passes unchanged."""
    import unicodedata

    from markupsafe import Markup

    if not isinstance(value, str) or isinstance(value, Markup):
        return value
    if not any(unicodedata.category(c) == "Cf" for c in value):
        return value
    return "".join(f"[U+{ord(c):04X}]" if unicodedata.category(c) == "Cf" else c for c in value)


def _label(text: Any) -> str:
    return html.escape(visible("" if text is None else str(text)))


def _figure_html(figure: Any, name: str) -> str:
    return str(figure.to_html(full_html=False, include_plotlyjs=False, config=PLOT_CONFIG,
                              div_id=name))  # fmt: skip


def alerts_over_time(alerts: list[Alert]) -> Any:
    import plotly.graph_objects as go

    days = sorted({a.event_time.date() for a in alerts if a.event_time})
    figure = go.Figure()
    for severity in reversed(SEVERITY_ORDER):
        counts = Counter(a.event_time.date() for a in alerts
                         if a.event_time and a.severity == severity)  # fmt: skip
        if counts:
            figure.add_bar(x=[d.isoformat() for d in days], y=[counts.get(d, 0) for d in days],
                           name=severity, marker_color=SEVERITY_COLOUR[severity])  # fmt: skip
    figure.update_layout(barmode="stack", title="Alerts per day, by severity", height=320,
                         margin={"l": 40, "r": 10, "t": 40, "b": 40})  # fmt: skip
    return figure


def alerts_per_rule(alerts: list[Alert]) -> Any:
    import plotly.graph_objects as go

    counts = Counter((a.rule, a.severity) for a in alerts)
    rules = sorted({r for r, _ in counts}, key=lambda r: sum(n for (x, _), n in counts.items()
                                                              if x == r))  # fmt: skip
    figure = go.Figure()
    for severity in reversed(SEVERITY_ORDER):
        values = [counts.get((rule, severity), 0) for rule in rules]
        if any(values):
            figure.add_bar(y=[_label(r) for r in rules], x=values, orientation="h",
                           name=severity, marker_color=SEVERITY_COLOUR[severity])  # fmt: skip
    figure.update_layout(barmode="stack", title="Alerts per rule", height=max(240, 28 * len(rules)),
                         margin={"l": 260, "r": 10, "t": 40, "b": 40})  # fmt: skip
    return figure


def entity_timeline(view: EntityView) -> Any:
    import plotly.graph_objects as go

    figure = go.Figure()
    hours = [h for h, _, _ in view.hours]
    figure.add_bar(x=hours, y=[n for _, n, _ in view.hours], name="events", marker_color="#6baed6")
    figure.add_bar(x=hours, y=[e for _, _, e in view.hours], name="errors",
                   marker_color="#de2d26")  # fmt: skip
    times = [a.event_time for a in view.alerts if a.event_time]
    top = max([n for _, n, _ in view.hours] or [1])
    figure.add_scatter(
        x=times, y=[top * 1.05] * len(times), mode="markers", name="alerts",
        marker={"symbol": "triangle-down", "size": 12, "color": "#54278f"},
        text=[_label(f"{a.rule}: {a.value or ''}") for a in view.alerts if a.event_time],
        hoverinfo="text+x",
    )  # fmt: skip
    figure.update_layout(barmode="overlay", height=260, title="Events per hour (errors in red)",
                         margin={"l": 40, "r": 10, "t": 40, "b": 40})  # fmt: skip
    return figure


def _delivery_summary(alerts: list[Alert]) -> list[tuple[str, str, int]]:
    counts = Counter((sink, status) for a in alerts for sink, status in a.deliveries.items())
    return sorted((sink, status, n) for (sink, status), n in counts.items())


def _severity_table(alerts: list[Alert]) -> list[tuple[str, str, int]]:
    counts = Counter((a.rule, a.severity) for a in alerts)
    rank = {s: i for i, s in enumerate(SEVERITY_ORDER)}
    return sorted(((r, s, n) for (r, s), n in counts.items()),
                  key=lambda x: (rank.get(x[1], 9), -x[2], x[0]))  # fmt: skip


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


def render(data: ReportData) -> str:
    """The report's HTML text."""
    import jinja2
    from plotly.offline import get_plotlyjs

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE.parent)),
        autoescape=True, undefined=jinja2.StrictUndefined, finalize=visible,
    )  # fmt: skip
    environment.filters["pretty"] = _pretty
    charts = {}
    if data.alerts:
        charts["over_time"] = _figure_html(alerts_over_time(data.alerts), "alerts-over-time")
        charts["per_rule"] = _figure_html(alerts_per_rule(data.alerts), "alerts-per-rule")
    timelines = {
        view.entity: _figure_html(entity_timeline(view), f"timeline-{n}")
        for n, view in enumerate(data.entities) if view.hours
    }  # fmt: skip
    template = environment.get_template(TEMPLATE.name)
    return template.render(
        data=data, charts=charts, timelines=timelines, plotlyjs=get_plotlyjs(),
        severities=_severity_table(data.alerts), deliveries=_delivery_summary(data.alerts),
    )  # fmt: skip


def write_report(data: ReportData, out: str) -> str:
    text = render(data)
    Path(out).write_text(text, encoding="utf-8")
    return out
