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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from loader.engine.planned import (
    EVENTS,
    FUSED,
    LOOKUP_PREFIX,
    NO_FUSE,
    SOLO,
    Lookup,
    RulePlan,
    Shared,
    exp_module,
    mentions,
    parse_sql,
    to_sql,
)
from loader.engine.share import guard_of, reshare, share, values_of
from loader.rules.model import Rule


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
        return Plan(rules, lookups, reshare(rules, self.shared), self.fuse)

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
        tree = parse_sql(rule.sql)
        reason = NO_FUSE if not fuse else why_solo(tree)
        if reason:
            query = (_solo_query(tree, lookups) if fuse else None) or rule.sql
            used = tuple(sorted(c for c in lookups.columns if mentions(query, c))) if fuse else ()
            plans.append(RulePlan(rule, SOLO, reason, query=query, lookups=used))
            continue
        plan, where, outputs = _fused(rule, tree, lookups)
        plans.append(plan)
        fused_trees.append((plan, where, outputs))
    shared = share(fused_trees)
    return Plan(plans, lookups.all(), shared, fuse)


def why_solo(tree: Any) -> str:
    """Why a rule's query cannot join the fused pass ('' when it can)."""
    exp = exp_module()
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
        return f"reads {to_sql(table)}, not the batch's events (cloudtrail)"
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
            return (
                f"an unnamed expression in the SELECT list ({to_sql(item)[:40]}): give it an alias"
            )
    alias = table.alias_or_name.lower()
    for required in ("eventTime", "eventID"):
        item = next(
            (e for e in tree.expressions if e.alias_or_name.lower() == required.lower()), None
        )
        if item is None or not _is_event_column(item.unalias(), required, alias):
            return f"its {required} is not the event's own column"
    return ""


def _is_event_column(node: Any, name: str, alias: str) -> bool:
    exp = exp_module()
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

    exp = exp_module()
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
        arguments = tuple(to_sql(_unqualified(a.copy(), alias)) for a in call.expressions)
        call.replace(exp.column(lookups.column(function, arguments)))


def _nested(call: Any) -> bool:
    """Whether an enrichment call has a function or subquery of its own inside (left alone)."""
    exp = exp_module()
    return any(n is not call for n in call.find_all(exp.Anonymous, exp.Select))


def _head(column: Any, alias: str) -> str:
    parts = list(column.parts)
    if len(parts) > 1 and parts[0].name.lower() in (alias, EVENTS):
        parts = parts[1:]
    return parts[0].name


def _unqualified(tree: Any, alias: str) -> Any:
    """``tree`` with the events' table name or alias dropped from its column references
    (``c.userIdentity.arn`` -> ``userIdentity.arn``; deeper fields stay in their Dot nodes)."""
    exp = exp_module()
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


def _solo_query(tree: Any, lookups: _Lookups) -> str | None:
    """A solo rule's query with its enrichment calls over event columns turned into lookups,
    where a SELECT reads the events directly (never with ``*``: it would also select the
    lookups); None when nothing was turned (the rule then runs exactly as written)."""
    exp = exp_module()
    if tree.find(exp.Star):
        return None
    before = to_sql(tree)
    for select in list(tree.find_all(exp.Select)):
        source = select.args.get("from_")
        table = source.this if source is not None else None
        reads_events = isinstance(table, exp.Table) and table.name.lower() == EVENTS
        if reads_events and not table.args.get("db") and not select.args.get("joins"):
            _lookup_calls(select, lookups, table.alias_or_name.lower())
    rewritten = to_sql(tree)
    return None if rewritten == before else rewritten


def _fused(rule: Rule, tree: Any, lookups: _Lookups) -> tuple[RulePlan, Any, list[Any]]:
    exp = exp_module()
    table = tree.args["from_"].this
    alias = table.alias_or_name.lower()
    _lookup_calls(tree, lookups, alias)
    tree = _unqualified(tree, alias)
    where = tree.args.get("where")
    condition = where.this if where is not None else exp.true()
    outputs = [(item.alias_or_name, item.unalias()) for item in tree.expressions]
    sources, names = values_of(condition, "eventSource"), values_of(condition, "eventName")
    used = tuple(sorted(c for c in lookups.columns if mentions(to_sql(tree), c)))
    plan = RulePlan(
        rule,
        FUSED,
        condition=to_sql(condition),
        filter=to_sql(condition),
        outputs=tuple((name, to_sql(node)) for name, node in outputs),
        lookups=used,
        sources=tuple(sorted(sources[0])) if sources is not None else (),
        names=tuple(sorted(names[0])) if names is not None else None,
        names_folded=names is not None and names[1],
        guard=guard_of(condition),
    )
    return plan, condition, [node for _, node in outputs]
