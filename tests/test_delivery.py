"""Alert delivery without Spark: sinks against a local HTTP server and a moto SNS topic read
back through SQS, escaping and size caps, dedup, allowlists, retries."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from loader.alerts.content import TRUNCATED, slack_escape
from loader.alerts.delivery import Allowlist, DedupRule, Deliverer, Policy
from loader.alerts.sinks import SNS_MESSAGE_LIMIT, SlackSink, SnsSink, WebhookSink
from tests.corpus import corpus_dir

HOSTILE_AGENT = (
    "<!channel> *urgent* <https://evil.example|click> \x1b[31mred\x1b[0m `x` & <b>hi</b>"
)


def alert(n: int = 0, **changes):
    base = {
        "alert_id": f"id{n:03d}",
        "rule": "tor_exit_node_activity",
        "kind": "alert",
        "severity": "high",
        "event_id": f"ev{n:03d}",
        "event_time": dt.datetime(2024, 3, 31, 12, 0) + dt.timedelta(minutes=n),
        "entity": "arn:aws:iam::111122223333:user/mallory",
        "value": None,
        "account": "111122223333",
        "region": "us-east-1",
        "source_ip": f"185.220.101.{n + 1}",
        "title": "tor_exit_node_activity: arn:aws:iam::111122223333:user/mallory",
        "details": json.dumps({"eventName": "ListBuckets", "userAgent": "aws-cli/2.15"}),
        "batch_id": 7,
        "created_at": dt.datetime(2024, 3, 31, 12, 5),
    }
    base.update(changes)
    return base


class Receiver:
    """A local HTTP server that answers ``fail`` with ``status`` for the first N requests."""

    def __init__(self, fail: int = 0, status: int = 503) -> None:
        self.fail, self.status, self.requests, self.accepted = fail, status, 0, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests += 1
                if receiver.requests <= receiver.fail:
                    self.send_response(receiver.status)
                    self.end_headers()
                    return
                receiver.accepted.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/s3cr3tToken"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(fail: int = 0, status: int = 503) -> Receiver:
        made.append(Receiver(fail, status))
        return made[-1]

    yield make
    for server in made:
        server.close()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_sink_down_for_a_while_gets_every_alert_once_it_recovers(receiver):
    server = receiver(fail=7)
    clock = Clock()
    sink = WebhookSink("hook", url=server.url)
    deliverer = Deliverer([sink], Policy(DedupRule(window=0)), retries=2, pause=1.0,
                          sleep=clock.sleep, clock=lambda: clock.now)  # fmt: skip
    alerts = [alert(n) for n in range(4)]
    pending, tries, history = list(alerts), {}, []
    for _ in range(10):
        attempts, report = deliverer.deliver({"hook": pending}, tries=tries)
        history += attempts
        for a in attempts:
            tries[(a.alert_id, a.sink)] = a.attempt
        done = {a.alert_id for a in attempts if a.status == "delivered"}
        pending = [a for a in pending if a["alert_id"] not in done]
        if not pending:
            break
        clock.now += 60  # the runner's next round, a minute later
    assert not pending
    assert sorted(body["alert_id"] for body in server.accepted) == [a["alert_id"] for a in alerts]
    retries = [a for a in history if a.status == "retry"]
    assert retries and all("HTTP 503" in a.reason for a in retries)
    assert all("s3cr3tToken" not in a.reason for a in retries)  # the URL's secret stays out
    assert clock.slept[:2] == [1.0, 2.0]  # the pause doubles within a round
    assert server.requests == 7 + 4
    delivered = [a for a in history if a.status == "delivered"]
    assert max(a.attempt for a in delivered) >= 2


def test_a_permanent_refusal_is_recorded_and_the_next_alert_still_goes(receiver):
    server = receiver(fail=1, status=413)
    deliverer = Deliverer([WebhookSink("hook", url=server.url)], Policy(DedupRule(window=0)))
    attempts, report = deliverer.deliver({"hook": [alert(0), alert(1)]})
    assert [(a.alert_id, a.status) for a in attempts] == [
        ("id000", "rejected"),
        ("id001", "delivered"),
    ]
    assert "HTTP 413" in attempts[0].reason and "/***" in attempts[0].reason
    assert report.counts["rejected"] == 1 and report.pending == 0


def test_hostile_user_agent_reaches_slack_escaped(receiver):
    server = receiver()
    hostile = alert(
        details=json.dumps({"event": {"eventName": "GetObject\u202e", "userAgent": HOSTILE_AGENT}})
    )
    Deliverer([SlackSink("slack", url=server.url)]).deliver({"slack": [hostile]})
    (payload,) = server.accepted
    text = payload["blocks"][0]["text"]["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert (
        "<https://evil.example|click>" not in text and "&lt;https://evil.example|click&gt;" in text
    )
    assert "\x1b" not in text and "\u202e" not in text
    assert "<b>" not in text and "&amp;" in text
    assert "*\u200burgent*\u200b" in text  # formatting characters made inert
    assert slack_escape("a*b") == "a*\u200bb"

    Deliverer([WebhookSink("hook", url=server.url)]).deliver({"hook": [hostile]})
    page = server.accepted[-1]["html"]
    assert "<b>hi</b>" not in page and "&lt;b&gt;hi&lt;/b&gt;" in page
    assert "\x1b" not in page and "&lt;!channel&gt;" in page
    assert server.accepted[-1]["alert"]["details"]["event"]["userAgent"] == HOSTILE_AGENT


def test_an_oversized_alert_is_cut_with_a_marker_not_dropped(receiver, moto_server):
    import boto3

    huge = alert(details=json.dumps({"event": {"requestParameters": "A" * 400_000}}))
    server = receiver()
    Deliverer([WebhookSink("hook", url=server.url)]).deliver({"hook": [huge]})
    (payload,) = server.accepted
    assert len(json.dumps(payload)) <= 256 * 1024
    assert "truncated" in json.dumps(payload)
    assert payload["alert_id"] == huge["alert_id"]

    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="tsa-big")["TopicArn"]
    queue = _subscribed_queue(sns, sqs, topic, "tsa-big")
    attempts, _ = Deliverer([SnsSink("sns", topic_arn=topic)]).deliver({"sns": [huge]})
    assert [a.status for a in attempts] == ["delivered"]
    (envelope,) = _messages(sqs, queue)
    assert len(envelope["Message"].encode()) <= SNS_MESSAGE_LIMIT
    assert TRUNCATED.split("{")[0] in envelope["Message"]


def test_sns_subject_body_and_attributes(moto_server):
    import boto3

    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="tsa-alerts")["TopicArn"]
    queue = _subscribed_queue(sns, sqs, topic, "tsa-alerts")
    profile = alert(
        1,
        rule="new_country_for_principal", kind="profile", severity="medium", value="Sweden",
        title="new_country_for_principal: " + "arn:aws:iam::111122223333:user/" + "x" * 150
        + " new country Sweden",
        details=json.dumps({"event": {"eventName": "ConsoleLogin", "userAgent": HOSTILE_AGENT},
                            "values_before": 2, "recent_values": ["United States", "Germany"]}),
    )  # fmt: skip
    attempts, _ = Deliverer([SnsSink("sns", topic_arn=topic)]).deliver({"sns": [profile]})
    assert [a.status for a in attempts] == ["delivered"]
    (envelope,) = _messages(sqs, queue)
    assert len(envelope["Subject"]) <= 100 and envelope["Subject"].startswith(
        "[MEDIUM] new_country"
    )
    body = envelope["Message"]
    assert "New activity: Sweden" in body
    assert "Profile it did not match: United States, Germany" in body
    assert "Intersection: none" in body
    assert "Current activity: eventName=ConsoleLogin" in body
    assert "\x1b" not in body
    document = json.loads(body.split("--- alert (JSON) ---\n", 1)[1])
    assert document["alert_id"] == profile["alert_id"]
    assert document["details"]["recent_values"] == ["United States", "Germany"]
    attributes = envelope["MessageAttributes"]
    assert attributes["alert_id"]["Value"] == profile["alert_id"]
    assert attributes["rule"]["Value"] == "new_country_for_principal"


def test_a_missing_topic_is_rejected_with_the_reason(moto_server):
    missing = "arn:aws:sns:us-east-1:123456789012:no-such-topic"
    attempts, _ = Deliverer([SnsSink("sns", topic_arn=missing)]).deliver({"sns": [alert()]})
    assert attempts[0].status == "rejected" and "NotFound" in attempts[0].reason


def test_twenty_tor_alerts_of_one_actor_from_twenty_addresses_are_one_delivery(receiver):
    server = receiver()
    policy = Policy(rules={"tor_exit_node_activity": DedupRule(("rule", "entity"), 6 * 3600)})
    tor = [alert(n) for n in range(20)]
    assert len({a["source_ip"] for a in tor}) == 20
    other = alert(30, entity="arn:aws:iam::111122223333:user/eve")
    attempts, report = Deliverer([WebhookSink("hook", url=server.url)], policy).deliver(
        {"hook": [*reversed(tor), other]}
    )
    assert [body["alert_id"] for body in server.accepted] == ["id000", "id030"]
    assert report.counts["deduplicated"] == 19
    # a later round that knows what was sent decides the same for a late duplicate
    late = alert(25)
    again, _ = Deliverer([WebhookSink("hook", url=server.url)], policy).deliver(
        {"hook": [late]}, context=tor
    )
    assert [(a.alert_id, a.status) for a in again] == [("id025", "deduplicated")]


def test_allowlists_suppress_and_count(receiver):
    from udfs.geoip import GeoReader

    asn_db = corpus_dir("geoip") / "test-data" / "GeoLite2-ASN-Test.mmdb"
    reader = GeoReader(str(asn_db), "asn")
    assert reader.values("1.128.0.1")[0] == 1221  # the test database's Telstra range
    server = receiver()
    allow = Allowlist(
        entities=["arn:aws:iam::*:role/ci-*"], cidrs=["10.0.0.0/8", "2001:db8::/32"],
        asns=[1221], asn_of=lambda ip: reader.values(ip)[0],
    )  # fmt: skip
    alerts = [
        alert(0, entity="arn:aws:iam::111122223333:role/ci-deploy"),
        alert(1, source_ip="10.1.2.3", entity="a"),
        alert(2, source_ip="2001:db8::1", entity="b"),
        alert(3, source_ip="1.128.0.1", entity="c"),
        alert(4, source_ip="AWS Internal", entity="d"),
        alert(5, entity="e"),
    ]
    attempts, report = Deliverer(
        [WebhookSink("hook", url=server.url)], Policy(allowlist=allow)
    ).deliver({"hook": alerts})
    assert report.counts["suppressed"] == 4
    assert sorted(body["alert_id"] for body in server.accepted) == ["id004", "id005"]
    reasons = {a.alert_id: a.reason for a in attempts if a.status == "suppressed"}
    assert reasons["id003"] == "allowlisted ASN 1221"
    assert reasons["id001"] == "allowlisted range 10.0.0.0/8"
    assert "delivery: delivered 2, suppressed 4, pending 0" == report.render()


def test_severity_floor_and_rule_patterns(receiver):
    server = receiver()
    sink = WebhookSink("hook", url=server.url, min_severity="high", rules=["root_*", "tor_*"])
    alerts = [
        alert(0),
        alert(1, rule="root_console_login", severity="critical", entity="r"),
        alert(2, severity="medium", entity="m"),
        alert(3, rule="iam_x", entity="i"),
    ]
    attempts, _ = Deliverer([sink]).deliver({"hook": alerts})
    assert {a.alert_id: a.status for a in attempts} == {
        "id000": "delivered", "id001": "delivered", "id002": "filtered", "id003": "filtered",
    }  # fmt: skip


def _subscribed_queue(sns, sqs, topic: str, name: str) -> str:
    queue = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return queue


def _messages(sqs, queue: str) -> list[dict]:
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return [json.loads(m["Body"]) for m in received.get("Messages", [])]


def test_the_documented_delivery_example_configures_every_sink(monkeypatch):
    from loader.alerts.settings import build_policy, build_sinks
    from loader.config import parse_config
    from tests.conftest import REPO

    readme = (REPO / "docs" / "alerting.md").read_text()
    section = readme.split("## Alert delivery", 1)[1]
    text = section.split("```toml", 1)[1].split("```", 1)[0]
    data = parse_config(text, "docs/alerting.md")  # every key is a setting
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/secret")
    monkeypatch.setenv("SOAR_WEBHOOK_URL", "https://soar.example/hook?token=secret")
    sinks = build_sinks(data["sinks"])
    assert [s.name for s in sinks] == ["sns", "slack", "soar", "jsonl", "stdout"]
    assert sinks[0].min_severity == "high" and sinks[1].rules[0] == "root_*"
    assert all("secret" not in s.describe() for s in sinks)
    policy = build_policy(data["delivery"], data["allowlist"], asn_of=lambda ip: 64512)
    assert policy.dedup_for("tor_exit_node_activity") == DedupRule(("rule", "entity"), 21600)
    assert policy.dedup_for("root_console_login") == DedupRule(("rule", "entity"), 3600)
    assert (
        policy.allowlist.reason(alert(source_ip="203.0.113.9"))
        == "allowlisted range 203.0.113.0/24"
    )


def test_sink_settings_problems_are_all_reported_with_where(monkeypatch):
    from loader.alerts.settings import build_policy, build_sinks
    from loader.errors import ConfigError

    monkeypatch.delenv("NO_SUCH_VAR", raising=False)
    with pytest.raises(ConfigError) as caught:
        build_sinks([
            {"type": "slak", "url": "x"},
            {"type": "webhook", "ur": "https://x"},
            {"type": "slack", "url_env": "NO_SUCH_VAR", "min_severity": "urgent"},
        ])  # fmt: skip
    message = str(caught.value)
    assert "sinks[1] (slak): 'type' must be one of sns, slack, webhook, jsonl, stdout" in message
    assert "sinks[2] (webhook): unknown key 'ur' (did you mean 'url'?)" in message
    assert "sinks[2] (webhook): give exactly one of url or url_env" in message
    assert "sinks[3] (slack): environment variable NO_SUCH_VAR is not set" in message
    assert "sinks[3] (slack): 'min_severity' must be one of info, low" in message
    with pytest.raises(ConfigError) as caught:
        build_policy({"dedup_windw": "1h"}, {"cidrs": ["10.0.0.300/8"], "asns": ["ASx"]}, None)
    message = str(caught.value)
    assert "delivery: unknown key 'dedup_windw' (did you mean 'dedup_window'?)" in message
    assert "'10.0.0.300/8' is not an address range" in message
    assert "ASN 'ASx' must be a number" in message


def test_max_age_skips_a_history_replays_old_alerts_but_never_a_waiting_one(receiver):
    server = receiver()
    policy = Policy(DedupRule(window=0), max_age=86400)
    old = alert(0, created_at=dt.datetime(2024, 5, 1))  # raised a month after its event
    fresh = alert(1, created_at=dt.datetime(2024, 3, 31, 12, 5))  # long ago, but raised at once
    attempts, _ = Deliverer([WebhookSink("hook", url=server.url)], policy).deliver(
        {"hook": [old, fresh]}
    )
    assert {a.alert_id: a.status for a in attempts} == {"id000": "filtered", "id001": "delivered"}


def test_account_wide_alerts_dedup_by_value_and_sns_subjects_are_ascii(moto_server):
    import boto3

    from loader.alerts.sinks import sns_subject

    policy = Policy(DedupRule(("rule", "entity"), 3600))
    ips = [alert(n, rule="new_source_ip", entity=None, value=f"198.51.100.{n}") for n in range(3)]
    decisions = policy.decide(
        ips + [alert(5, rule="new_source_ip", entity=None, value="198.51.100.1")]
    )
    assert [decisions[f"id{n:03d}"][0] for n in (0, 1, 2, 5)] == ["send"] * 3 + ["deduplicated"]

    title = (
        "new_country_for_principal: arn:aws:iam::1:user/zoë new country Türkiye 東京 " + "x" * 80
    )
    sub = sns_subject(alert(title=title, severity="medium"))
    assert sub.isascii() and len(sub) <= 99 and "zoe" in sub and "Turkiye" in sub
    assert sub.endswith("...")
    sns = boto3.client("sns")
    topic = sns.create_topic(Name="tsa-ascii")["TopicArn"]
    attempts, _ = Deliverer([SnsSink("sns", topic_arn=topic)]).deliver(
        {"sns": [alert(title=title)]}
    )
    assert [a.status for a in attempts] == ["delivered"]
