"""Every key of a rule's header, defined once: what it means, for which kind, its values.

The table of header keys in docs/rules.md is generated from these definitions' ``doc`` (and a test
keeps the two identical).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loader.durations import parse_duration
from loader.errors import ConfigError
from loader.severity import SEVERITIES

KINDS = ("alert", "profile", "baseline")
SCOPES = ("account", "organization")
# where `scope: account` reads an account-wide rule's account, first match in its result
ACCOUNT_COLUMNS = ("recipientAccountId", "account")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class BadValue(ValueError):
    """A header value that does not fit its key; the message says what would."""


def _name(text: str) -> str:
    if not _NAME.match(text):
        raise BadValue("use lower-case letters, digits and underscores, starting with a letter")
    return text


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.lower() not in options:
            raise BadValue(f"expected one of {', '.join(options)}")
        return text.lower()

    return parse


def _text(text: str) -> str:
    if not text.strip():
        raise BadValue("must not be empty")
    return text.strip()


def _column(text: str) -> str:
    if not _COLUMN.match(text):
        raise BadValue("expected the name of a column of the query's result")
    return text


def _columns(text: str) -> tuple[str, ...]:
    return tuple(_column(part.strip()) for part in text.split(","))


def _duration(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ConfigError as exc:
        raise BadValue("expected a duration such as 30m, 24 hours or 14 days") from exc
    return seconds


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise BadValue("expected a whole number of at least 1")
    return int(text)


def _number(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        number = -1.0
    if not number > 0 or number != number or number == float("inf"):
        raise BadValue("expected a number greater than 0, such as 5 or 3.5")
    return number


def _tags(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class Key:
    name: str
    kinds: tuple[str, ...]
    parse: Callable[[str], Any]
    doc: str
    required: tuple[str, ...] = ()  # the kinds for which it must be given
    default: Any = None


KEYS: dict[str, Key] = {
    key.name: key
    for key in (
        Key("name", KINDS, _name, "the rule's name; must equal the file name without .sql", KINDS),
        Key("kind", KINDS, _choice(KINDS), "`alert` (each row is an alert), `profile` (alert on a value new for its entity) or `baseline` (alert when an entity's rows per bucket depart from its own history)", KINDS),
        Key("description", KINDS, _text, "what the rule detects, one sentence", KINDS),
        Key("severity", KINDS, _choice(SEVERITIES), "info, low, medium, high or critical", KINDS),
        Key("entity", KINDS, _column, "result column naming who or what acted (a profile or baseline without it is account-wide: see `scope`)"),
        Key("value", ("profile",), _column, "result column holding the profiled value", ("profile",)),
        Key("scope", ("profile", "baseline"), _choice(SCOPES), "for a rule without `entity`: `account` (default: one profile or baseline per account, read from the result's `recipientAccountId` or `account` column) or `organization` (one for all accounts together)", (), "account"),
        Key("bucket", ("baseline",), _duration, "baseline: count the entity's result rows per bucket of this length", (), 3600.0),
        Key("history", ("baseline",), _duration, "baseline: the entity's buckets within this window before the current one are its baseline", (), 30 * 86400.0),
        Key("min_history", ("baseline",), _duration, "baseline: no alert until the entity's first row is this long before the bucket (learning)", (), 7 * 86400.0),
        Key("min_count", ("baseline",), _positive_int, "baseline: never alert on fewer rows than this in a bucket", (), 50),
        Key("deviation", ("baseline",), _number, "baseline: alert when the bucket's robust z-score (count - median) / spread exceeds this (the formula: see Baseline rules)", (), 5.0),
        Key("top", ("baseline",), _column, "baseline: result column whose most frequent values in the bucket the alert lists (e.g. eventName)"),
        Key("lateness", ("baseline",), _duration, "baseline: a bucket is judged once the newest event seen is this long past its end (CloudTrail delivers files 5-15 minutes after the calls)", (), 1800.0),
        Key("learning", ("profile",), _duration, "no alert while the entity (or, account-wide, the profile) is younger than this", (), 14 * 86400.0),
        Key("expire", ("profile",), _duration, "a value not seen for this long is forgotten", (), 180 * 86400.0),
        Key("dedup", KINDS, _duration, "one alert per dedup key within this window", (), 0.0),
        Key("dedup_key", ("alert",), _columns, "result columns that identify duplicates (default: rule and entity)"),
        Key("threshold", ("alert",), _positive_int, "alert only when at least this many rows share the entity within `window`"),
        Key("window", ("alert",), _duration, "the time window of `threshold`"),
        Key("tags", KINDS, _tags, "comma-separated labels, e.g. MITRE ATT&CK technique ids", (), ()),
        Key("author", KINDS, _text, "who wrote the rule; carried into every alert's `details` (a rule from elsewhere keeps its author there, as the Sigma rules' licence asks)"),
        Key("source", KINDS, _text, "where the rule comes from (a link or path); carried into every alert's `details`"),
        Key("sigma_id", KINDS, _text, "the Sigma rule's id, for a rule made by `import-sigma`; carried into `details`"),
        Key("license", KINDS, _text, "the rule's licence, e.g. DRL-1.1 for SigmaHQ's rules; carried into `details`"),
    )
}  # fmt: skip
