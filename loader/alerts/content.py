"""What an alert says, made safe to send.

Event fields are attacker-controlled: anyone who can call an AWS API chooses its userAgent,
and a userName or a request parameter can hold Slack markup, HTML or terminal escapes. Every
text taken from an alert goes through :func:`clean` (no control characters, a size cap with a
visible marker); each sink then escapes for its own format (:func:`slack_escape`,
:func:`html.escape`). Secrets in sink settings (a webhook URL's path) are shown only through
:func:`redact_url`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

TRUNCATED = "…[truncated {n} characters]"
# C0/C1 controls, DEL, and Unicode format characters (bidi overrides, zero-width joiners) that
# can reorder or hide what a reader sees
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: Any, limit: int = 1000, single_line: bool = True) -> str:
    """``text`` as a string without control or format characters, at most ``limit``
    characters (a longer text ends with a marker saying how much was cut)."""
    value = "" if text is None else str(text)
    if single_line:
        value = value.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\t", " ")
    value = _CONTROL.sub("", value)
    value = "".join(c for c in value if unicodedata.category(c) != "Cf")
    return cap(value, limit)


def cap(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    marker = TRUNCATED.format(n=len(value) - limit)
    keep = max(0, limit - len(marker))
    return value[:keep] + TRUNCATED.format(n=len(value) - keep)


def cap_bytes(value: str, limit: int) -> str:
    """``value`` cut to at most ``limit`` UTF-8 bytes, with the marker when cut."""
    data = value.encode("utf-8")
    if len(data) <= limit:
        return value
    marker_room = len(TRUNCATED.format(n=len(data)).encode("utf-8"))
    kept = data[: max(0, limit - marker_room)].decode("utf-8", errors="ignore")
    return kept + TRUNCATED.format(n=len(value) - len(kept))


def slack_escape(text: str) -> str:
    """Slack mrkdwn: ``&``, ``<`` and ``>`` escaped (so no link, mention or ``<!channel>`` can
    be injected), and the formatting characters made inert with a zero-width space."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([*_~`])", "\\1\u200b", text)


def redact_url(url: str) -> str:
    """``https://hooks.slack.com/services/T0/B0/secret`` -> ``https://hooks.slack.com/***``:
    webhook URLs carry their credential in the path or query."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/***"


def details_of(alert: Mapping[str, Any]) -> dict[str, Any]:
    raw = alert.get("details")
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        return {"raw": raw}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def alert_json(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The alert as JSON-ready data: the stored columns, ``details`` parsed."""
    out = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in alert.items()}
    out["details"] = details_of(alert)
    return out


def event_of(alert: Mapping[str, Any]) -> dict[str, Any]:
    details = details_of(alert)
    event = details.get("event", details)
    return event if isinstance(event, dict) else {}


def summary_lines(alert: Mapping[str, Any], limit: int = 300) -> list[tuple[str, str]]:
    """The alert as (label, cleaned text) pairs, in the order the original demo reported: the
    new activity, the current activity, the profile it did not match, their intersection."""
    details = details_of(alert)
    event = event_of(alert)
    lines = [
        ("Rule", f"{alert.get('rule')} ({alert.get('kind')}, severity {alert.get('severity')})"),
        ("Entity", alert.get("entity")),
    ]
    if alert.get("kind") == "profile":
        known = [str(v) for v in details.get("recent_values") or []]
        lines += [
            ("New activity", alert.get("value")),
            ("Profile it did not match", ", ".join(known) or "(nothing known yet)"),
            ("Values known before", details.get("values_before")),
            ("Intersection", ", ".join(v for v in known if v == alert.get("value")) or "none"),
        ]
    if alert.get("kind") == "baseline":  # a bucket against the entity's own history
        baseline = details.get("baseline") or {}
        top = (details.get("top") or {}).get("values") or []
        lines += [
            ("Departure", details.get("summary")),
            ("Bucket", f"{details.get('bucket_start')} .. {details.get('bucket_end')}"),
            ("Baseline", f"median {baseline.get('median')}, p95 {baseline.get('p95')}, "
                         f"max {baseline.get('max')} over {baseline.get('buckets')} buckets"),
            ("Deviation", f"{details.get('deviation')} (alerts above "
                          f"{details.get('deviation_allowed')}; threshold "
                          f"{details.get('threshold')})"),
            ("Most frequent",
             ", ".join(f"{t.get('value')} ({t.get('count')})" for t in top) or None),
            ("Account / source IP", f"{alert.get('account')} / {alert.get('source_ip')}"),
            ("Alert id", alert.get("alert_id")),
        ]  # fmt: skip
        return [(label, clean(value, limit)) for label, value in lines if value is not None]
    if alert.get("kind") == "coverage":  # a log delivery gap: no event, the gap and its reason
        end = details.get("gap_end") or "still silent"
        lines += [
            ("Gap", f"{details.get('gap_start')} .. {end}"),
            ("Why", details.get("reason")),
            ("Account / region", f"{alert.get('account')} / {alert.get('region') or 'all'}"),
            ("Alert id", alert.get("alert_id")),
        ]
        return [(label, clean(value, limit)) for label, value in lines if value is not None]
    activity = ", ".join(
        f"{key}={event[key]}"
        for key in ("eventName", "eventSource", "userAgent", "sourceIPAddress")
        if event.get(key) is not None
    )
    lines += [
        ("Current activity", activity or None),
        ("Event", f"{alert.get('event_id')} at {alert.get('event_time')}"),
        ("Account / region", f"{alert.get('account')} / {alert.get('region')}"),
        ("Source IP", alert.get("source_ip")),
        ("Alert id", alert.get("alert_id")),
        ("Rule author", details.get("author")),
        ("Rule source", details.get("source")),
    ]
    return [(label, clean(value, limit)) for label, value in lines if value is not None]
