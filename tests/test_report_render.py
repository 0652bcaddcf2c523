"""The HTML report without Spark: self-contained (plotly.js inlined, nothing fetched), the plots
and sections present, and attacker-controlled strings inert (escaped text, never markup)."""

from __future__ import annotations

import datetime as dt
import json
import re
from html.parser import HTMLParser

from loader.report.data import Alert, EntityView, ReportData
from loader.report.render import render

HOSTILE_AGENT = '</script><script>alert("ua")</script><img src=x onerror=alert(1)>\u202egnp.exe'
HOSTILE_ARN = 'arn:aws:iam::111122223333:user/<b onmouseover="alert(2)">eve</b>'
T0 = dt.datetime(2024, 3, 31, 2, 0)


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _data() -> ReportData:
    event = {
        "eventName": "ListBuckets",
        "userAgent": HOSTILE_AGENT,
        "userIdentity": {"arn": HOSTILE_ARN},
    }
    alerts = [
        Alert("a1", "new_country_for_principal", "profile", "medium", "e1", T0, HOSTILE_ARN,
              "China", "111122223333", "us-east-1", "175.16.199.21", "new country",
              {"recent_values": ["United States"], "values_before": 1, "event": event},
              deliveries={"slack": "delivered", "sns": "pending"},
              raw_event=json.dumps(event, indent=2)),
        Alert("a2", "root_console_login", "alert", "high", "e2", T0 + dt.timedelta(hours=1),
              HOSTILE_ARN, None, "111122223333", "us-east-1", "171.25.193.25",
              "root_console_login: root", {"event": event}),
        Alert("a3", "log_delivery_gap", "coverage", "medium", None, T0 - dt.timedelta(days=1),
              "111122223333/us-east-1", "2024-03-30 09:00:00", "111122223333", "us-east-1", None,
              "gap", {"reason": "no log file for 5 h"}),
    ]  # fmt: skip
    hours = [(T0 + dt.timedelta(hours=h), 10 + h, h % 2) for h in range(-3, 3)]
    views = [EntityView(HOSTILE_ARN, alerts[:2], hours),
             EntityView("111122223333/us-east-1", alerts[2:])]  # fmt: skip
    return ReportData("security", None, None, T0, alerts, views, ["no view security.profile_state"])


def test_report_is_one_offline_file_with_its_plots_and_sections():
    text = render(_data())
    parser = Elements()
    parser.feed(text)
    # nothing is fetched: no element loads or links anything by URL
    for tag, attrs in parser.tags:
        for name in ("src", "href", "data", "action", "poster"):
            assert not (attrs.get(name) or "").startswith(("http:", "https:", "//")), (tag, attrs)
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert scripts and all("src" not in attrs for attrs in scripts)
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert len(text) > 1_000_000  # plotly.js itself is inside
    # the plots: over time, per rule, the entity's timeline
    for div in ("alerts-over-time", "alerts-per-rule", "timeline-0"):
        assert f'id="{div}"' in text
    assert "Alerts per day, by severity" in text and "Events per hour" in text
    # sections: severities, deliveries, the profile departed from, the coverage reason
    assert "<td>slack</td><td>delivered</td><td>1</td>" in text
    assert "slack: delivered, sns: pending" in text
    assert "United States; 1 value(s) before" in text
    assert "no log file for 5 h" in text
    assert "no view security.profile_state" in text


def test_hostile_strings_are_text_not_markup():
    text = render(_data())
    body = text.split("</head>", 1)[1]
    assert "<script>alert" not in text and "<img src=x" not in body and "<b onmouseover" not in body
    assert "&lt;/script&gt;&lt;script&gt;alert(" in body  # the raw event, escaped
    assert "&lt;b onmouseover=&#34;alert(2)&#34;&gt;eve&lt;/b&gt;" in body  # the entity
    # in the figures' JSON, `<` is written as \u003c and labels were escaped first
    figures = re.findall(r"Plotly\.newPlot\((.*?)\)\s*};?", text, flags=re.S)
    assert figures and not any("<b " in f or "<script" in f for f in figures)
    parser = Elements()
    parser.feed(body)
    assert not any(name.startswith("on") for _, attrs in parser.tags for name in attrs)
    # a bidi override is shown, not obeyed
    assert "\u202e" not in body and "[U+202E]gnp.exe" in body


def test_blind_spots_have_their_section():
    data = _data()
    data.blind = ["Tor exit lists: no list in force for 3 event(s) on 1 day(s): 2024-03-30 (3)"]
    text = render(data)
    assert "<h2>Blind spots</h2>" in text and "on 1 day(s): 2024-03-30 (3)</li>" in text
    assert "<h2>Blind spots</h2>" not in render(_data())


def test_no_alerts_is_a_report_too():
    data = ReportData("security", "2024-03-01", None, T0, [], [], [])
    text = render(data)
    assert "No alerts in this period." in text and "from 2024-03-01" in text
