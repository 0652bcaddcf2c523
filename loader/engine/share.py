"""Shared sub-expressions of the fused pass: a JSON path, regex or ``coalesce`` that fused rules
compute more than once is computed once per event, and only for events where one of the rules
using it can match (the rule's cheap conjuncts hold: its guard)."""

from __future__ import annotations

from typing import Any

from loader.engine.planned import (
    SHARED_PREFIX,
    RulePlan,
    Shared,
    exp_module,
    mentions,
    to_sql,
)

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
    exp = exp_module()
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


def values_of(node: Any, column: str) -> tuple[frozenset[str], bool] | None:
    """The literal values ``column`` must have wherever ``node`` is TRUE, and whether they
    are compared in lower case, or None when ``node`` does not say (string equality is exact in
    Spark, so ``eventName = 'X'`` allows only 'X', and ``lower(eventName) = 'x'`` only the
    names whose lower case is 'x': Sigma's rules compare so; an AND narrows, an OR widens)."""
    exp = exp_module()
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        left, right = values_of(node.left, column), values_of(node.right, column)
        if left is None or right is None:
            return left if right is None else right
        if left[1] == right[1]:
            return left[0] & right[0], left[1]
        exact, folded = (left, right) if right[1] else (right, left)
        return frozenset(n for n in exact[0] if n.lower() in folded[0]), False
    if isinstance(node, exp.Or):
        left, right = values_of(node.left, column), values_of(node.right, column)
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
    exp = exp_module()
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return _conjuncts(node.left) + _conjuncts(node.right)
    return [node]


def share(fused: list[tuple[RulePlan, Any, list[Any]]]) -> list[Shared]:
    """Find the sub-expressions fused rules compute more than once, largest first, and make
    each a column; the rules' conditions and outputs then read the column."""
    exp = exp_module()
    roots = {id(plan): [where, *outputs] for plan, where, outputs in fused}
    chosen: list[tuple[str, Any, list[str]]] = []
    while True:
        uses: dict[str, list[tuple[RulePlan, Any]]] = {}
        for plan, _, _ in fused:
            for root in roots[id(plan)]:
                for node in root.walk():
                    if _shareable(node):
                        uses.setdefault(to_sql(node), []).append((plan, node))
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
        plan.condition = to_sql(where)
        pairs = zip(plan.outputs, outputs, strict=True)
        plan.outputs = tuple((name, to_sql(node)) for (name, _), node in pairs)
    for column, node, names in chosen:
        # a cheap expression (a coalesce of two fields) costs less than its guard would
        guards = [by_name[name].guard for name in names]
        if not _costly(node) or any(g is None for g in guards):
            guard = "TRUE"
        else:
            guard = " OR ".join(f"({g})" for g in dict.fromkeys(guards))
        shared.append(Shared(column, to_sql(node), guard, tuple(names)))
    return shared


def _parse_expression(sql: str) -> Any:
    import sqlglot

    return sqlglot.parse_one(sql, read="spark")


def guard_of(condition: Any) -> str | None:
    """A cheap condition that holds wherever ``condition`` does (None: it can hold anywhere,
    as far as cheap tests tell): where the guard does not hold, the rule cannot match,
    whatever its costly parts say."""
    guard = _necessary(condition)
    return None if guard is None else to_sql(guard)


def _necessary(node: Any) -> Any | None:
    """A cheap expression TRUE wherever ``node`` is TRUE (NULL and FALSE both mean "no
    match"): an AND needs each side's guard, an OR either side's; a cheap test is its own."""
    exp = exp_module()
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


def reshare(rules: list[RulePlan], shared: list[Shared]) -> list[Shared]:
    """The shared columns still read by ``rules`` (guards keep their rules' terms: a guard
    naming a dropped rule only computes a column where it is not needed)."""
    text = " ".join(r.condition + " " + " ".join(sql for _, sql in r.outputs) for r in rules)
    return [s for s in shared if mentions(text, s.column)]
