"""Rule tests: a sibling ``NAME.test.json`` beside each rule, with cases of CloudTrail events
and how many alerts each case must raise, run by pytest and by ``python -m loader test-rules``.

    {"cases": [
      {"name": "root signs in", "alerts": 1, "events": [{...a CloudTrail event...}]},
      {"name": "an IAM user signs in", "alerts": 0, "events": [{...}]}
    ]}

A case may also list the alerts it expects exactly: ``"expect": [{"entity": "...",
"value": "..."}]``. A baseline's case needs weeks of history: an element of ``events`` may
stand for a series, ``{"repeat": {"times": 192, "every": "1 hour", "each": 3}, "event": {...}}``:
``each`` copies of the event (a second apart) every ``every`` from its eventTime, ``times``
times, their eventIDs suffixed ``-i-j``. Events go through the same typing as the
``cloudtrail`` view (they are stored as raw JSON and parsed by the view's SQL), so a rule sees
in a test what it sees in production. Unless GeoIP/Tor sources are given, the sample's
databases and Tor list are used: test events take their addresses from the sample's networks
(see docs/rules.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loader.engine.sql import SCOPE_MARK
from loader.rules.errors import Problem
from loader.rules.model import Rule

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SUFFIX = ".test.json"


@dataclass
class Case:
    name: str
    events: list[dict[str, Any]]
    alerts: int
    expect: list[dict[str, Any]] | None = None


@dataclass
class CaseResult:
    rule: str
    case: str
    passed: bool
    detail: str = ""


@dataclass
class TestReport:
    results: list[CaseResult] = field(default_factory=list)
    untested: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    def render(self) -> str:
        lines = [
            f"{'PASS' if r.passed else 'FAIL'} {r.rule}: {r.case}"
            + (f" ({r.detail})" if r.detail else "")
            for r in self.results
        ]
        lines += [f"NO TESTS {name}" for name in self.untested]
        lines.append(
            f"{len(self.results) - len(self.failed)} passed, {len(self.failed)} failed, "
            f"{len(self.untested)} rule(s) without tests"
        )
        return "\n".join(lines)


def sibling(rule: Rule) -> Path:
    path = Path(rule.path)
    return path.with_name(path.stem + SUFFIX)


def load_cases(path: Path) -> tuple[list[Case], list[Problem]]:
    """The cases of a test file; problems (bad JSON, missing keys) located in the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return [], [Problem(str(path), exc.lineno, exc.colno, f"invalid JSON: {exc.msg}")]
    cases, problems = [], []
    raw_cases = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(raw_cases, list) or not raw_cases:
        return [], [Problem(str(path), 1, 1, 'expected {"cases": [...]} with at least one case')]
    for number, raw in enumerate(raw_cases, 1):
        if not isinstance(raw, dict) or not isinstance(raw.get("events"), list):
            problems.append(Problem(str(path), 1, 1, f"case {number}: needs an 'events' list"))
            continue
        if not isinstance(raw.get("alerts"), int):
            problems.append(Problem(str(path), 1, 1, f"case {number}: needs 'alerts': a number"))
            continue
        name = str(raw.get("name") or f"case {number}")
        try:
            events = [e for item in raw["events"] for e in _expanded(item)]
        except ValueError as exc:
            problems.append(Problem(str(path), 1, 1, f"case {number} ({name}): {exc}"))
            continue
        cases.append(Case(name, events, raw["alerts"], raw.get("expect")))
    return cases, problems


MAX_SERIES = 100_000


def _expanded(item: Any) -> list[Any]:
    """An element of a case's events: an event, or a series of copies of one (``repeat``)."""
    import datetime as dt

    from loader.durations import parse_duration
    from loader.errors import ConfigError

    if not isinstance(item, dict) or "repeat" not in item:
        return [item]
    repeat, event = item.get("repeat"), item.get("event")
    if not isinstance(repeat, dict) or not isinstance(event, dict):
        raise ValueError('a series is {"repeat": {"times": N, "every": "1 hour", "each": K}, '
                         '"event": {...}}')  # fmt: skip
    times, each = repeat.get("times"), repeat.get("each", 1)
    if not isinstance(times, int) or not isinstance(each, int) or times < 1 or each < 1:
        raise ValueError("repeat: 'times' and 'each' must be whole numbers of at least 1")
    if times * each > MAX_SERIES:
        raise ValueError(f"repeat: at most {MAX_SERIES:,} events in a series")
    try:
        every = parse_duration(str(repeat.get("every", "1 hour")))
        start = dt.datetime.fromisoformat(str(event["eventTime"]).replace("Z", "+00:00"))
    except (ConfigError, KeyError, ValueError) as exc:
        raise ValueError(
            f"repeat: needs 'every' (a duration) and an event with eventTime: {exc}"
        ) from None
    start = start.replace(tzinfo=None)
    out = []
    for i in range(times):
        for j in range(each):
            moment = start + dt.timedelta(seconds=i * every + j)
            out.append({**event, "eventTime": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "eventID": f"{event.get('eventID', 'ev')}-{i}-{j}"})  # fmt: skip
    return out


def register_events(
    spark: SparkSession, events: list[dict[str, Any]], view: str = "cloudtrail"
) -> None:
    """Register ``events`` as the relation ``view``, typed exactly like the cloudtrail view."""
    from loader.tables.cloudtrail_ddl import events_query

    rows = []
    for index, event in enumerate(events):
        account = str(event.get("recipientAccountId") or "123456789012")
        region = str(event.get("awsRegion") or "us-east-1")
        day = str(event.get("eventTime") or "1970-01-01")[:10]
        rows.append(([json.dumps(event)], account, region, day, f"test-event-{index}.json"))
    schema = "Records array<string>, account string, region string, dt string, file_path string"
    spark.createDataFrame(rows, schema).createOrReplaceTempView("__rule_test_raw")
    spark.sql(events_query("__rule_test_raw", file_path="file_path")).createOrReplaceTempView(view)


def _check(rule: Rule, case: Case, alerts: list[dict[str, Any]]) -> CaseResult:
    got = [{"entity": a["entity"], "value": a["value"]} for a in alerts]
    if len(alerts) != case.alerts:
        detail = f"expected {case.alerts} alert(s), got {len(alerts)}: {got}"
        return CaseResult(rule.name, case.name, False, detail)
    if case.expect is not None:
        keys = sorted({key for expected in case.expect for key in expected})
        wanted = sorted(json.dumps({k: e.get(k) for k in keys}) for e in case.expect)
        found = sorted(json.dumps({k: a.get(k) for k in keys}, default=str) for a in alerts)
        if wanted != found:
            return CaseResult(rule.name, case.name, False, f"expected {case.expect}, got {got}")
    return CaseResult(rule.name, case.name, True)


def run_case(
    spark: SparkSession, rule: Rule, case: Case, fuse: bool = True, enrichment: Any = None
) -> CaseResult:
    """One case on its own: its events are the whole ``cloudtrail`` relation."""
    from loader.engine.evaluate import cache_events, evaluate
    from loader.engine.plan import plan_rules

    register_events(spark, case.events, view=CASE_VIEW)
    events, _ = cache_events(spark.table(CASE_VIEW), None)
    try:
        alerts = evaluate(plan_rules([rule], fuse), events, enrichment=enrichment).alerts
        return _check(rule, case, [a.asDict() for a in alerts.collect()])
    finally:
        events.unpersist()


# Cases run together are told apart by a prefix of their events' eventID: "rule.case§id".
# Profiles, thresholds and dedup are scoped by that prefix (the engine's ``scope``), so cases
# run together give what each gives alone, provided the rule's own query keeps one row per
# event.
_MARK = SCOPE_MARK
_SCOPE = f"substring_index(eventID, '{_MARK}', 1)"
CASE_VIEW = "__rule_test_events"


def _row_per_event(rule: Rule) -> bool:
    """Whether the rule's query maps events to rows one by one (no join, aggregate, window or
    DISTINCT that could mix events of different cases)."""
    import sqlglot
    from sqlglot import expressions as exp

    tree = sqlglot.parse_one(rule.sql, read="spark")
    mixing = (exp.Join, exp.Group, exp.AggFunc, exp.Window, exp.Distinct)
    return (
        not any(tree.find_all(*mixing))
        and sum(1 for table in tree.find_all(exp.Table) if table.name == "cloudtrail") == 1
    )


def _run_together(
    spark: SparkSession, batch: list[tuple[Rule, list[Case]]], fuse: bool, enrichment: Any
) -> list[CaseResult]:
    """Every case of every rule as one batch of events, through one plan."""
    from loader.engine.evaluate import cache_events, evaluate
    from loader.engine.plan import plan_rules

    events = []
    for r, (_, cases) in enumerate(batch):
        for c, case in enumerate(cases):
            for event in case.events:
                events.append({**event, "eventID": f"{r}.{c}{_MARK}{event['eventID']}"})
    register_events(spark, events, view=CASE_VIEW)
    cached, _ = cache_events(spark.table(CASE_VIEW), None)
    try:
        plan = plan_rules([rule for rule, _ in batch], fuse)
        evaluation = evaluate(plan, cached, scope=_SCOPE, enrichment=enrichment)
        by_case: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for alert in evaluation.alerts.collect():
            row = alert.asDict()
            case_id, _, row["event_id"] = (row["event_id"] or "").partition(_MARK)
            by_case.setdefault((row["rule"], case_id), []).append(row)
    finally:
        cached.unpersist()
    results = []
    for r, (rule, cases) in enumerate(batch):
        error = evaluation.errors.get(rule.name)
        for c, case in enumerate(cases):
            if error:
                results.append(CaseResult(rule.name, case.name, False, f"the rule failed: {error}"))
            else:
                results.append(_check(rule, case, by_case.get((rule.name, f"{r}.{c}"), [])))
    return results


def run_rule_tests(
    spark: SparkSession, rules: list[Rule], fuse: bool = True, enrichment: Any = None
) -> tuple[TestReport, list[Problem]]:
    """Every case of every rule. The cases of rules that keep one row per event (most) run
    together as one batch through one plan; the others run case by case."""
    report, problems = TestReport(), []
    together, alone = [], []
    for rule in rules:
        path = sibling(rule)
        if not path.exists():
            report.untested.append(rule.name)
            continue
        cases, case_problems = load_cases(path)
        problems += case_problems
        identified = all(isinstance(e.get("eventID"), str) for c in cases for e in c.events)
        (together if identified and _row_per_event(rule) else alone).append((rule, cases))
    try:
        if together:
            report.results += _run_together(spark, together, fuse, enrichment)
        for rule, cases in alone:
            report.results += [run_case(spark, rule, case, fuse, enrichment) for case in cases]
    finally:
        spark.catalog.dropTempView(CASE_VIEW)
    return report, problems
