"""Delivery: which alert goes to which sink, and what happened when it was sent.

``security.alerts`` is the source of truth; every decision and attempt is an :class:`Attempt`
row (``security.alert_deliveries``, see :mod:`loader.alerts.outbox`). An alert is pending for a
sink until a *final* attempt exists for the pair:

- ``delivered``: the sink accepted it;
- ``rejected``: the sink refused it for good (the reason is kept);
- ``suppressed``: an allowlist entry matched (an entity, an address range, an ASN);
- ``deduplicated``: an alert with the same dedup key was sent within the rule's window;
- ``filtered``: below the sink's minimum severity, or not one of its rules.

A ``retry`` attempt is not final: the sink failed in a way that may pass, the alert stays
pending and the next round tries again, after a backoff that doubles per failure of the sink.
Delivery is at-least-once (a crash between a send and its record sends again); every message
carries the ``alert_id`` so a receiver can drop the duplicate.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import ipaddress
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loader.alerts.sinks import Rejected, RetryLater, Sink
from loader.severity import SEVERITIES

FINAL = ("delivered", "rejected", "suppressed", "deduplicated", "filtered")
DEFAULT_DEDUP_KEY = ("rule", "entity")
DEFAULT_DEDUP_WINDOW = 3600.0


@dataclass(frozen=True)
class Attempt:
    alert_id: str
    sink: str
    status: str
    attempt: int
    reason: str | None
    attempted_at: dt.datetime


@dataclass(frozen=True)
class DedupRule:
    key: tuple[str, ...] = DEFAULT_DEDUP_KEY
    window: float = DEFAULT_DEDUP_WINDOW


@dataclass
class Allowlist:
    """Alerts about these never reach a sink; they are counted as suppressed."""

    entities: list[str] = field(default_factory=list)  # exact or shell patterns
    cidrs: list[str] = field(default_factory=list)
    asns: list[int] = field(default_factory=list)
    asn_of: Callable[[str], int | None] | None = None  # an ASN lookup (GeoIP ASN database)

    def __post_init__(self) -> None:
        self._networks = [ipaddress.ip_network(c, strict=False) for c in self.cidrs]

    def reason(self, alert: Mapping[str, Any]) -> str | None:
        entity = alert.get("entity")
        if entity is not None:
            for pattern in self.entities:
                if fnmatch.fnmatchcase(str(entity), pattern):
                    return f"allowlisted entity {pattern}"
        try:
            address = ipaddress.ip_address(str(alert.get("source_ip") or ""))
        except ValueError:
            return None  # "AWS Internal", a service name: no address to match
        for network in self._networks:
            if address.version == network.version and address in network:
                return f"allowlisted range {network}"
        if self.asns and self.asn_of is not None:
            asn = self.asn_of(str(address))
            if asn is not None and asn in self.asns:
                return f"allowlisted ASN {asn}"
        return None


@dataclass
class Policy:
    """Dedup per rule (``rules``: rule name -> :class:`DedupRule`; others use ``default``)
    and the allowlist."""

    default: DedupRule = field(default_factory=DedupRule)
    rules: dict[str, DedupRule] = field(default_factory=dict)
    allowlist: Allowlist = field(default_factory=Allowlist)
    max_age: float = 0.0  # seconds; older events are not sent (0: no limit)

    def dedup_for(self, rule: str) -> DedupRule:
        return self.rules.get(rule, self.default)

    @property
    def longest_window(self) -> float:
        return max([self.default.window, *(r.window for r in self.rules.values())])

    def decide(self, alerts: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, str | None]]:
        """alert_id -> ("send", None) or a final status and its reason, for every alert given.

        Walks the alerts in event-time order, so the decision for an alert depends only on
        the alerts before it: a later round that sees more recent alerts decides the same."""
        decisions: dict[str, tuple[str, str | None]] = {}
        now = _now()
        last_sent: dict[tuple[Any, ...], tuple[dt.datetime, str]] = {}
        for alert in sorted(alerts, key=_order):
            reason = self.allowlist.reason(alert)
            if reason:
                decisions[alert["alert_id"]] = ("suppressed", reason)
                continue
            # how old the activity was when the alert was raised (a history replay's alerts),
            # not how long the alert has waited for a sink that was down
            raised = _time(alert, "created_at") if alert.get("created_at") else now
            if self.max_age and (raised - _time(alert)).total_seconds() > self.max_age:
                decisions[alert["alert_id"]] = (
                    "filtered", f"raised more than {self.max_age:g} s after its event",
                )  # fmt: skip
                continue
            dedup = self.dedup_for(str(alert.get("rule")))
            key = tuple(_key_part(alert, part) for part in dedup.key)
            moment = _time(alert)
            previous = last_sent.get(key)
            if (
                dedup.window > 0
                and previous is not None
                and (moment - previous[0]).total_seconds() < dedup.window
            ):
                decisions[alert["alert_id"]] = (
                    "deduplicated", f"same {'+'.join(dedup.key)} as {previous[1]}",
                )  # fmt: skip
                continue
            last_sent[key] = (moment, alert["alert_id"])
            decisions[alert["alert_id"]] = ("send", None)
        return decisions


def wants(sink: Sink, alert: Mapping[str, Any]) -> bool:
    """The sink's severity floor and rule patterns."""
    severity = str(alert.get("severity") or "medium")
    rank = SEVERITIES.index(severity) if severity in SEVERITIES else SEVERITIES.index("medium")
    if rank < SEVERITIES.index(sink.min_severity):
        return False
    rule = str(alert.get("rule"))
    return not sink.rules or any(fnmatch.fnmatchcase(rule, p) for p in sink.rules)


@dataclass
class RoundReport:
    """What one delivery round did, for the status line."""

    counts: Counter[str] = field(default_factory=Counter)
    pending: int = 0

    def render(self) -> str:
        parts = [f"{status} {self.counts[status]}" for status in
                 ("delivered", "retry", "rejected", "suppressed", "deduplicated", "filtered")
                 if self.counts[status]]  # fmt: skip
        return "delivery: " + (", ".join(parts) or "nothing to send") + f", pending {self.pending}"


class Deliverer:
    """Sends pending alerts to the sinks, retrying what may pass, and returns the attempts.

    Within a round a failing send is retried ``retries`` times with a doubling pause; a sink
    that still fails is left alone until its backoff (doubling per failed round, at most
    ``max_backoff`` seconds) has passed, and its alerts stay pending."""

    def __init__(
        self,
        sinks: list[Sink],
        policy: Policy | None = None,
        retries: int = 2,
        pause: float = 0.5,
        max_backoff: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        names = [sink.name for sink in sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"sink names must be unique, got {names}")
        self.sinks = sinks
        self.policy = policy or Policy()
        self.retries, self.pause, self.max_backoff = retries, pause, max_backoff
        self._sleep, self._clock = sleep, clock
        self._failures: Counter[str] = Counter()
        self._next_try: dict[str, float] = {}

    def deliver(
        self,
        pending: Mapping[str, list[Mapping[str, Any]]],
        context: Iterable[Mapping[str, Any]] = (),
        tries: Mapping[tuple[str, str], int] | None = None,
    ) -> tuple[list[Attempt], RoundReport]:
        """One round. ``pending``: sink name -> its pending alerts; ``context``: alerts already
        final, for the dedup windows; ``tries``: attempts so far per (alert_id, sink)."""
        tries = tries or {}
        everything = {a["alert_id"]: a for a in context}
        for alerts in pending.values():
            everything.update((a["alert_id"], a) for a in alerts)
        decisions = self.policy.decide(everything.values())
        attempts: list[Attempt] = []
        report = RoundReport()
        for sink in self.sinks:
            blocked = self._clock() < self._next_try.get(sink.name, 0.0)
            for alert in sorted(pending.get(sink.name, []), key=_order):
                alert_id = alert["alert_id"]
                number = tries.get((alert_id, sink.name), 0) + 1
                status, reason = decisions[alert_id]
                if status == "send" and not wants(sink, alert):
                    status, reason = "filtered", f"below {sink.min_severity} or another rule"
                if status != "send":
                    attempts.append(Attempt(alert_id, sink.name, status, number, reason, _now()))
                    report.counts[status] += 1
                    continue
                if blocked:
                    report.pending += 1
                    continue
                tried = self._send(sink, alert, number)
                attempts += tried
                report.counts.update(a.status for a in tried)
                blocked = tried[-1].status == "retry"
                report.pending += blocked
        return attempts, report

    def _send(self, sink: Sink, alert: Mapping[str, Any], first: int) -> list[Attempt]:
        """Every try of one alert on one sink, each an attempt; the last says where it is."""
        tried: list[Attempt] = []
        alert_id = alert["alert_id"]
        for retry in range(self.retries + 1):
            number = first + retry
            try:
                sink.send(alert)
            except Rejected as exc:
                return [*tried, Attempt(alert_id, sink.name, "rejected", number, str(exc), _now())]
            except RetryLater as exc:
                tried.append(Attempt(alert_id, sink.name, "retry", number, str(exc), _now()))
                if retry < self.retries:
                    self._sleep(self.pause * 2**retry)
                    continue
                self._failures[sink.name] += 1
                backoff = min(self.max_backoff, self.pause * 2 ** (self._failures[sink.name] + 1))
                self._next_try[sink.name] = self._clock() + backoff
                return tried
            self._failures[sink.name] = 0
            return [*tried, Attempt(alert_id, sink.name, "delivered", number, None, _now())]
        raise AssertionError("unreachable")


def _key_part(alert: Mapping[str, Any], part: str) -> Any:
    """An alert without an entity (an account-wide profile) is keyed by its value instead:
    two new source addresses of an account are two deliveries."""
    if part == "entity" and alert.get("entity") is None:
        return ("value", alert.get("value"))
    return alert.get(part)


def _time(alert: Mapping[str, Any], column: str = "event_time") -> dt.datetime:
    value = alert.get(column)
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if value:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).replace(tzinfo=None)
    return dt.datetime.min


def _order(alert: Mapping[str, Any]) -> tuple[dt.datetime, str]:
    return _time(alert), str(alert.get("alert_id"))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
