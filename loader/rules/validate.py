"""Rule validation without a JVM: sqlglot parses the query (Spark dialect) and every relation,
column, nested field and function is checked against what exists, with a hint for typos."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from loader.rules.errors import Problem
from loader.rules.keys import ACCOUNT_COLUMNS
from loader.rules.model import Rule, read_rule
from loader.rules.schema import event_columns, known_functions

EVENTS = "cloudtrail"
SQL = Path(__file__).resolve().parents[2] / "sql"
BUNDLED = (SQL / "alerts", SQL / "profiles", SQL / "baselines")
REQUIRED_OUTPUT = ("eventTime", "eventID")  # the event an alert points to


def _hint(name: str, candidates: Iterable[str]) -> str:
    pool = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(name.lower(), list(pool), n=1, cutoff=0.6)
    return f" (did you mean '{pool[match[0]]}'?)" if match else ""


class _Checker:
    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.problems: list[Problem] = []

    def at(self, node: Any, message: str) -> None:
        start = node.meta.get("start") if node is not None else None
        if start is None and node is not None:
            ident = next((i for i in node.find_all(_exp().Identifier) if "start" in i.meta), None)
            start = ident.meta["start"] if ident is not None else None
        line, col = self.rule.position(start) if start is not None else (1, 1)
        self.problems.append(Problem(self.rule.path, line, col, message))

    def at_start(self, message: str) -> None:
        """A problem of the whole query, placed at its first word."""
        offset = len(self.rule.sql) - len(self.rule.sql.lstrip())
        self.problems.append(Problem(self.rule.path, *self.rule.position(offset), message))

    def parse(self) -> Any:
        import sqlglot
        from sqlglot.errors import ParseError, TokenError

        try:
            statements = [s for s in sqlglot.parse(self.rule.sql, read="spark") if s is not None]
        except ParseError as exc:
            for error in exc.errors[:3]:
                near = error.get("highlight") or ""
                # sqlglot places an error at the end of the offending token: point at its start
                col = error.get("col", 1) - max(len(near) - 1, 0)
                line, col = self._sql_position(error.get("line", 1), col)
                text = error.get("description", "syntax error")
                self.problems.append(
                    Problem(
                        self.rule.path,
                        line,
                        col,
                        f"SQL syntax: {text}" + (f" near {near!r}" if near else ""),
                    )
                )
            return None
        except TokenError as exc:
            self.problems.append(
                Problem(self.rule.path, *self._sql_position(1, 1), f"SQL syntax: {exc}")
            )
            return None
        if len(statements) != 1:
            self._at_second_statement()
            return None
        tree = statements[0]
        if not isinstance(tree, _exp().Query):
            self.at(tree, "a rule is a SELECT query (no DDL or DML)")
            return None
        return tree

    def _at_second_statement(self) -> None:
        from sqlglot.dialects.spark import Spark
        from sqlglot.tokens import TokenType

        tokens = Spark().tokenize(self.rule.sql)
        semicolon = next((t for t in tokens if t.token_type == TokenType.SEMICOLON), None)
        offset = semicolon.start if semicolon is not None else 0
        self.problems.append(
            Problem(
                self.rule.path,
                *self.rule.position(offset),
                "a rule holds exactly one query: remove what follows this ';'",
            )
        )

    def _sql_position(self, line: int, col: int) -> tuple[int, int]:
        lines = self.rule.sql.split("\n")
        offset = sum(len(text) + 1 for text in lines[: max(line - 1, 0)]) + max(col - 1, 0)
        return self.rule.position(min(offset, len(self.rule.sql)))


def _exp() -> Any:
    from sqlglot import exp

    return exp


def _local_names(tree: Any) -> tuple[set[str], set[str]]:
    """(relation names and aliases other than the events, column names the query defines)."""
    exp = _exp()
    relations: set[str] = set()
    columns: set[str] = set()
    for cte in tree.find_all(exp.CTE):
        relations.add(cte.alias_or_name.lower())
        columns.update(n.lower() for n in cte.this.named_selects)
    for alias in tree.find_all(exp.TableAlias):
        if alias.name:
            relations.add(alias.name.lower())
        columns.update(c.name.lower() for c in alias.columns)
    for node in tree.find_all(exp.Alias):
        columns.add(node.alias.lower())
    for lam in tree.find_all(exp.Lambda):
        columns.update(e.name.lower() for e in lam.expressions)
    for lateral in tree.find_all(exp.Lateral):
        alias = lateral.args.get("alias")
        if alias is not None:
            relations.add(alias.name.lower())
            columns.update(c.name.lower() for c in alias.columns)
    for subquery in tree.find_all(exp.Subquery):
        columns.update(n.lower() for n in subquery.this.named_selects)
    return relations, columns


def _check_relations(checker: _Checker, tree: Any, ctes: set[str]) -> None:
    for table in tree.find_all(_exp().Table):
        name = table.name.lower()
        if table.args.get("db"):
            checker.at(
                table.args["db"],
                f"rules read '{EVENTS}' without a database: drop '{table.args['db'].name}.'",
            )
        elif name != EVENTS and name not in ctes:
            hint = _hint(table.name, [EVENTS, *ctes])
            checker.at(table, f"unknown relation '{table.name}': rules read '{EVENTS}'{hint}")


def _check_functions(checker: _Checker, tree: Any) -> None:
    known = known_functions()
    for call in tree.find_all(_exp().Anonymous):
        name = call.name
        if name.lower() not in known:
            checker.at(call, f"unknown function '{name}'{_hint(name, known)}")


def _field_path(column: Any) -> list[Any]:
    """The identifiers of a column reference (``a.b.c.d`` parses as catalog.db.table.column)
    and of the struct fields accessed after it."""
    exp = _exp()
    parts = list(column.parts)
    node = column
    while isinstance(node.parent, exp.Dot) and node.parent.this is node:
        node = node.parent
        parts.append(node.expression)
    return parts


def _check_columns(checker: _Checker, tree: Any, relations: set[str], defined: set[str]) -> None:
    columns = event_columns()
    for column in tree.find_all(_exp().Column):
        parts = _field_path(column)
        if len(parts) > 1 and parts[0].name.lower() in relations | {EVENTS}:
            if parts[0].name.lower() != EVENTS and parts[1].name.lower() in defined:
                continue  # a column of a subquery or CTE
            parts = parts[1:]
        head = parts[0]
        name = head.name
        if name.lower() in columns:
            _check_fields(checker, columns[name.lower()][0], columns[name.lower()][1], parts[1:])
        elif name.lower() not in defined:
            candidates = [c[0] for c in columns.values()] + sorted(defined)
            checker.at(head, f"unknown column '{name}'{_hint(name, candidates)}")


def _check_fields(checker: _Checker, path: str, kind: Any, fields: list[Any]) -> None:
    for field in fields:
        if not isinstance(kind, dict):
            return  # arrays and JSON text: not checked further
        by_lower = {k.lower(): (k, v) for k, v in kind.items()}
        found = by_lower.get(field.name.lower())
        if found is None:
            checker.at(field, f"'{path}' has no field '{field.name}'{_hint(field.name, kind)}")
            return
        path, kind = f"{path}.{found[0]}", found[1]


def _check_outputs(checker: _Checker, tree: Any) -> None:
    rule = checker.rule
    if any(isinstance(e, _exp().Star) for e in getattr(tree, "expressions", [])):
        return
    outputs = {name.lower() for name in tree.named_selects}
    wanted = [(k, v) for k in ("entity", "value", "top") if isinstance(v := getattr(rule, k), str)]
    wanted += [("dedup_key", v) for v in rule.dedup_key or ()]
    wanted += [("required", v) for v in REQUIRED_OUTPUT]
    if (
        "scope" in rule.given
        and rule.scope == "account"
        and not any(c.lower() in outputs for c in ACCOUNT_COLUMNS)
    ):
        if rule.entity:
            checker.at_start("'scope' applies to a rule without 'entity': remove one of them")
        else:
            checker.at_start(
                "scope: account splits the rule by account, but the result has no column "
                f"{' or '.join(ACCOUNT_COLUMNS)}: add recipientAccountId to the SELECT list"
            )
    for key, column in wanted:
        if column.lower() not in outputs:
            why = "every alert points to its event" if key == "required" else f"'{key}' names it"
            checker.at_start(
                f"the result has no column '{column}' ({why}); add it to the SELECT list"
            )


def validate_rule(rule: Rule) -> list[Problem]:
    """Every problem of the rule's query (the header was checked when it was read)."""
    checker = _Checker(rule)
    if not rule.sql.strip():
        return []
    tree = checker.parse()
    if tree is None:
        return checker.problems
    relations, defined = _local_names(tree)
    ctes = {c.alias_or_name.lower() for c in tree.find_all(_exp().CTE)}
    _check_relations(checker, tree, ctes)
    _check_functions(checker, tree)
    _check_columns(checker, tree, relations, defined)
    _check_outputs(checker, tree)
    return checker.problems


def columns_used(rules: Iterable[Rule]) -> set[str] | None:
    """The event columns (lower case) the rules' queries read, so callers can drop the rest
    (``raw_json`` above all) before caching events; None when a query selects ``*``."""
    import sqlglot

    exp = _exp()
    columns = event_columns()
    used = {c.lower() for c in REQUIRED_OUTPUT}
    for rule in rules:
        tree = sqlglot.parse_one(rule.sql, read="spark")
        if any(True for _ in tree.find_all(exp.Star)):
            return None
        relations, _ = _local_names(tree)
        for column in tree.find_all(exp.Column):
            parts = _field_path(column)
            if len(parts) > 1 and parts[0].name.lower() in relations | {EVENTS}:
                parts = parts[1:]
            if parts[0].name.lower() in columns:
                used.add(parts[0].name.lower())
    return used


def rule_files(paths: Iterable[str]) -> list[Path]:
    """The .sql files named, or found under the folders named, in a stable order. A folder laid
    out as `sql/` is (`alerts/`, `profiles/` beside other SQL) stands for its rules alone, not
    its sample queries."""
    found: list[Path] = []
    for path in map(Path, paths):
        packs = [path / b.name for b in BUNDLED if (path / b.name).is_dir()]
        if path.is_dir() and packs:
            found += [f for folder in packs for f in sorted(folder.rglob("*.sql"))]
        elif path.is_dir():
            found += sorted(path.rglob("*.sql"))
        else:  # a file, or a path that does not exist (reported, not skipped)
            found.append(path)
    return found


def load_valid_rules(paths: Iterable[str] | None) -> list[Rule]:
    """The rules under ``paths`` (default: the bundled ones), refusing any problem.

    Raises:
        RuleError: every problem of every file, located.
    """
    from loader.rules.errors import RuleError

    rules, problems = load_rules(paths or [str(p) for p in BUNDLED])
    if problems:
        raise RuleError(problems)
    return rules


def load_rules(paths: Iterable[str]) -> tuple[list[Rule], list[Problem]]:
    """Read and validate every rule under ``paths``; names must be unique across them."""
    rules: list[Rule] = []
    problems: list[Problem] = []
    first: dict[str, str] = {}
    for path in rule_files(paths):
        if not path.exists():
            problems.append(Problem(str(path), 1, 1, "no such rule file or folder"))
            continue
        rule, header_problems = read_rule(path)
        problems += header_problems + validate_rule(rule)
        if rule.name in first:
            problems.append(
                Problem(
                    rule.path, 1, 1, f"rule name '{rule.name}' is also used by {first[rule.name]}"
                )
            )
        first.setdefault(rule.name, rule.path)
        rules.append(rule)
    return rules, problems
