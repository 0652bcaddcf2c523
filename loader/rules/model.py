"""A rule file read into its header values and its SQL, with positions for every error.

Layout::

    /*
    name: new_country_for_principal
    kind: profile
    ...
    */
    SELECT ... FROM cloudtrail ...

Problems are collected, not raised one by one, so `validate` reports all of them in one run.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from loader.rules.errors import Problem
from loader.rules.keys import KEYS, KINDS, BadValue


@dataclass
class Rule:
    """One rule: its header, one typed attribute per key of :data:`loader.rules.keys.KEYS`
    (None when not given and without a default for its kind; durations in seconds), and its
    query. A test keeps the attributes and the keys identical."""

    path: str
    sql: str = ""
    sql_offset: int = 0  # where the query starts in the file's text
    text: str = ""
    given: set[str] = field(default_factory=set)  # keys written in the header, valid or not
    # the header
    name: str = ""  # the file name without .sql when the header has none (an error)
    kind: str | None = None
    description: str | None = None
    severity: str | None = None
    entity: str | None = None
    value: str | None = None
    scope: str | None = None
    bucket: float | None = None
    history: float | None = None
    min_history: float | None = None
    min_count: int | None = None
    deviation: float | None = None
    top: str | None = None
    lateness: float | None = None
    learning: float | None = None
    expire: float | None = None
    dedup: float | None = None
    dedup_key: tuple[str, ...] | None = None
    threshold: int | None = None
    window: float | None = None
    tags: tuple[str, ...] | None = None
    author: str | None = None
    source: str | None = None
    sigma_id: str | None = None
    license: str | None = None

    def __post_init__(self) -> None:
        self.name = self.name or Path(self.path).stem

    @property
    def values(self) -> Mapping[str, Any]:
        """The header as key -> value, for the keys that have one; read-only (set the
        attributes)."""
        return MappingProxyType(
            {key: getattr(self, key) for key in KEYS if getattr(self, key) is not None}
        )

    def position(self, offset: int) -> tuple[int, int]:
        """(line, col), 1-based, of a character offset into the query."""
        absolute = self.sql_offset + offset
        before = self.text[:absolute]
        return before.count("\n") + 1, absolute - (before.rfind("\n") + 1) + 1


def read_rule(path: str | os.PathLike[str]) -> tuple[Rule, list[Problem]]:
    """Read a rule file; the problems of its header, if any, come with it."""
    shown = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return Rule(shown), [Problem(shown, 1, 1, f"cannot read the rule file: {exc}")]
    rule = Rule(shown, text=text)
    problems: list[Problem] = []
    start = len(text) - len(text.lstrip())
    if not text.startswith("/*", start):
        line = text[:start].count("\n") + 1
        problems.append(Problem(shown, line, 1, "a rule starts with its /* ... */ header"))
        return rule, problems
    end = text.find("*/", start)
    if end < 0:
        problems.append(Problem(shown, 1, 1, "the /* header is never closed with */"))
        return rule, problems
    _read_header(rule, text, start + 2, end, problems)
    body_start = end + 2
    body = text[body_start:]
    stripped = body.rstrip().rstrip(";").rstrip()
    rule.sql_offset = body_start
    rule.sql = stripped
    if not stripped.strip():
        line = text[:body_start].count("\n") + 1
        problems.append(Problem(shown, line, 1, "no query after the header"))
    _check_required(rule, problems)
    return rule, problems


def _col(text: str, offset: int) -> int:
    return offset - (text.rfind("\n", 0, offset) + 1) + 1


def _read_header(rule: Rule, text: str, begin: int, end: int, problems: list[Problem]) -> None:
    seen: dict[str, int] = {}
    offset = begin
    for raw in text[begin:end].split("\n"):
        segment, offset = offset, offset + len(raw) + 1
        content = raw.strip()
        if not content:
            continue
        at = segment + raw.index(content[0])
        line = text.count("\n", 0, at) + 1
        where = (rule.path, line, _col(text, at))
        key, sep, value = content.partition(":")
        key = key.strip()
        if not sep:
            problems.append(Problem(*where, f"expected 'key: value', got {content[:60]!r}"))
            continue
        definition = KEYS.get(key)
        if definition is None:
            hint = difflib.get_close_matches(key, list(KEYS), n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            problems.append(Problem(*where, f"unknown header key '{key}'{suggestion}"))
            continue
        if key in seen:
            problems.append(Problem(*where, f"'{key}' given twice (first on line {seen[key]})"))
            continue
        seen[key] = line
        rule.given.add(key)
        value_at = at + content.index(":") + 1 + (len(value) - len(value.lstrip()))
        try:
            setattr(rule, key, definition.parse(value.strip()))
        except BadValue as exc:
            problems.append(
                Problem(rule.path, line, _col(text, value_at), f"{key}: {value.strip()!r}: {exc}")
            )


def _check_required(rule: Rule, problems: list[Problem]) -> None:
    kind = rule.kind
    for key in KEYS.values():
        if key.name not in rule.given and (key.required == KINDS or kind in key.required):
            problems.append(Problem(rule.path, 1, 1, f"the header has no '{key.name}'"))
        elif key.name in rule.given and kind and kind not in key.kinds:
            problems.append(
                Problem(rule.path, 1, 1, f"'{key.name}' does not apply to a rule of kind {kind}")
            )
    if "name" in rule.given and rule.name != Path(rule.path).stem:
        problems.append(
            Problem(
                rule.path,
                1,
                1,
                f"name '{rule.name}' differs from the file name "
                f"'{Path(rule.path).stem}' (rename one of them)",
            )
        )
    if rule.threshold is not None and rule.window is None:
        problems.append(Problem(rule.path, 1, 1, "'threshold' needs a 'window'"))
    if kind == "baseline":
        _check_baseline(rule, problems)
    for key in KEYS.values():
        if getattr(rule, key.name) is None and key.default is not None and kind in key.kinds:
            setattr(rule, key.name, key.default)


def _check_baseline(rule: Rule, problems: list[Problem]) -> None:
    """Buckets that tile a UTC day (so they start on the hour or the day) and a history of
    at least two of them."""
    bucket = rule.bucket or KEYS["bucket"].default
    history = rule.history or KEYS["history"].default
    if bucket < 60 or (86400 % bucket and bucket % 86400):
        problems.append(
            Problem(
                rule.path,
                1,
                1,
                "bucket: use a length that divides a day "
                "(e.g. 5 minutes, 1 hour, 6 hours) or whole days",
            )
        )
    elif history < 2 * bucket:
        problems.append(Problem(rule.path, 1, 1, "history must hold at least two buckets"))
