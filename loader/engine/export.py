"""`export --dialect athena`: every rule as an Athena (Trino) query, ready to schedule.

Each rule is parsed as Spark SQL by sqlglot, rewritten where Spark and Trino differ, and written
for Trino with unsupported constructs raising instead of passing through:

- ``get_json_object`` becomes ``json_extract_scalar``; ``from_json(get_json_object(x, p), T)``
  becomes ``TRY_CAST(json_extract(x, p) AS T)`` (Spark's text of an object or array is JSON);
- ``exists(array, x -> ...)`` becomes ``any_match``; ``m['key']`` on a map ``element_at``;
  ``LATERAL VIEW explode`` becomes ``CROSS JOIN UNNEST`` (sqlglot);
- a GeoIP or Tor function of an address becomes a LEFT JOIN against the exported enrichment
  table ``DATABASE.ip_enrichment`` (one row per address, as `enrich` writes it);
- a function with no Athena counterpart (``is_tor_exit_at``: the Tor list as it was at the
  event's time) makes the rule not portable, with the reason; it is not written.

An alert rule selects its events of the last ``--every`` period (a threshold rule: entities with
at least ``threshold`` events within ``window``). A profile becomes a "first seen" query: the
(entity, value) pairs whose first sighting in the history window (``expire``) falls in the last
period, once the entity (or the account-wide profile) has been learning for ``learning``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loader.errors import TsaError
from loader.tables.enrichment_ddl import ENRICHMENT_COLUMNS, ENRICHMENT_TABLE

if TYPE_CHECKING:
    from sqlglot import exp

    from loader.rules.model import Rule

ENRICHMENT_FUNCTIONS = {function: column for column, _, function in ENRICHMENT_COLUMNS}
NOT_PORTABLE = {
    "is_tor_exit_at": "is_tor_exit_at needs the Tor list as it was at each event's time; the "
    "exported enrichment table holds one list (is_tor). Keep this rule in Spark, or rewrite it "
    "with is_tor_exit",
}
DIALECTS = ("athena",)


@dataclass
class ExportedRule:
    name: str
    sql: str | None = None
    problems: list[str] = field(default_factory=list)
    joins: int = 0


@dataclass
class ExportReport:
    rules: list[ExportedRule]
    out: str | None = None

    @property
    def not_portable(self) -> list[ExportedRule]:
        return [rule for rule in self.rules if rule.sql is None]

    def render(self) -> str:
        written = [r for r in self.rules if r.sql is not None]
        lines = [f"exported {len(written)} of {len(self.rules)} rules for Athena"
                 + (f" to {self.out}" if self.out else "")]  # fmt: skip
        joined = [r.name for r in written if r.joins]
        if joined:
            lines.append(f"joined with {ENRICHMENT_TABLE} (export it too): {', '.join(joined)}")
        for rule in self.not_portable:
            lines.append(f"NOT PORTABLE {rule.name}: {'; '.join(rule.problems)}")
        return "\n".join(lines)


def _seconds(value: object) -> int:
    return int(float(value))  # type: ignore[arg-type]


def _rewrite(tree: exp.Expression, database: str, result: ExportedRule) -> exp.Expression:
    import sqlglot
    from sqlglot import exp

    for node in list(tree.find_all(exp.Anonymous)):
        name = node.name.lower()
        if name in NOT_PORTABLE:
            result.problems.append(NOT_PORTABLE[name])
    # from_json(get_json_object(x, p), T) -> TRY_CAST(json_extract(x, p) AS T)
    for node in list(tree.find_all(exp.FromJson)):
        inner, kind = node.this, node.expression.name
        target = exp.DataType.build(kind, dialect="spark")
        if isinstance(inner, exp.JSONExtractScalar):
            source = exp.JSONExtract(this=inner.this, expression=inner.expression)
        else:
            source = exp.Anonymous(this="json_parse", expressions=[inner])
        node.replace(exp.TryCast(this=source, to=target))
    for node in list(tree.find_all(exp.Exists)):
        if isinstance(node.expression, exp.Lambda):  # Spark's exists(array, x -> ...)
            node.replace(exp.Anonymous(this="any_match", expressions=[node.this, node.expression]))
    for node in list(tree.find_all(exp.Bracket)):
        keys = node.expressions
        if len(keys) == 1 and isinstance(keys[0], exp.Literal) and keys[0].is_string:
            node.replace(exp.Anonymous(this="element_at", expressions=[node.this, keys[0]]))
    for node in list(tree.find_all(exp.ConcatWs)):  # Spark casts its arguments to text
        first, *rest = node.expressions
        node.set("expressions", [first, *[exp.cast(e, "varchar") for e in rest]])
    # GeoIP/Tor functions -> LEFT JOIN the enrichment table, once per select and address
    aliases: dict[tuple[int, str], str] = {}
    for node in list(tree.find_all(exp.Anonymous)):
        column = ENRICHMENT_FUNCTIONS.get(node.name.lower())
        if column is None:
            continue
        select = node.find_ancestor(exp.Select)
        if select is None or len(node.expressions) != 1:
            result.problems.append(f"{node.name}(...) outside a SELECT or with other arguments")
            continue
        address = node.expressions[0].sql("trino")
        key = (id(select), address)
        if key not in aliases:
            aliases[key] = f"__ip{len(aliases) + 1}"
            on = f"{aliases[key]}.ip = {address}"
            select.join(
                f"{database}.{ENRICHMENT_TABLE} AS {aliases[key]}",
                on=on, join_type="left", copy=False, dialect="trino",
            )  # fmt: skip
            result.joins += 1
        node.replace(sqlglot.parse_one(f"{aliases[key]}.{column}", read="trino"))
    return tree


def _scheduled(rule: Rule, body: str, every: int) -> str:
    """The rule's events as the query to run every ``every`` seconds."""
    since = f"current_timestamp - INTERVAL '{every}' SECOND"
    if rule.kind == "alert" and rule.threshold:
        window = _seconds(rule.window)
        entity = rule.entity
        group = f"CAST({entity} AS varchar)" if entity else "'all'"
        return (
            f"WITH r AS (\n{body}\n)\nSELECT {group} AS entity, count(*) AS events, "
            "min(eventTime) AS first_event, max(eventTime) AS last_event\nFROM r\n"
            f"WHERE eventTime >= current_timestamp - INTERVAL '{window}' SECOND\n"
            f"GROUP BY 1\nHAVING count(*) >= {int(float(rule.threshold or 0))}\n"
            f"  AND max(eventTime) >= {since}"
        )
    if rule.kind == "alert":
        return f"SELECT *\nFROM (\n{body}\n) AS r\nWHERE eventTime >= {since}"
    if rule.kind == "baseline":
        return _baseline(rule, body, every)
    history, learning = _seconds(rule.expire), _seconds(rule.learning or 0)
    entity = rule.entity
    entity_sql = f"CAST({entity} AS varchar)" if entity else "'all'"
    return (
        f"WITH r AS (\n{body}\n),\n"
        f"h AS (SELECT *, {entity_sql} AS __entity, CAST({rule.value} AS varchar) AS __value"
        f" FROM r WHERE eventTime >= current_timestamp - INTERVAL '{history}' SECOND),\n"
        "firsts AS (SELECT __entity, __value, min(eventTime) AS first_seen FROM h "
        "WHERE __value IS NOT NULL GROUP BY 1, 2),\n"
        "starts AS (SELECT __entity, min(eventTime) AS learning_from FROM h GROUP BY 1)\n"
        "SELECT h.* FROM h\n"
        "JOIN firsts f ON f.__entity = h.__entity AND f.__value = h.__value "
        "AND f.first_seen = h.eventTime\n"
        "JOIN starts s ON s.__entity = h.__entity\n"
        f"WHERE f.first_seen >= {since}\n"
        f"  AND f.first_seen >= s.learning_from + INTERVAL '{learning}' SECOND"
    )


def _baseline(rule: Rule, body: str, every: int) -> str:
    """The buckets that closed (their end plus ``lateness``) in the last period, each against
    its entity's buckets within ``history`` before it, empty ones as zero from the entity's
    first row in that window: the same robust z-score as the engine (docs/rules.md), the
    entity's age measured within the window."""
    size, late = _seconds(rule.bucket), _seconds(rule.lateness)
    history, learning = _seconds(rule.history), _seconds(rule.min_history)
    entity = rule.entity or _account(rule)
    entity_sql = f"CAST({entity} AS varchar)" if entity else "'all'"
    span = history + size + late + every
    median = (
        "IF(cardinality({a}) = 0, 0e0, IF(cardinality({a}) % 2 = 1, "
        "CAST(element_at({a}, cardinality({a}) / 2 + 1) AS double), "
        "(element_at({a}, cardinality({a}) / 2) + "
        "element_at({a}, cardinality({a}) / 2 + 1)) / 2e0))"
    )
    return (
        f"WITH r AS (\n{body}\n),\n"
        f"c AS (SELECT {entity_sql} AS entity, "
        f"from_unixtime(floor(to_unixtime(eventTime) / {size}) * {size}) AS bucket_start, "
        "count(*) AS n FROM r "
        f"WHERE eventTime >= current_timestamp - INTERVAL '{span}' SECOND GROUP BY 1, 2),\n"
        "f AS (SELECT entity, min(bucket_start) AS first_bucket FROM c GROUP BY 1),\n"
        f"cur AS (SELECT * FROM c WHERE bucket_start + INTERVAL '{size + late}' SECOND "
        "<= current_timestamp "
        f"AND bucket_start + INTERVAL '{size + late}' SECOND > "
        f"current_timestamp - INTERVAL '{every}' SECOND),\n"
        "h AS (SELECT cur.entity, cur.bucket_start, cur.n, f.first_bucket, "
        "coalesce(array_agg(p.n) FILTER (WHERE p.n IS NOT NULL), ARRAY[]) AS active, "
        "CAST(date_diff('second', greatest(f.first_bucket, cur.bucket_start - "
        f"INTERVAL '{history}' SECOND), cur.bucket_start) / {size} AS integer) AS k\n"
        "FROM cur JOIN f ON f.entity = cur.entity LEFT JOIN c p ON p.entity = cur.entity "
        "AND p.bucket_start < cur.bucket_start "
        f"AND p.bucket_start >= cur.bucket_start - INTERVAL '{history}' SECOND\n"
        "GROUP BY cur.entity, cur.bucket_start, cur.n, f.first_bucket),\n"
        "s AS (SELECT entity, bucket_start, n, first_bucket, array_sort(concat(active, "
        "repeat(BIGINT '0', greatest(k - cardinality(active), 0)))) AS a FROM h),\n"
        f"m AS (SELECT *, {median.format(a='a')} AS median, "
        "IF(cardinality(a) = 0, 0, element_at(a, greatest(1, CAST(ceil(0.95e0 * cardinality(a)) "
        "AS integer)))) AS p95 FROM s),\n"
        "v AS (SELECT *, array_sort(transform(a, x -> abs(x - median))) AS deviations FROM m),\n"
        f"d AS (SELECT *, {median.format(a='deviations')} AS mad FROM v),\n"
        "z AS (SELECT *, greatest(1.4826e0 * mad, (p95 - median) / 1.645e0, sqrt(median), 1e0) "
        "AS spread FROM d)\n"
        "SELECT entity, bucket_start, n AS count, median, p95, mad, spread, "
        "(n - median) / spread AS deviation FROM z\n"
        f"WHERE n >= {int(rule.min_count or 0)}\n"
        f"  AND (n - median) / spread > {float(rule.deviation or 0)}\n"
        f"  AND bucket_start >= first_bucket + INTERVAL '{learning}' SECOND"
    )


def _account(rule: Rule) -> str | None:
    from loader.engine.sql import scope_column

    return scope_column(rule)


def export_rule(rule: Rule, database: str, every: int) -> ExportedRule:
    import sqlglot
    from sqlglot.errors import ErrorLevel, SqlglotError

    result = ExportedRule(rule.name)
    try:
        tree = sqlglot.parse_one(rule.sql.strip().rstrip(";"), read="spark")
        tree = _rewrite(tree, database, result)
        body = tree.sql("trino", pretty=True, unsupported_level=ErrorLevel.RAISE)
        body = _qualify_events(body, database)
        query = _scheduled(rule, body, every)
        sqlglot.parse_one(query, read="trino", error_level=ErrorLevel.RAISE)  # reads back
    except SqlglotError as exc:
        result.problems.append(f"{rule.path}: {str(exc).splitlines()[0]}")
        return result
    if result.problems:
        return result
    header = (
        f"-- {rule.name} ({rule.kind}, severity {rule.severity or 'medium'}), "
        f"exported from {os.path.basename(rule.path)} for Athena.\n"
        f"-- Schedule it every {every} seconds; each row is an alert.\n"
    )
    result.sql = header + query + "\n"
    return result


def _qualify_events(sql: str, database: str) -> str:
    """``FROM cloudtrail`` -> the Athena view in ``database``."""
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="trino")
    for table in tree.find_all(exp.Table):
        if table.name.lower() == "cloudtrail" and not table.db:
            table.set("db", exp.to_identifier(database))
    return tree.sql("trino", pretty=True)


def export_rules(rules: list[Rule], database: str, out: str | None, every: int) -> ExportReport:
    report = ExportReport([export_rule(rule, database, every) for rule in rules], out)
    if out:
        try:
            os.makedirs(out, exist_ok=True)
            for rule in report.rules:
                if rule.sql is not None:
                    with open(os.path.join(out, f"{rule.name}.sql"), "w", encoding="utf-8") as f:
                        f.write(rule.sql)
        except OSError as exc:
            raise TsaError(f"--out {out}: cannot write: {exc.strerror}") from exc
    return report
