"""The rule planner, without a JVM: which rules fuse and why the others do not, what `--explain`
prints for the bundled pack, the enrichment calls turned into per-argument lookups, and the
shared sub-expressions with their guards."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loader.cli import main
from loader.engine.plan import plan_rules, why_solo
from loader.engine.planned import FUSED, LOOKUP_PREFIX, NO_FUSE, SOLO
from loader.rules.model import read_rule
from loader.rules.validate import load_valid_rules

HEADER = "/*\nname: {name}\nkind: alert\nseverity: low\nentity: actor\ndescription: test\n*/\n"


def _rule(tmp_path: Path, name: str, sql: str):
    path = tmp_path / f"{name}.sql"
    path.write_text(HEADER.format(name=name) + sql)
    rule, problems = read_rule(path)
    assert not problems, problems
    return rule


def _tree(sql: str):
    import sqlglot

    return sqlglot.parse_one(sql, read="spark")


BASE = "SELECT eventTime, eventID, userIdentity.arn AS actor FROM cloudtrail"


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        (f"{BASE} WHERE eventName = 'X'", ""),
        (f"{BASE} c WHERE c.eventName = 'X'", ""),
        (f"{BASE} UNION ALL {BASE}", "a set operation (UNION)"),
        (f"WITH x AS ({BASE}) SELECT * FROM x", "a WITH clause"),
        (f"SELECT eventTime, eventID FROM ({BASE})", "reads a subquery in FROM"),
        (f"{BASE} JOIN other o ON o.id = eventID", "a join"),
        (f"{BASE} LATERAL VIEW explode(resources) r AS res", "a LATERAL VIEW"),
        (f"{BASE} GROUP BY eventTime, eventID, userIdentity.arn", "GROUP BY"),
        ("SELECT DISTINCT eventTime, eventID FROM cloudtrail", "SELECT DISTINCT"),
        (f"{BASE} LIMIT 5", "LIMIT"),
        ("SELECT eventTime, eventID, row_number() OVER (ORDER BY eventTime) AS n FROM cloudtrail",
         "a window function"),
        ("SELECT max(eventTime) AS eventTime, min(eventID) AS eventID FROM cloudtrail",
         "an aggregate function"),
        (f"{BASE} WHERE eventID IN (SELECT eventID FROM cloudtrail)", "a subquery"),
        ("SELECT eventTime, eventID, explode(resources) AS r FROM cloudtrail",
         "a generator (explode)"),
        ("SELECT * FROM cloudtrail", "SELECT *"),
        ("SELECT eventTime, eventID, upper(eventName) FROM cloudtrail",
         "an unnamed expression in the SELECT list (UPPER(eventName)): give it an alias"),
        ("SELECT eventTime + INTERVAL 1 HOUR AS eventTime, eventID FROM cloudtrail",
         "its eventTime is not the event's own column"),
        ("SELECT eventTime, requestID AS eventID FROM cloudtrail",
         "its eventID is not the event's own column"),
        ("SELECT eventTime, eventID FROM security.cloudtrail",
         "reads security.cloudtrail, not the batch's events (cloudtrail)"),
        ("SELECT current_timestamp() AS eventTime, 'x' AS eventID", "no FROM cloudtrail"),
    ],
)  # fmt: skip
def test_why_a_rule_is_solo(sql, reason):
    assert why_solo(_tree(sql)) == reason


def test_explain_lists_every_bundled_rule_in_exactly_one_group(capsys):
    rules = load_valid_rules([])
    assert main(["detect", "--explain"]) == 0
    out = capsys.readouterr().out
    listed = re.findall(r"^  (alert|profile|baseline) +(\S+) +(\S+?\.sql)(: .*)?$", out, flags=re.M)
    names = [name for _, name, _, _ in listed]
    assert sorted(names) == sorted(r.name for r in rules)  # each exactly once
    plan = plan_rules(rules)
    assert {p.name for p in plan.fused} | {p.name for p in plan.solo} == set(names)
    assert f"plan: {len(rules)} rule(s): {len(plan.fused)} fused in one pass" in out
    assert len(plan.fused) >= 40  # the pack is filter-projects, nearly all of it
    # solo rules say why, with their file
    solo = {name: why for _, name, _, why in listed if why}
    assert solo == {
        "console_login_brute_force": ": a set operation (UNION)",
        "secrets_bulk_read": ": a LATERAL VIEW",
    }
    jobs = plan.jobs()
    assert f"Spark jobs per batch of events: {sum(jobs.values())} (" in out
    assert jobs["fused pass"] == 1 and jobs["solo rules"] == 2 and jobs["stateful step"] == 1

    assert main(["run", "--explain", "--no-fuse"]) == 0
    out = capsys.readouterr().out
    assert (
        f"plan: {len(rules)} rule(s): 0 fused in one pass over the events, {len(rules)} alone"
        in out
    )
    assert out.count(f": {NO_FUSE}") == len(rules)


def test_enrichment_calls_become_one_lookup_per_function_and_argument(tmp_path):
    rules = [
        _rule(tmp_path, "a", "SELECT eventTime, eventID, userIdentity.arn AS actor, "
              "geoip_country(sourceIPAddress) AS country FROM cloudtrail "
              "WHERE geoip_country(sourceIPAddress) <> 'US'"),
        _rule(tmp_path, "b", "SELECT c.eventTime, c.eventID, c.userIdentity.arn AS actor "
              "FROM cloudtrail c WHERE is_tor_exit_at(c.sourceIPAddress, c.eventTime) "
              "AND geoip_country(c.sourceIPAddress) = 'SE'"),
        # a set operation: solo, its calls turned into lookups all the same
        _rule(tmp_path, "c", f"{BASE} WHERE geoip_asn(sourceIPAddress) = 1 UNION ALL "
              f"{BASE} WHERE is_tor_exit(sourceIPAddress)"),
        # an argument that is not an event column stays a call
        _rule(tmp_path, "d", "SELECT eventTime, eventID, userIdentity.arn AS actor "
              "FROM cloudtrail WHERE geoip_country(concat('1.2.3.', '4')) = 'US'"),
    ]  # fmt: skip
    plan = plan_rules(rules)
    described = [lk.describe() for lk in plan.lookups]
    assert described == [
        "geoip_country(sourceIPAddress)",
        "is_tor_exit_at(sourceIPAddress, eventTime)",
        "geoip_asn(sourceIPAddress)",
        "is_tor_exit(sourceIPAddress)",
    ]
    by_name = {p.name: p for p in plan.rules}
    country = plan.lookups[0].column
    assert country.startswith(LOOKUP_PREFIX)
    a, b, c, d = (by_name[n] for n in "abcd")
    assert a.group == b.group == d.group == FUSED and c.group == SOLO
    assert "GEOIP_COUNTRY(" not in a.condition.upper() and country in a.condition
    assert dict(a.outputs)["country"] == country
    assert b.lookups == tuple(sorted([country, plan.lookups[1].column]))
    assert "GEOIP_ASN(" not in c.query.upper() and "IS_TOR_EXIT(" not in c.query.upper()
    assert "GEOIP_COUNTRY(CONCAT(" in d.condition.upper() and not d.lookups
    # --no-fuse: the rules run as written, UDFs per row
    alone = plan_rules(rules, fuse=False)
    assert not alone.lookups and all(p.query == p.rule.sql for p in alone.rules)


def test_shared_sub_expressions_are_computed_once_under_their_rules_guards(tmp_path):
    path = "get_json_object(requestParameters, '$.bucketName')"
    rules = [
        _rule(tmp_path, "a", f"SELECT eventTime, eventID, userIdentity.arn AS actor, {path} AS b "
              f"FROM cloudtrail WHERE eventName = 'PutBucketAcl' AND {path} LIKE 'prod%'"),
        _rule(tmp_path, "b", "SELECT eventTime, eventID, userIdentity.arn AS actor "
              "FROM cloudtrail WHERE eventName IN ('DeleteBucket', 'PutBucketPolicy') "
              f"AND {path} = 'logs'"),
        _rule(tmp_path, "c", "SELECT eventTime, eventID, userIdentity.arn AS actor FROM cloudtrail "
              "WHERE eventSource = 's3.amazonaws.com' OR errorCode = 'AccessDenied'"),
    ]  # fmt: skip
    plan = plan_rules(rules)
    assert len(plan.shared) == 1
    shared = plan.shared[0]
    assert shared.rules == ("a", "b")
    assert shared.sql == "GET_JSON_OBJECT(requestParameters, '$.bucketName')"
    # computed only where a rule using it can match: the cheap eventName tests
    assert (
        shared.guard
        == "(eventName = 'PutBucketAcl') OR (eventName IN ('DeleteBucket', 'PutBucketPolicy'))"
    )
    a, b, c = plan.rules
    assert shared.column in a.condition and shared.column in dict(a.outputs)["b"]
    assert "GET_JSON_OBJECT" not in b.condition and "GET_JSON_OBJECT" in b.filter
    # the eventName values a rule can match: the fused pass reads only those events for it
    assert a.names == ("PutBucketAcl",) and b.names == ("DeleteBucket", "PutBucketPolicy")
    assert (
        c.names is None
        and c.guard == "eventSource = 's3.amazonaws.com' OR errorCode = 'AccessDenied'"
    )
    # a rule that fails at runtime is dropped: what only it shared goes with it
    assert plan.without(["a", "b"]).shared == []
    assert [s.column for s in plan.without(["a"]).shared] == [shared.column]


@pytest.mark.parametrize(
    ("where", "names", "folded"),
    [
        ("eventName = 'A'", ("A",), False),
        ("eventName IN ('A', 'B') AND errorCode IS NULL", ("A", "B"), False),
        ("eventName IN ('A', 'B') AND eventName = 'B'", ("B",), False),
        ("(eventName = 'A' AND x = 1) OR eventName = 'C'", ("A", "C"), False),
        ("eventName = 'A' OR errorCode = 'X'", None, False),  # the OR's right allows any name
        ("NOT eventName = 'A'", None, False),
        ("eventName LIKE 'Put%'", None, False),
        ("upper(eventName) = 'A'", None, False),  # not the column itself
        # Sigma's case-insensitive equality, as import-sigma writes it
        ("lower(eventName) = 'a'", ("a",), True),
        ("lower(eventName) IN ('a', 'b') AND errorCode IS NULL", ("a", "b"), True),
        ("lower(eventName) IN ('a', 'b') AND eventName = 'B'", ("B",), False),  # the exact one
        ("lower(eventName) = 'a' OR eventName = 'B'", ("a", "b"), True),
        ("lower(eventName) = 'a' AND lower(eventName) = 'b'", (), True),  # never
    ],
)
def test_the_event_names_a_rule_can_match(tmp_path, where, names, folded):
    rule = _rule(tmp_path, "r", f"{BASE} WHERE {where}".replace("x = 1", "eventVersion = '1'"))
    planned = plan_rules([rule]).rules[0]
    assert (planned.names, planned.names_folded) == (names, folded)


def test_the_prefilter_compares_folded_names_in_lower_case(tmp_path):
    from loader.engine.sql import _prefilter

    exact = _rule(tmp_path, "exact", f"{BASE} WHERE eventName = 'StopLogging'")
    folded = _rule(tmp_path, "folded", f"{BASE} WHERE lower(eventName) IN ('deletetrail', 'x')")
    anywhere = _rule(tmp_path, "anywhere", f"{BASE} WHERE errorCode = 'AccessDenied'")
    assert _prefilter(plan_rules([exact, folded, anywhere]).rules) == (
        "eventName IN ('StopLogging')\n"
        "     OR lower(eventName) IN ('deletetrail', 'x')\n"
        "     OR (errorCode = 'AccessDenied')"
    )
