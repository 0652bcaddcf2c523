"""Where alerts go: SNS, a Slack incoming webhook, a generic JSON webhook, a JSON-lines file,
stdout. Each sink sends one alert per call and says how a failure should be treated:

- :class:`RetryLater`: the sink may accept later (connection refused, timeout, HTTP 408/429/5xx,
  SNS throttling or internal errors); the alert stays in the outbox.
- :class:`Rejected`: the sink will never accept this message (HTTP 4xx, SNS invalid parameter
  or missing topic); the reason is recorded and delivery moves on.

Every message carries the ``alert_id`` so a receiver can drop the duplicates at-least-once
delivery can produce.
"""

from __future__ import annotations

import html
import json
import sys
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from loader.alerts.content import (
    alert_json,
    cap,
    cap_bytes,
    clean,
    redact_url,
    slack_escape,
    summary_lines,
)
from loader.errors import SinkError

SNS_SUBJECT_LIMIT = 99  # SNS: ASCII, "less than 100 characters", no line breaks
SNS_MESSAGE_LIMIT = 256 * 1024  # bytes, message and attributes together
SLACK_TEXT_LIMIT = 3000  # characters in one section block
WEBHOOK_BODY_LIMIT = 256 * 1024
TIMEOUT_SECONDS = 10.0


class RetryLater(SinkError):
    """The sink failed in a way that may pass: try again later."""


class Rejected(SinkError):
    """The sink refused this message for good: record why and move on."""


def subject(alert: Mapping[str, Any], limit: int = 300) -> str:
    """``[HIGH] rule: entity new value``, cleaned, at most ``limit`` characters."""
    severity = str(alert.get("severity") or "").upper()
    return clean(f"[{severity}] {alert.get('title') or alert.get('rule')}", limit)


def sns_subject(alert: Mapping[str, Any]) -> str:
    """The subject in what SNS accepts: ASCII (accents folded, the rest as ``?``), within
    its length limit; SNS refuses the whole message otherwise."""
    folded = unicodedata.normalize("NFKD", subject(alert, 10_000))
    ascii_text = "".join(c for c in folded if not unicodedata.combining(c))
    ascii_text = ascii_text.encode("ascii", errors="replace").decode("ascii")
    if len(ascii_text) > SNS_SUBJECT_LIMIT:  # the body has it all; a subject only needs a cut
        ascii_text = ascii_text[: SNS_SUBJECT_LIMIT - 3] + "..."
    return ascii_text


def text_body(alert: Mapping[str, Any]) -> str:
    """Plain text: the summary lines, then the alert as JSON."""
    lines = [f"{label}: {value}" for label, value in summary_lines(alert)]
    document = json.dumps(alert_json(alert), sort_keys=True, default=str, indent=1)
    return "\n".join(lines) + "\n\n--- alert (JSON) ---\n" + clean(document, 10**9, False)


def html_body(alert: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
        for label, value in summary_lines(alert)
    )
    return f"<table>{rows}</table>"


@dataclass
class Sink:
    """A destination, with the alerts it wants: at least ``min_severity``, rules matching one
    of ``rules`` (shell patterns; empty: all)."""

    name: str
    min_severity: str = "info"
    rules: list[str] = field(default_factory=list)

    def send(self, alert: Mapping[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


@dataclass
class StdoutSink(Sink):
    stream: TextIO | None = None

    def send(self, alert: Mapping[str, Any]) -> None:
        out = self.stream or sys.stdout
        print(f"ALERT {subject(alert, 300)} {json.dumps(alert_json(alert), default=str)}",
              file=out, flush=True)  # fmt: skip


@dataclass
class JsonLinesSink(Sink):
    path: str = "alerts.jsonl"

    def send(self, alert: Mapping[str, Any]) -> None:
        line = json.dumps(alert_json(alert), sort_keys=True, default=str)
        try:
            with Path(self.path).open("a", encoding="utf-8") as out:
                out.write(line + "\n")
        except OSError as exc:
            raise RetryLater(f"{self.path}: {exc.strerror}") from exc

    def describe(self) -> str:
        return f"{self.name} ({self.path})"


@dataclass
class WebhookSink(Sink):
    """POST of the alert as JSON (``{"alert": ..., "text": ...}``) to an HTTP(S) URL."""

    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = TIMEOUT_SECONDS

    def payload(self, alert: Mapping[str, Any]) -> dict[str, Any]:
        """The alert as JSON, with a plain ``text`` line and an escaped ``html`` summary for
        receivers that show one (chat tools, ticket systems, mail)."""
        return {"alert_id": alert.get("alert_id"), "text": subject(alert, 300),
                "html": html_body(alert), "alert": alert_json(alert)}  # fmt: skip

    def send(self, alert: Mapping[str, Any]) -> None:
        body = json.dumps(self.payload(alert), default=str).encode("utf-8")
        if len(body) > WEBHOOK_BODY_LIMIT:
            body = json.dumps(self.payload(_shrunk(alert, WEBHOOK_BODY_LIMIT))).encode("utf-8")
        post(self.url, body, self.headers, self.timeout)

    def describe(self) -> str:
        return f"{self.name} ({redact_url(self.url)})"


@dataclass
class SlackSink(WebhookSink):
    """A Slack incoming webhook: a mrkdwn message, every alert field escaped."""

    def payload(self, alert: Mapping[str, Any]) -> dict[str, Any]:
        lines = [f"*{slack_escape(label)}:* {slack_escape(value)}"
                 for label, value in summary_lines(alert)]  # fmt: skip
        title = slack_escape(subject(alert, 150))
        text = cap(f"*{title}*\n" + "\n".join(lines), SLACK_TEXT_LIMIT)
        return {"text": title, "blocks": [{"type": "section", "text": {"type": "mrkdwn",
                "text": text}}]}  # fmt: skip


@dataclass
class SnsSink(Sink):
    """boto3 ``publish`` to a topic: the subject within 100 characters, the body with the
    summary and the alert as JSON, ``alert_id``, ``rule`` and ``severity`` as attributes."""

    topic_arn: str = ""
    region: str | None = None
    _client: Any = None

    def client(self) -> Any:
        if self._client is None:
            import boto3

            region = self.region or _arn_region(self.topic_arn)
            self._client = boto3.client("sns", region_name=region)
        return self._client

    def send(self, alert: Mapping[str, Any]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        attributes = {
            key: {"DataType": "String", "StringValue": clean(alert.get(key), 256) or "-"}
            for key in ("alert_id", "rule", "severity")
        }
        room = SNS_MESSAGE_LIMIT - len(json.dumps(attributes)) - 1024
        try:
            self.client().publish(
                TopicArn=self.topic_arn,
                Subject=sns_subject(alert),
                Message=cap_bytes(text_body(alert), room),
                MessageAttributes=attributes,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            message = f"SNS {code}: {exc.response.get('Error', {}).get('Message', '')}"
            if code in ("Throttling", "ThrottledException", "InternalError", "InternalFailure",
                        "ServiceUnavailable", "KMSThrottling"):  # fmt: skip
                raise RetryLater(message) from exc
            raise Rejected(message) from exc
        except BotoCoreError as exc:  # no connection, no credentials yet, timeouts
            raise RetryLater(f"SNS: {exc}") from exc

    def describe(self) -> str:
        return f"{self.name} ({self.topic_arn})"


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> None:
    """POST ``body``; a refusal raises :class:`Rejected`, anything that may pass
    :class:`RetryLater`. Messages name the URL without its secret part."""
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "tsa-alerts", **headers},
    )  # fmt: skip
    where = redact_url(url)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        reason = f"{where}: HTTP {exc.code} {clean(exc.reason, 200)}"
        if exc.code in (408, 425, 429) or exc.code >= 500:
            raise RetryLater(reason) from None
        raise Rejected(reason) from None
    except (urllib.error.URLError, OSError) as exc:
        cause = getattr(exc, "reason", exc)
        raise RetryLater(f"{where}: {clean(cause, 200)}") from None


def _shrunk(alert: Mapping[str, Any], limit: int) -> dict[str, Any]:
    """The alert with its ``details`` cut so the message fits in ``limit`` bytes."""
    shrunk = dict(alert)
    details = json.dumps(alert_json(alert)["details"], default=str)
    shrunk["details"] = json.dumps({"truncated": cap_bytes(details, limit // 2)})
    return shrunk


def _arn_region(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] if len(parts) > 4 and parts[3] else None
