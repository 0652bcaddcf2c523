"""Sinks, dedup and allowlists from the config file: ``[[sinks]]``, ``[delivery]``,
``[allowlist]`` (docs/alerting.md). Every problem is reported with where it is
(``sinks[2] (slack)``) and a hint; a misspelt key is an error, never ignored.

Secrets stay out of the file if you want: a webhook's ``url`` or an SNS ``topic_arn`` can be
given as ``url_env`` / ``topic_arn_env``, the name of an environment variable holding it.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
from collections.abc import Callable
from typing import Any

from loader.alerts.delivery import Allowlist, DedupRule, Deliverer, Policy
from loader.alerts.sinks import (
    JsonLinesSink,
    SlackSink,
    SnsSink,
    StdoutSink,
    WebhookSink,
)
from loader.durations import parse_duration
from loader.errors import ConfigError
from loader.severity import SEVERITIES

COMMON = {"type", "name", "min_severity", "rules"}
KINDS: dict[str, tuple[type, set[str], set[str]]] = {
    # type: (class, required (one of each `|` group), optional)
    "sns": (SnsSink, {"topic_arn|topic_arn_env"}, {"region"}),
    "slack": (SlackSink, {"url|url_env"}, {"timeout"}),
    "webhook": (WebhookSink, {"url|url_env"}, {"headers", "timeout"}),
    "jsonl": (JsonLinesSink, {"path"}, set()),
    "stdout": (StdoutSink, set(), set()),
}
DELIVERY_KEYS = {
    "dedup_key", "dedup_window", "retries", "pause", "max_backoff", "interval", "max_age",
    "rules",
}  # fmt: skip
ALLOWLIST_KEYS = {"entities", "cidrs", "asns"}
ALERT_FIELDS = {"rule", "entity", "value", "account", "region", "source_ip", "severity"}


def build_sinks(entries: list[dict[str, Any]]) -> list[Any]:
    """The ``[[sinks]]`` tables as sink objects."""
    sinks, problems = [], []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            problems.append(f"sinks[{number}]: must be a table ([[sinks]] with type = ...)")
            continue
        kind = str(entry.get("type", ""))
        where = f"sinks[{number}]" + (f" ({kind})" if kind else "")
        if kind not in KINDS:
            problems.append(f"{where}: 'type' must be one of {', '.join(KINDS)}")
            continue
        cls, required, optional = KINDS[kind]
        known = COMMON | optional | {name for group in required for name in group.split("|")}
        problems += _unknown(entry, known, where)
        values: dict[str, Any] = {"name": str(entry.get("name") or kind)}
        for group in required:
            given = [name for name in group.split("|") if name in entry]
            if len(given) != 1:
                problems.append(f"{where}: give exactly one of {' or '.join(group.split('|'))}")
                continue
            name = given[0]
            value = entry[name]
            if name.endswith("_env"):
                value = os.environ.get(str(value))
                if not value:
                    problems.append(f"{where}: environment variable {entry[name]} is not set")
                    continue
                name = name[: -len("_env")]
            values[name] = str(value)
        severity = str(entry.get("min_severity", "info"))
        if severity not in SEVERITIES:
            problems.append(f"{where}: 'min_severity' must be one of {', '.join(SEVERITIES)}")
        values["min_severity"] = severity
        values["rules"] = [str(r) for r in _list(entry, "rules", where, problems)]
        for name in optional & set(entry):
            values[name] = entry[name]
        if "timeout" in values:
            values["timeout"] = parse_duration(str(values["timeout"]), f"{where}: timeout")
        if "headers" in values and not isinstance(values["headers"], dict):
            problems.append(f"{where}: 'headers' must be a table of strings")
        sinks.append(cls(**values))
    names = [sink.name for sink in sinks]
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(f"sinks: two sinks are named {name!r}; give each a distinct 'name'")
    if problems:
        raise ConfigError("; ".join(problems))
    return sinks


def build_policy(
    delivery: dict[str, Any], allowlist: dict[str, Any], asn_of: Callable[[str], Any] | None
) -> Policy:
    """``[delivery]`` (dedup default and per rule) and ``[allowlist]`` as a :class:`Policy`."""
    problems = _unknown(delivery, DELIVERY_KEYS, "delivery")
    default = _dedup(delivery, "delivery", DedupRule(), problems)
    rules = {}
    for rule, table in (delivery.get("rules") or {}).items():
        where = f"delivery.rules.{rule}"
        if not isinstance(table, dict):
            problems.append(f"{where}: must be a table with dedup_key and/or dedup_window")
            continue
        problems += _unknown(table, {"dedup_key", "dedup_window"}, where)
        rules[str(rule)] = _dedup(table, where, default, problems)
    problems += _unknown(allowlist, ALLOWLIST_KEYS, "allowlist")
    cidrs = [str(c) for c in _list(allowlist, "cidrs", "allowlist", problems)]
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            problems.append(f"allowlist: {cidr!r} is not an address range like 10.0.0.0/8")
    asns = []
    for asn in _list(allowlist, "asns", "allowlist", problems):
        text = str(asn).upper().removeprefix("AS")
        if not text.isdigit():
            problems.append(f"allowlist: ASN {asn!r} must be a number like 64512 or 'AS64512'")
        else:
            asns.append(int(text))
    if asns and asn_of is None:
        problems.append("allowlist: 'asns' needs an ASN database (--geoip-asn-db)")
    if problems:
        raise ConfigError("; ".join(problems))
    entities = [str(e) for e in _list(allowlist, "entities", "allowlist", [])]
    max_age = parse_duration(str(delivery.get("max_age", "0")), "delivery: max_age")
    return Policy(default, rules, Allowlist(entities, cidrs, asns, asn_of), max_age)


def build_deliverer(settings: Any) -> Deliverer | None:
    """The deliverer the settings describe; None when no sink is configured."""
    if not settings.sinks:
        return None
    asn_of = None
    if settings.geoip_asn_db and (settings.allowlist or {}).get("asns"):
        from udfs.geoip import ASN, GeoReader, check_database
        from udfs.sources import local_copy

        local = local_copy(settings.geoip_asn_db, ASN.flag)
        check_database(local, ASN, shown_as=settings.geoip_asn_db)
        reader = GeoReader(local, ASN.name)
        asn_of = lambda ip: reader.values(ip)[0]  # noqa: E731
    delivery = settings.delivery or {}
    policy = build_policy(delivery, settings.allowlist or {}, asn_of)
    numbers = {}
    for key, default in (("retries", 2), ("pause", "0.5s"), ("max_backoff", "5m")):
        value = delivery.get(key, default)
        numbers[key] = int(value) if key == "retries" else parse_duration(str(value), key)
    return Deliverer(build_sinks(settings.sinks), policy, **numbers)


def _dedup(table: dict[str, Any], where: str, base: DedupRule, problems: list[str]) -> DedupRule:
    key = base.key
    if "dedup_key" in table:
        key = tuple(str(k) for k in _list(table, "dedup_key", where, problems))
        wrong = [k for k in key if k not in ALERT_FIELDS]
        if wrong or not key:
            problems.append(
                f"{where}: dedup_key must list alert fields ({', '.join(sorted(ALERT_FIELDS))})"
            )
    window = base.window
    if "dedup_window" in table:
        try:
            window = parse_duration(str(table["dedup_window"]), f"{where}: dedup_window")
        except ConfigError as exc:
            problems.append(str(exc))
    return DedupRule(key, window)


def _list(table: dict[str, Any], key: str, where: str, problems: list[str]) -> list[Any]:
    value = table.get(key, [])
    if not isinstance(value, list):
        problems.append(f"{where}: '{key}' must be a list, e.g. {key} = [\"...\"]")
        return []
    return value


def _unknown(table: dict[str, Any], known: set[str], where: str) -> list[str]:
    problems = []
    for key in table:
        if key not in known:
            hint = difflib.get_close_matches(key, sorted(known), n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            problems.append(f"{where}: unknown key '{key}'{suggestion}")
    return problems
