"""The report as a person sees it: opened in headless Chromium (Debian's `chromium`), with every
request the page makes routed to a recording proxy. It fetches nothing, logs nothing to the
console, draws its plots, keeps hostile strings inert, and a screenshot is taken. A control
page that does fetch and log proves the recorders would notice."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from loader.report.render import render
from tests.test_report_render import Elements, _data

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="Debian's chromium is not installed (.ci/run installs it)",
)
QUIET = [  # Chromium's own background traffic off: what reaches the proxy is the page's
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-pings", "--disable-default-apps", "--disable-domain-reliability",
    "--metrics-recording-only", "--no-first-run", "--disable-features=OptimizationHints",
]  # fmt: skip


class Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self):  # noqa: N802 - the standard library's name
        Recorder.seen.append(self.path)
        self.send_response(404)
        self.end_headers()

    do_CONNECT = do_POST = do_HEAD = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def proxy():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def open_page(page: Path, proxy: str, *extra: str) -> tuple[str, str]:
    """(DOM after the scripts ran, Chromium's log); every request goes through ``proxy``."""
    assert CHROMIUM, "chromium is not installed: .ci/run installs Debian's chromium"
    Recorder.seen.clear()
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", "--virtual-time-budget=15000", f"--proxy-server={proxy}",
         "--proxy-bypass-list=<-loopback>", *QUIET, *extra, page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return result.stdout, result.stderr


def console(log: str) -> list[str]:
    return [line for line in log.splitlines() if ":CONSOLE" in line]


def foreign(requests: list[str]) -> list[str]:
    """The requests not made by Chromium itself (its clock and update checks)."""
    own = ("google.com", "googleapis.com", "gvt1.com", "gstatic.com")
    hosts = [(urlsplit(r).hostname if "://" in r else r.split(":")[0]) or "" for r in requests]
    return [r for r, host in zip(requests, hosts, strict=True) if not host.endswith(own)]


def test_control_page_is_caught_fetching_and_logging(tmp_path, proxy):
    page = tmp_path / "control.html"
    page.write_text('<html><body><script>console.error("boom")</script>'
                    '<img src="http://example.invalid/x.png"></body></html>')  # fmt: skip
    _, log = open_page(page, proxy, "--dump-dom")
    assert any('"boom"' in line for line in console(log))
    assert "http://example.invalid/x.png" in Recorder.seen


def test_report_opens_offline_draws_its_plots_and_stays_inert(tmp_path, proxy):
    page = tmp_path / "alerts.html"
    page.write_text(render(_data()), encoding="utf-8")
    dom, log = open_page(page, proxy, "--dump-dom")
    assert foreign(Recorder.seen) == []  # nothing left the file
    assert console(log) == []  # no error, no warning, no message at all
    # the plots are drawn: Plotly's SVG layers with bars inside, for each of the three figures
    for figure in ("alerts-over-time", "alerts-per-rule", "timeline-0"):
        start = dom.index(f'id="{figure}"')
        drawn = dom[start : start + 200_000]
        assert 'class="main-svg"' in drawn and 'class="point"' in drawn, figure
    # hostile strings are text: no element or handler came from them
    body = dom.split("<body", 1)[1]
    elements = Elements()
    elements.feed(body)
    assert not [tag for tag, _ in elements.tags if tag in ("img", "b", "iframe", "a")]
    scripts = [attrs for tag, attrs in elements.tags if tag == "script"]
    assert len(scripts) == 3 and not any("src" in attrs for attrs in scripts)  # the figures' own
    assert not [name for _, attrs in elements.tags for name in attrs if name.startswith("on")]
    assert "&lt;b onmouseover=" in body and "[U+202E]gnp.exe" in body  # shown as text
    shot = tmp_path / "report.png"
    open_page(page, proxy, f"--screenshot={shot}", "--window-size=1280,2400")
    assert shot.stat().st_size > 20_000
    assert foreign(Recorder.seen) == []
