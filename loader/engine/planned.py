"""What a plan is made of: each rule's place in it, the lookups and shared expressions of the
fused pass, and the sqlglot helpers the planner and the sharing use (pure Python)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from loader.rules.model import Rule

FUSED, SOLO = "fused", "solo"
EVENTS = "cloudtrail"
NO_FUSE = "--no-fuse: every rule runs alone"
LOOKUP_PREFIX = "__tsa_lookup_"
SHARED_PREFIX = "__tsa_shared_"


@dataclass(frozen=True)
class Lookup:
    """An enrichment function over event columns, answered once per distinct argument."""

    column: str  # the column of the enriched events that holds the answer
    function: str
    arguments: tuple[str, ...]  # SQL over the events

    def describe(self) -> str:
        return f"{self.function}({', '.join(self.arguments)})"


@dataclass(frozen=True)
class Shared:
    """A sub-expression several fused rules compute, computed once per event."""

    column: str
    sql: str  # over the enriched events
    guard: str  # computed only where this holds: some rule using it can match
    rules: tuple[str, ...]


@dataclass
class RulePlan:
    """One rule's place in the plan."""

    rule: Rule
    group: str
    reason: str = ""  # solo: why
    condition: str = "TRUE"  # fused: its WHERE over the enriched events and shared columns
    filter: str = "TRUE"  # fused: its WHERE over the enriched events alone
    outputs: tuple[tuple[str, str], ...] = ()  # fused: (result column, SQL)
    query: str = ""  # solo: the query as run
    lookups: tuple[str, ...] = ()  # the lookup columns it reads
    sources: tuple[str, ...] = ()  # fused: the eventSource values it can match (): any
    guard: str | None = None  # fused: cheap SQL true wherever it can match (None: anywhere)
    names: tuple[str, ...] | None = None  # fused: the eventName values it can match (None: any)
    names_folded: bool = False  # names are lower case, compared with lower(eventName)

    @property
    def name(self) -> str:
        return self.rule.name

    @property
    def kind(self) -> str:
        return self.rule.kind or "alert"

    def output(self, column: str | None) -> str | None:
        """The SQL of the result column ``column`` (names match case-insensitively, as in
        Spark); None when there is no such column."""
        if column is None:
            return None
        return next((sql for name, sql in self.outputs if name.lower() == column.lower()), None)


def parse_sql(sql: str) -> Any:
    import sqlglot

    return sqlglot.parse_one(sql, read="spark")


def exp_module() -> Any:
    from sqlglot import exp

    return exp


def to_sql(node: Any) -> str:
    return node.sql(dialect="spark")


def mentions(text: str, column: str) -> bool:
    """Whether SQL ``text`` refers to the generated column ``column``."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(column)}(?![A-Za-z0-9_])", text) is not None
