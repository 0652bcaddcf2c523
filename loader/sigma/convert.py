"""Sigma rules to this project's rule files: pySigma reads them, :mod:`loader.sigma.backend`
writes their conditions, this module writes the header and the query.

A detection rule becomes an ``alert`` rule over `cloudtrail` with entity ``principal``. An
``event_count`` correlation (``gte``/``gt``) becomes an alert rule with ``threshold`` and
``window`` over the rules it references, its ``group-by`` fields as the entity; other
correlation types are skipped with the reason. Every rule keeps its attribution (``author``,
``source``, ``sigma_id``, ``license``) in its header, and so in every alert's ``details``:
the Detection Rule License asks that messages based on a rule's matches keep its author.

Loads pySigma (the ``[sigma]`` extra) when imported: the CLI imports it on demand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sigma.collection import SigmaCollection
from sigma.correlations import (
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.rule import SigmaRule

from loader.sigma.backend import SparkSQLBackend
from loader.sigma.fields import UnknownField, resolve
from loader.sigma.pipeline import cloudtrail_pipeline

DEFAULT_LICENSE = "DRL-1.1"  # SigmaHQ's rules; a rule's own `license` wins
COLUMNS = (
    "eventSource, eventName, errorCode, userAgent,\n"
    "       eventID, eventTime, sourceIPAddress, recipientAccountId, awsRegion"
)
_LEVELS = {"informational": "info", "low": "low", "medium": "medium", "high": "high",
           "critical": "critical"}  # fmt: skip
_TECHNIQUE = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$", re.IGNORECASE)


@dataclass
class Outcome:
    """What became of one Sigma rule (or of a file that held none)."""

    path: str  # the file, as shown
    title: str
    status: str  # converted, skipped or failed
    reason: str = ""
    name: str | None = None  # the rule file's name without .sql, when converted
    text: str | None = None  # the rule file


@dataclass(frozen=True)
class Options:
    source_url: str | None = None  # base URL the rules' paths are appended to, for `source`
    license: str = DEFAULT_LICENSE
    dedup: str | None = None  # a `dedup` for every converted rule (Sigma has none)


@dataclass
class _Loaded:
    path: Path
    shown: str
    source: str  # the `source` header value
    rules: list[Any]


def sigma_files(sources: list[str]) -> list[tuple[Path, str, str]]:
    """(file, path as shown, path relative to its SRC) for every .yml/.yaml under ``sources``
    (a file given by name is taken whatever its extension), in name order."""
    found = []
    for src in sources:
        root = Path(src)
        if root.is_dir():
            for path in sorted(p for p in root.rglob("*") if p.suffix in (".yml", ".yaml")):
                if path.is_file():
                    found.append((path, str(path), path.relative_to(root).as_posix()))
        else:
            found.append((root, str(root), root.name))
    return found


def convert_sources(sources: list[str], options: Options) -> list[Outcome]:
    """Every Sigma rule under ``sources`` converted, skipped or failed, in file order."""
    outcomes: list[Outcome] = []
    loaded: list[_Loaded] = []
    for path, shown, relative in sigma_files(sources):
        source = options.source_url.rstrip("/") + "/" + relative if options.source_url else shown
        try:
            text = path.read_text(encoding="utf-8")
            problem = _yaml_problem(text)
            if problem:
                outcomes.append(Outcome(shown, "", "failed", problem))
                continue
            if not _looks_like_sigma(text):  # a checkout's workflows, configs, test data
                outcomes.append(Outcome(shown, "", "skipped", "not a Sigma rule (no detection, "
                                        "correlation or filter)"))  # fmt: skip
                continue
            collection = SigmaCollection.from_yaml(
                text,
                collect_errors=True,
                source=SigmaRuleLocation(path),
                collect_filters=True,  # applied below, to the rules of every file
                resolve_references=False,  # a correlation may name a rule of another file
            )
        except (OSError, UnicodeDecodeError) as exc:
            outcomes.append(Outcome(shown, "", "failed", f"cannot read the file: {exc}"))
            continue
        except SigmaError as exc:
            outcomes.append(Outcome(shown, "", "failed", _reason(exc)))
            continue
        rules = [*collection.rules, *collection.filters]
        loaded.append(_Loaded(path, shown, source, rules))
    every = SigmaCollection(
        [rule for item in loaded for rule in item.rules], resolve_references=False
    )  # the filters are applied to the rules they name, in place
    unresolved: dict[int, str] = {}
    for rule in every.rules:
        if isinstance(rule, SigmaCorrelationRule):
            try:
                rule.resolve_rule_references(every)
            except SigmaError as exc:  # a rule it names is not among those imported
                unresolved[id(rule)] = _reason(exc)
    backend = SparkSQLBackend(cloudtrail_pipeline())
    for item in loaded:
        if not item.rules:
            outcomes.append(Outcome(item.shown, "", "skipped", "no Sigma rule in the file"))
        names = _names(item)
        for rule, name in zip(item.rules, names, strict=True):
            if id(rule) in unresolved:
                title = str(rule.title or "")
                outcomes.append(Outcome(item.shown, title, "failed", unresolved[id(rule)]))
            else:
                outcomes.append(_convert(rule, name, item, backend, options))
    return outcomes


def _yaml_problem(text: str) -> str | None:
    """What makes ``text`` invalid YAML, with where, or None."""
    import yaml

    try:
        list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        return f"not valid YAML{where}: {getattr(exc, 'problem', None) or exc}"
    return None


def _looks_like_sigma(text: str) -> bool:
    """Whether any YAML document of ``text`` is a Sigma rule, correlation or filter."""
    import yaml

    keys = {"detection", "correlation", "filter"}
    return any(isinstance(d, dict) and keys & set(d) for d in yaml.safe_load_all(text))


def _names(item: _Loaded) -> list[str]:
    stem = "sigma_" + re.sub(r"[^a-z0-9_]+", "_", item.path.stem.lower()).strip("_")
    if len(item.rules) == 1:
        return [stem]
    names = []
    for index, rule in enumerate(item.rules, 1):
        label = re.sub(r"[^a-z0-9_]+", "_", str(getattr(rule, "name", "") or "").lower())
        names.append(f"{stem}_{label.strip('_') or index}")
    return names


def _convert(
    rule: Any, name: str, item: _Loaded, backend: SparkSQLBackend, options: Options
) -> Outcome:
    title = str(getattr(rule, "title", "") or "")
    outcome = Outcome(item.shown, title, "failed")
    if getattr(rule, "errors", None):
        outcome.reason = "; ".join(_reason(e) for e in rule.errors)
        return outcome
    try:
        if isinstance(rule, SigmaCorrelationRule):
            text = _correlation(rule, name, item, backend, options)
        elif isinstance(rule, SigmaRule):
            skip = _logsource_problem(rule) or _not_generated(rule)
            if skip:
                outcome.status, outcome.reason = "skipped", skip
                return outcome
            condition = backend.condition_of(rule)
            text = _rule_file(rule, name, item, options, condition, "principal", "principal")
        else:  # a Sigma filter: pySigma has applied it to the rules it names
            outcome.status = "skipped"
            outcome.reason = "a Sigma filter: applied to the rules it names, not a rule itself"
            return outcome
    except _Skip as exc:
        outcome.status, outcome.reason = "skipped", str(exc)
        return outcome
    except SigmaError as exc:
        outcome.reason = _reason(exc)
        return outcome
    outcome.status, outcome.name, outcome.text = "converted", name, text
    return outcome


class _Skip(Exception):
    """A rule this importer does not convert, for the reason given."""


def _logsource_problem(rule: SigmaRule) -> str | None:
    logsource = rule.logsource
    product, service = (logsource.product or "").lower(), (logsource.service or "").lower()
    if product == "aws" and service == "cloudtrail":
        return None
    return (
        f"logsource is product {logsource.product or '-'} / service {logsource.service or '-'} "
        "(import-sigma converts product aws / service cloudtrail)"
    )


def _not_generated(rule: SigmaRule) -> str | None:
    if rule._output:
        return None
    return "used by a correlation rule only (it has no 'generate: true')"


def _correlation(
    rule: SigmaCorrelationRule, name: str, item: _Loaded, backend: SparkSQLBackend,
    options: Options,
) -> str:  # fmt: skip
    if rule.type is not SigmaCorrelationType.EVENT_COUNT:
        raise _Skip(
            f"a {rule.type.name.lower()} correlation (import-sigma converts event_count, "
            "as a threshold rule)"
        )
    op, count = rule.condition.op, rule.condition.count
    if op not in (SigmaCorrelationConditionOperator.GTE, SigmaCorrelationConditionOperator.GT):
        raise _Skip(f"an event_count correlation with '{op.name.lower()}' (only gte and gt alert)")
    if len(rule.aliases):
        raise _Skip("a correlation with field aliases")
    threshold = int(count) + (1 if op is SigmaCorrelationConditionOperator.GT else 0)
    authors = [rule.author] if rule.author else []
    parts = []
    for reference in rule.rules or []:
        base = reference.rule
        if not isinstance(base, SigmaRule):
            raise _Skip("a correlation over another correlation")
        problem = _logsource_problem(base)
        if problem:
            raise _Skip(f"it references '{reference.reference}', whose {problem}")
        parts.append(backend.condition_of(base))
        authors += [base.author] if base.author and base.author not in authors else []
    condition = parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"
    entity: str | None = None  # no group-by: all the events count together
    entity_sql = ""
    if rule.group_by:
        try:
            group = [resolve(f) for f in rule.group_by]
        except UnknownField as exc:
            raise SigmaError(f"group-by: {exc}") from exc
        scalars = [_scalar(f) for f in group]
        entity = "group_by"
        entity_sql = scalars[0] if len(scalars) == 1 else f"concat_ws('|', {', '.join(scalars)})"
    extra = {"threshold": str(threshold), "window": f"{int(rule.timespan.seconds)} seconds"}
    # the alerts come from the base rules' matches too: their authors are credited with it
    return _rule_file(rule, name, item, options, condition, entity_sql, entity, extra,
                      author="; ".join(authors))  # fmt: skip


def _scalar(field: Any) -> str:
    """One text per event for a group-by field (several values: joined with commas)."""
    if field.scalar is not None:
        return field.scalar if field.kind == "string" else f"CAST({field.scalar} AS STRING)"
    return f"array_join({field.values}, ',')"


def _rule_file(
    rule: Any, name: str, item: _Loaded, options: Options, condition: str, entity_sql: str,
    entity: str | None, extra: dict[str, str] | None = None, author: str | None = None,
) -> str:  # fmt: skip
    header = {
        "name": name,
        "kind": "alert",
        "description": _description(rule),
        "severity": _LEVELS.get(rule.level.name.lower(), "medium") if rule.level else "medium",
    }
    if entity:
        header["entity"] = entity
    if options.dedup:
        header["dedup"] = options.dedup
    header.update(extra or {})
    tags = [m.group(1).upper() for t in rule.tags or [] if (m := _TECHNIQUE.match(str(t)))]
    if tags:
        header["tags"] = ", ".join(dict.fromkeys(tags))
    header["author"] = _one_line(author or rule.author or "unknown")
    header["source"] = _one_line(item.source)
    if rule.id:
        header["sigma_id"] = str(rule.id)
    header["license"] = _one_line(getattr(rule, "license", None) or options.license)
    lines = ["/*", *(f"{key}: {value}" for key, value in header.items()), "*/"]
    select = f"SELECT principal,\n       {COLUMNS}"  # the cloudtrail view's column
    if entity and entity != "principal":
        select = f"SELECT {entity_sql} AS {entity},\n       " + select[len("SELECT ") :]
    where = "\n  AND ".join(_conjuncts(condition))
    return "\n".join(lines) + f"\n{select}\nFROM cloudtrail\nWHERE {where}\n"


def _description(rule: Any) -> str:
    title = _one_line(rule.title or "")
    text = _one_line(rule.description or "")
    return f"{title}: {text}" if text and text != title else title or "(untitled Sigma rule)"


def _one_line(text: Any) -> str:
    """A header value: one line, and never the end of the header comment."""
    if isinstance(text, (list, tuple)):
        text = ", ".join(str(t) for t in text)
    return " ".join(str(text).split()).replace("*/", "* /")


def _conjuncts(sql: str) -> list[str]:
    """``(a AND b AND c)`` as [a, b, c] (quotes and parentheses respected); anything else as
    it is. Only for layout: one condition per line."""
    if not (sql.startswith("(") and sql.endswith(")")):
        return [sql]
    parts, depth, quote, start, i = [], 0, False, 1, 0
    while i < len(sql):
        char = sql[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == "'":
                quote = False
        elif char == "'":
            quote = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0 and i != len(sql) - 1:
                return [sql]  # "(a) AND (b)": not one group
        elif depth == 1 and sql.startswith(" AND ", i):
            parts.append(sql[start:i])
            start = i + len(" AND ")
            i = start
            continue
        i += 1
    parts.append(sql[start:-1])
    return parts


def _reason(exc: BaseException) -> str:
    """pySigma's message, without the location it appends (the report names the file)."""
    text = str(exc.args[0]) if exc.args else str(exc)
    return " ".join(text.split())
