"""The rule planner: which rules share one pass over the events, and what that pass computes.

A rule is *fused* when its query is a filter-project over ``cloudtrail``: one SELECT of named
expressions FROM cloudtrail with an optional WHERE, and nothing that relates events to each
other or changes how many rows an event gives (join, aggregate, window, DISTINCT, LIMIT,
generator, subquery, set operation, WITH, LATERAL VIEW). All fused rules, alerts and profiles
alike, are evaluated in one pass over a batch's events. Every other rule is *solo*: its query
runs as written, one Spark job each, and the plan says why.

Two rewrites make the pass cheaper without changing any result:

- **lookups**: ``geoip_*(x)``, ``is_tor_exit(x)`` and ``is_tor_exit_at(x, t)`` over event
  columns become columns joined to the events, computed once per distinct argument of a batch
  (:mod:`loader.engine.lookups`), in fused and solo rules alike;
- **shared sub-expressions**: a JSON path, regex or ``coalesce`` that fused rules compute more
  than once is computed once per event, and only for events where one of the rules using it
  can match (the rule's cheap conjuncts hold), so sharing never evaluates what no rule would.

Pure Python (sqlglot): ``--explain`` and the tests plan without a JVM.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
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


@dataclass
class Plan:
    rules: list[RulePlan]
    lookups: list[Lookup] = field(default_factory=list)
    shared: list[Shared] = field(default_factory=list)
    fuse: bool = True

    @property
    def fused(self) -> list[RulePlan]:
        return [r for r in self.rules if r.group == FUSED]

    @property
    def solo(self) -> list[RulePlan]:
        return [r for r in self.rules if r.group == SOLO]

    def without(self, names: Iterable[str]) -> Plan:
        """The same plan without the named rules (they failed at runtime)."""
        dropped = set(names)
        rules = [r for r in self.rules if r.name not in dropped]
        used = {c for r in rules for c in r.lookups}
        lookups = [lk for lk in self.lookups if lk.column in used]
        return Plan(rules, lookups, _reshare(rules, self.shared), self.fuse)

    def jobs(self) -> dict[str, int]:
        """The Spark jobs a batch of events costs, by what they do."""
        fused = self.fused
        jobs = {
            "enrichment lookups": len({lk.arguments[0] for lk in self.lookups})
            + any(lk.function == "is_tor_exit_at" for lk in self.lookups),
            "fused pass": 1 if fused else 0,
            "profile rows": 1 if any(r.kind == "profile" for r in fused) else 0,
            "solo rules": len(self.solo),
            "stateful step": 1 if self.rules else 0,
        }
        return {what: n for what, n in jobs.items() if n}

    def explain(self) -> str:
        """The plan as ``--explain`` prints it."""
        fused, solo = self.fused, self.solo
        jobs = self.jobs()
        lines = [
            f"plan: {len(self.rules)} rule(s): {len(fused)} fused in one pass over the events, "
            f"{len(solo)} alone",
            f"Spark jobs per batch of events: {sum(jobs.values())} ("
            + ", ".join(f"{what} {n}" for what, n in jobs.items())
            + ")",
        ]
        if self.lookups:
            lines += ["", "enrichment, once per distinct argument in a batch:"]
            lines += [f"  {lk.describe()}" for lk in self.lookups]
        if self.shared:
            lines += [
                "",
                "shared sub-expressions, computed once per event where a rule needs them:",
            ]
            lines += [f"  {s.sql}  (rules: {', '.join(s.rules)})" for s in self.shared]
        if fused:
            lines += ["", f"fused ({len(fused)}): one pass, each condition once per event"]
            lines += [f"  {_describe(r)}" for r in fused]
        if solo:
            lines += ["", f"solo ({len(solo)}): one Spark job each"]
            lines += [f"  {_describe(r)}: {r.reason}" for r in solo]
        stateful = [r for r in self.rules if _stateful(r.rule)]
        if stateful:
            kinds = sorted({_semantics(r.rule) for r in stateful})
            lines += [
                "",
                f"stateful step ({', '.join(kinds)}): one grouped job for all "
                f"{len(stateful)} rule(s) that need it, by rule and key",
            ]
        return "\n".join(lines)


def _describe(plan: RulePlan) -> str:
    return f"{plan.kind:<7} {plan.name:<40} {plan.rule.path}"


def _semantics(rule: Rule) -> str:
    if rule.kind == "profile":
        return "profiles"
    if rule.kind == "baseline":
        return "baselines"
    return "thresholds" if rule.threshold else "dedup"


def _stateful(rule: Rule) -> bool:
    return rule.kind in ("profile", "baseline") or bool(rule.threshold or rule.dedup)


# --- planning ---------------------------------------------------------------------------------


def plan_rules(rules: Sequence[Rule], fuse: bool = True) -> Plan:
    """Plan ``rules`` (valid ones: see :func:`loader.rules.validate.load_valid_rules`).

    With ``fuse=False`` every rule is solo and runs exactly as written (UDFs called per row):
    the reference path that tests and bug reports compare with."""
    lookups = _Lookups()
    plans: list[RulePlan] = []
    fused_trees: list[tuple[RulePlan, Any, Any]] = []
    for rule in rules:
        tree = _parse(rule.sql)
        reason = NO_FUSE if not fuse else why_solo(tree)
        if reason:
            query = (_solo_query(tree, lookups) if fuse else None) or rule.sql
            used = tuple(sorted(c for c in lookups.columns if mentions(query, c))) if fuse else ()
            plans.append(RulePlan(rule, SOLO, reason, query=query, lookups=used))
            continue
        plan, where, outputs = _fused(rule, tree, lookups)
        plans.append(plan)
        fused_trees.append((plan, where, outputs))
    shared = _share(fused_trees)
    return Plan(plans, lookups.all(), shared, fuse)


def _parse(sql: str) -> Any:
    import sqlglot

    return sqlglot.parse_one(sql, read="spark")


def _exp() -> Any:
    from sqlglot import exp

    return exp


def _sql(node: Any) -> str:
    return node.sql(dialect="spark")


def why_solo(tree: Any) -> str:
    """Why a rule's query cannot join the fused pass ('' when it can)."""
    exp = _exp()
    if isinstance(tree, exp.SetOperation):
        return f"a set operation ({type(tree).__name__.upper()})"
    if not isinstance(tree, exp.Select):
        return "not a plain SELECT"
    if tree.args.get("with") or tree.args.get("with_"):
        return "a WITH clause"
    source = tree.args.get("from_")
    table = source.this if source is not None else None
    if table is None:
        return "no FROM cloudtrail"
    if not isinstance(table, exp.Table):
        return "reads a subquery in FROM"
    if table.name.lower() != EVENTS or table.args.get("db"):
        return f"reads {_sql(table)}, not the batch's events (cloudtrail)"
    checks = [
        (tree.args.get("joins"), "a join"),
        (tree.args.get("laterals"), "a LATERAL VIEW"),
        (table.args.get("sample"), "TABLESAMPLE"),
        (tree.args.get("group") or tree.args.get("having"), "GROUP BY"),
        (tree.args.get("distinct"), "SELECT DISTINCT"),
        (tree.args.get("limit") or tree.args.get("offset"), "LIMIT"),
        (tree.find(exp.Window), "a window function"),
        (tree.find(exp.AggFunc), "an aggregate function"),
        (any(s is not tree for s in tree.find_all(exp.Select)), "a subquery"),
        (tree.find(exp.Explode, exp.Posexplode, exp.Inline, exp.Unnest), "a generator (explode)"),
        (any(isinstance(e, exp.Star) for e in tree.expressions) or tree.find(exp.Star), "SELECT *"),
    ]
    for hit, reason in checks:
        if hit:
            return reason
    for item in tree.expressions:
        if not isinstance(item, exp.Alias) and not isinstance(item, exp.Column):
            return f"an unnamed expression in the SELECT list ({_sql(item)[:40]}): give it an alias"
    alias = table.alias_or_name.lower()
    for required in ("eventTime", "eventID"):
        item = next(
            (e for e in tree.expressions if e.alias_or_name.lower() == required.lower()), None
        )
        if item is None or not _is_event_column(item.unalias(), required, alias):
            return f"its {required} is not the event's own column"
    return ""


def _is_event_column(node: Any, name: str, alias: str) -> bool:
    exp = _exp()
    if not isinstance(node, exp.Column) or node.name.lower() != name.lower():
        return False
    return not node.table or node.table.lower() in (alias, EVENTS)


class _Lookups:
    """The lookup columns of a plan, one per function and argument list."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, tuple[str, ...]], Lookup] = {}

    @property
    def columns(self) -> list[str]:
        return [lk.column for lk in self._by_key.values()]

    def all(self) -> list[Lookup]:
        return list(self._by_key.values())

    def column(self, function: str, arguments: tuple[str, ...]) -> str:
        key = (function, arguments)
        if key not in self._by_key:
            name = f"{LOOKUP_PREFIX}{len(self._by_key)}_{function}"
            self._by_key[key] = Lookup(name, function, arguments)
        return self._by_key[key].column


def _lookup_calls(select: Any, lookups: _Lookups, alias: str) -> None:
    """Replace the enrichment calls of ``select`` whose arguments are event-level (columns of
    the events, no lambda variable) with their lookup columns."""
    from loader.rules.schema import event_columns
    from udfs import UDF_NAMES

    exp = _exp()
    known = event_columns()
    for call in list(select.find_all(exp.Anonymous)):
        function = call.name.lower()
        if function not in UDF_NAMES or call.find_ancestor(exp.Lambda) is not None:
            continue
        if function == "is_tor_exit_at" and len(call.expressions) != 2:
            continue
        if function != "is_tor_exit_at" and len(call.expressions) != 1:
            continue
        columns = list(call.find_all(exp.Column))
        if not columns or any(_head(c, alias).lower() not in known for c in columns):
            continue
        if _nested(call):
            continue
        arguments = tuple(_sql(_unqualified(a.copy(), alias)) for a in call.expressions)
        call.replace(exp.column(lookups.column(function, arguments)))


def _nested(call: Any) -> bool:
    """Whether an enrichment call has a function or subquery of its own inside (left alone)."""
    exp = _exp()
    return any(n is not call for n in call.find_all(exp.Anonymous, exp.Select))


def _head(column: Any, alias: str) -> str:
    parts = list(column.parts)
    if len(parts) > 1 and parts[0].name.lower() in (alias, EVENTS):
        parts = parts[1:]
    return parts[0].name


def _unqualified(tree: Any, alias: str) -> Any:
    """``tree`` with the events' table name or alias dropped from its column references
    (``c.userIdentity.arn`` -> ``userIdentity.arn``; deeper fields stay in their Dot nodes)."""
    exp = _exp()
    for column in list(tree.find_all(exp.Column)):
        parts = list(column.parts)
        if len(parts) > 1 and parts[0].name.lower() in (alias, EVENTS):
            rest = [part.copy() for part in parts[1:]]
            names = dict(zip(("this", "table", "db"), reversed(rest), strict=False))
            replacement = exp.Column(**names)
            if column is tree:  # a lone column: nothing above it to replace it in
                return replacement
            column.replace(replacement)
    return tree


def mentions(text: str, column: str) -> bool:
    """Whether SQL ``text`` refers to the generated column ``column``."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(column)}(?![A-Za-z0-9_])", text) is not None


def _solo_query(tree: Any, lookups: _Lookups) -> str | None:
    """A solo rule's query with its enrichment calls over event columns turned into lookups,
    where a SELECT reads the events directly (never with ``*``: it would also select the
    lookups); None when nothing was turned (the rule then runs exactly as written)."""
    exp = _exp()
    if tree.find(exp.Star):
        return None
    before = _sql(tree)
    for select in list(tree.find_all(exp.Select)):
        source = select.args.get("from_")
        table = source.this if source is not None else None
        reads_events = isinstance(table, exp.Table) and table.name.lower() == EVENTS
        if reads_events and not table.args.get("db") and not select.args.get("joins"):
            _lookup_calls(select, lookups, table.alias_or_name.lower())
    rewritten = _sql(tree)
    return None if rewritten == before else rewritten


def _fused(rule: Rule, tree: Any, lookups: _Lookups) -> tuple[RulePlan, Any, list[Any]]:
    exp = _exp()
    table = tree.args["from_"].this
    alias = table.alias_or_name.lower()
    _lookup_calls(tree, lookups, alias)
    tree = _unqualified(tree, alias)
    where = tree.args.get("where")
    condition = where.this if where is not None else exp.true()
    outputs = [(item.alias_or_name, item.unalias()) for item in tree.expressions]
    sources, names = _values(condition, "eventSource"), _values(condition, "eventName")
    used = tuple(sorted(c for c in lookups.columns if mentions(_sql(tree), c)))
    plan = RulePlan(
        rule,
        FUSED,
        condition=_sql(condition),
        filter=_sql(condition),
        outputs=tuple((name, _sql(node)) for name, node in outputs),
        lookups=used,
        sources=tuple(sorted(sources[0])) if sources is not None else (),
        names=tuple(sorted(names[0])) if names is not None else None,
        names_folded=names is not None and names[1],
        guard=_guard(condition),
    )
    return plan, condition, [node for _, node in outputs]


# --- shared sub-expressions -------------------------------------------------------------------

# What may be shared: expressions that are deterministic and never raise an error, so computing
# one for an event where the rule would not have (its other conjuncts false) changes nothing.
_COSTLY = ("JSONExtractScalar", "FromJson", "RegexpLike", "Like", "ILike")
_SAFE = {
    "Column", "Identifier", "Literal", "Dot", "Paren", "Null", "Boolean", "DataType",
    "JSONPath", "JSONPathRoot", "JSONPathKey", "JSONPathSubscript", "JSONPathWildcard",
    "JSONExtractScalar", "FromJson", "RegexpLike", "Like", "ILike", "Lower", "Upper",
    "Coalesce", "Nullif", "Concat", "ConcatWs", "Trim",
}  # fmt: skip
# What a guard may hold: cheap tests on columns (no JSON, no regex, no function of a row's text)
_CHEAP = {
    "Column", "Identifier", "Literal", "Dot", "Paren", "Null", "Boolean", "Tuple",
    "EQ", "NEQ", "GT", "GTE", "LT", "LTE", "In", "Is", "Not", "And", "Or", "Like",
    "Coalesce", "Nullif", "Lower",
}  # fmt: skip


def _kinds(node: Any) -> set[str]:
    return {type(n).__name__ for n in node.walk()}


def _shareable(node: Any) -> bool:
    exp = _exp()
    if isinstance(node, exp.Column | exp.Literal | exp.Paren | exp.Identifier):
        return False
    if node.find_ancestor(exp.Lambda) is not None or not _kinds(node) <= _SAFE:
        return False
    columns = sum(1 for _ in node.find_all(exp.Column))
    if not columns:
        return False
    return _costly(node) or (
        isinstance(node, exp.Coalesce | exp.Nullif | exp.Concat | exp.ConcatWs) and columns >= 2
    )


def _values(node: Any, column: str) -> tuple[frozenset[str], bool] | None:
    """The literal values ``column`` must have wherever ``node`` is TRUE, and whether they
    are compared in lower case, or None when ``node`` does not say (string equality is exact in
    Spark, so ``eventName = 'X'`` allows only 'X', and ``lower(eventName) = 'x'`` only the
    names whose lower case is 'x': Sigma's rules compare so; an AND narrows, an OR widens)."""
    exp = _exp()
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        left, right = _values(node.left, column), _values(node.right, column)
        if left is None or right is None:
            return left if right is None else right
        if left[1] == right[1]:
            return left[0] & right[0], left[1]
        exact, folded = (left, right) if right[1] else (right, left)
        return frozenset(n for n in exact[0] if n.lower() in folded[0]), False
    if isinstance(node, exp.Or):
        left, right = _values(node.left, column), _values(node.right, column)
        if left is None or right is None:
            return None
        if left[1] == right[1]:
            return left[0] | right[0], left[1]
        return frozenset(n.lower() for n in left[0] | right[0]), True
    target = node.this if isinstance(node, exp.EQ | exp.In) else None
    folded = isinstance(target, exp.Lower)
    if folded:
        target = target.this
    if not isinstance(target, exp.Column) or target.table or target.name != column:
        return None
    values = [node.expression] if isinstance(node, exp.EQ) else node.expressions
    if node.args.get("query") or not all(
        isinstance(v, exp.Literal) and v.is_string for v in values
    ):
        return None
    return frozenset(v.this.lower() if folded else v.this for v in values), folded


def _costly(node: Any) -> bool:
    return any(type(n).__name__ in _COSTLY for n in node.walk())


def _conjuncts(node: Any) -> list[Any]:
    exp = _exp()
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return _conjuncts(node.left) + _conjuncts(node.right)
    return [node]


def _share(fused: list[tuple[RulePlan, Any, list[Any]]]) -> list[Shared]:
    """Find the sub-expressions fused rules compute more than once, largest first, and make
    each a column; the rules' conditions and outputs then read the column."""
    exp = _exp()
    roots = {id(plan): [where, *outputs] for plan, where, outputs in fused}
    chosen: list[tuple[str, Any, list[str]]] = []
    while True:
        uses: dict[str, list[tuple[RulePlan, Any]]] = {}
        for plan, _, _ in fused:
            for root in roots[id(plan)]:
                for node in root.walk():
                    if _shareable(node):
                        uses.setdefault(_sql(node), []).append((plan, node))
        repeated = [(sql, found) for sql, found in uses.items() if len(found) >= 2]
        if not repeated:
            break
        sql, found = max(repeated, key=lambda item: (len(item[0]), len(item[1])))
        column = f"{SHARED_PREFIX}{len(chosen)}"
        names = []
        for plan, node in found:
            replacement = exp.column(column)
            roots[id(plan)] = [replacement if root is node else root for root in roots[id(plan)]]
            if node.parent is not None:
                node.replace(replacement)
            if plan.name not in names:
                names.append(plan.name)
        chosen.append((column, _parse_expression(sql), names))
    by_name = {plan.name: plan for plan, _, _ in fused}
    shared = []
    for plan, _, _ in fused:
        where, *outputs = roots[id(plan)]
        plan.condition = _sql(where)
        pairs = zip(plan.outputs, outputs, strict=True)
        plan.outputs = tuple((name, _sql(node)) for (name, _), node in pairs)
    for column, node, names in chosen:
        # a cheap expression (a coalesce of two fields) costs less than its guard would
        guards = [by_name[name].guard for name in names]
        if not _costly(node) or any(g is None for g in guards):
            guard = "TRUE"
        else:
            guard = " OR ".join(f"({g})" for g in dict.fromkeys(guards))
        shared.append(Shared(column, _sql(node), guard, tuple(names)))
    return shared


def _parse_expression(sql: str) -> Any:
    import sqlglot

    return sqlglot.parse_one(sql, read="spark")


def _guard(condition: Any) -> str | None:
    """A cheap condition that holds wherever ``condition`` does (None: it can hold anywhere,
    as far as cheap tests tell): where the guard does not hold, the rule cannot match,
    whatever its costly parts say."""
    guard = _necessary(condition)
    return None if guard is None else _sql(guard)


def _necessary(node: Any) -> Any | None:
    """A cheap expression TRUE wherever ``node`` is TRUE (NULL and FALSE both mean "no
    match"): an AND needs each side's guard, an OR either side's; a cheap test is its own."""
    exp = _exp()
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        sides = [g for g in (_necessary(node.left), _necessary(node.right)) if g is not None]
        if not sides:
            return None
        return sides[0] if len(sides) == 1 else exp.and_(*sides, wrap=True)
    if isinstance(node, exp.Or):
        left, right = _necessary(node.left), _necessary(node.right)
        return None if left is None or right is None else exp.or_(left, right, wrap=True)
    shared = any(c.name.startswith(SHARED_PREFIX) for c in node.find_all(exp.Column))
    if _kinds(node) <= _CHEAP and not shared and node.find(exp.Column) is not None:
        return node.copy()
    return None


def _reshare(rules: list[RulePlan], shared: list[Shared]) -> list[Shared]:
    """The shared columns still read by ``rules`` (guards keep their rules' terms: a guard
    naming a dropped rule only computes a column where it is not needed)."""
    text = " ".join(r.condition + " " + " ".join(sql for _, sql in r.outputs) for r in rules)
    return [s for s in shared if mentions(text, s.column)]
