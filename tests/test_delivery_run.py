"""Delivery from `run`: a webhook that is down, then a restart that delivers what is pending,
recorded per sink in security.alert_deliveries; configured through the config file."""

from __future__ import annotations

import json
import socket

import pytest

from loader.cli import main
from loader.enrichment import SAMPLE_FILES
from loader.sample.generate import SampleSpec, write_sample
from tests.conftest import REPO
from tests.test_delivery import Receiver

pytestmark = pytest.mark.spark
RULES = ["sql/alerts/root_console_login.sql", "sql/alerts/root_account_usage.sql"]


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/secret-token"  # nothing listens there now


def _config(path, url: str, jsonl) -> str:
    path.write_text(
        f"""
[[sinks]]
type = "webhook"
name = "hook"
url_env = "TSA_TEST_HOOK_URL"
min_severity = "medium"

[[sinks]]
type = "jsonl"
path = "{jsonl}"

[delivery]
retries = 2
pause = "0.05s"
dedup_window = "0s"
"""
    )
    return url


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    logs = tmp_path_factory.mktemp("delivery") / "logs"
    return logs, write_sample(str(logs), SampleSpec(events=1500, days=3))


def test_pending_deliveries_survive_a_sink_outage_and_a_restart(
    spark, logs, tmp_path, capsys, monkeypatch
):
    logs, _ = logs
    jsonl = tmp_path / "alerts.jsonl"
    config = tmp_path / "tsa.toml"
    run = [
        "run", "--source", str(logs / "AWSLogs"), "--once", "--database", "deliverytest",
        "--checkpoint", str(tmp_path / "checkpoint"), "--config", str(config),
        "--rules", *[str(REPO / rule) for rule in RULES],
        "--geoip-city-db", str(logs / SAMPLE_FILES["geoip_city_db"]),
    ]  # fmt: skip

    monkeypatch.setenv("TSA_TEST_HOOK_URL", _config(config, _closed_port_url(), jsonl))
    capsys.readouterr()
    assert main(run) == 0
    first = capsys.readouterr().out
    alerts = {
        r.alert_id: r.severity
        for r in spark.sql("SELECT alert_id, severity FROM deliverytest.alerts").collect()
    }
    assert alerts, first
    assert "pending" in first and "retry" in first, first
    assert "secret-token" not in first  # the URL's secret never reaches the output
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert sorted(line["alert_id"] for line in lines) == sorted(alerts)  # the file sink got all

    receiver = Receiver(fail=2)  # the webhook comes back, still failing its first requests
    try:
        monkeypatch.setenv("TSA_TEST_HOOK_URL", receiver.url)
        assert main(run) == 0  # a restart: no new files, only the outbox
        second = capsys.readouterr().out
        assert "batch " not in second
        wanted = sorted(a for a, severity in alerts.items() if severity not in ("info", "low"))
        delivered = [body["alert_id"] for body in receiver.accepted]
        assert sorted(delivered) == wanted, second
        assert receiver.requests == len(wanted) + 2
    finally:
        receiver.close()
    spark.catalog.refreshTable("deliverytest.alert_deliveries")
    rows = spark.sql(
        "SELECT sink, status, reason, attempt FROM deliverytest.alert_deliveries"
    ).collect()
    retries = [r for r in rows if r.sink == "hook" and r.status == "retry"]
    assert any("refused" in r.reason.lower() for r in retries), retries
    assert any("HTTP 503" in r.reason for r in retries), retries
    assert all("secret-token" not in (r.reason or "") for r in rows)
    final = {(r.sink, r.status) for r in rows if r.status != "retry"}
    assert ("hook", "delivered") in final and ("jsonl", "delivered") in final
    assert len(jsonl.read_text().splitlines()) == len(alerts)  # not sent again on restart

    assert main(["deliver", "--database", "deliverytest", "--config", str(config)]) == 0
    assert "nothing to send, pending 0" in capsys.readouterr().out


def test_detect_delivers_with_filters_and_allowlist(spark, logs, tmp_path, capsys):
    logs, summary = logs
    root = f"arn:aws:iam::{summary.accounts[1]}:root"
    config = tmp_path / "tsa.toml"
    config.write_text(
        f"""
[[sinks]]
type = "stdout"
rules = ["root_console_login"]

[delivery]
dedup_window = "0s"

[allowlist]
entities = ["{root}"]
"""
    )
    detect = [
        "detect", "--source", str(logs / "AWSLogs"), "--database", "detectdelivery",
        "--config", str(config), "--rules", *[str(REPO / rule) for rule in RULES],
        "--geoip-city-db", str(logs / SAMPLE_FILES["geoip_city_db"]),
    ]  # fmt: skip
    capsys.readouterr()
    assert main(detect) == 0
    out = capsys.readouterr().out
    alerts = spark.sql("SELECT alert_id, rule, entity FROM detectdelivery.alerts").collect()
    suppressed = [a for a in alerts if a.entity == root]
    sent = [a for a in alerts if a.entity != root and a.rule == "root_console_login"]
    assert suppressed and sent, out
    printed = [line for line in out.splitlines() if line.startswith("ALERT ")]
    assert sorted(
        json.loads(line[line.index(" {") + 1 :])["alert_id"] for line in printed
    ) == sorted(a.alert_id for a in sent)
    assert all(line.startswith("ALERT [HIGH] root_console_login: ") for line in printed)
    filtered = len(alerts) - len(suppressed) - len(sent)
    expected = (
        f"delivery: delivered {len(sent)}, suppressed {len(suppressed)}, filtered {filtered}, "
        "pending 0"
    )
    assert expected in out, out
    spark.catalog.refreshTable("detectdelivery.alert_deliveries")
    statuses = {
        r.status: r.n
        for r in spark.sql(
            "SELECT status, count(*) AS n FROM detectdelivery.alert_deliveries GROUP BY status"
        ).collect()
    }
    assert statuses == {
        k: v
        for k, v in {
            "delivered": len(sent),
            "suppressed": len(suppressed),
            "filtered": filtered,
        }.items()
        if v
    }
