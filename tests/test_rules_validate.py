"""`validate`: rule headers and queries checked without a JVM, every problem reported at its
exact path:line:col with a hint, all of them in one run."""

from __future__ import annotations

import time

import pytest

from loader.cli import main
from loader.rules.keys import KEYS
from loader.rules.validate import load_rules
from tests.conftest import REPO

HEADER = """/*
name: {name}
kind: profile
description: A principal acts from a country it has never acted from before.
severity: medium
entity: principal_arn
value: country
learning: 14 days
*/
"""
GOOD_BODY = """SELECT userIdentity.arn AS principal_arn,
       geoip_country(sourceIPAddress) AS country,
       eventID, eventTime
FROM cloudtrail
WHERE userIdentity.type IN ('IAMUser', 'AssumedRole')
"""


def _write(tmp_path, name: str, text: str):
    path = tmp_path / f"{name}.sql"
    path.write_text(text)
    return path


def _messages(*paths) -> list[str]:
    _, problems = load_rules([str(p) for p in paths])
    return [str(p) for p in sorted(problems)]


def test_a_good_rule_has_no_problem(tmp_path):
    path = _write(tmp_path, "new_country", HEADER.format(name="new_country") + GOOD_BODY)
    assert _messages(path) == []
    assert _messages(REPO / "tests" / "rules" / "complex_ok.sql") == []


@pytest.mark.parametrize(
    ("body", "line", "col", "message"),
    [
        (
            GOOD_BODY.replace("sourceIPAddress", "sourceIpAdress"),
            11, 22, "unknown column 'sourceIpAdress' (did you mean 'sourceIPAddress'?)",
        ),
        (
            GOOD_BODY.replace("geoip_country(", "geoip_contry("),
            11, 8, "unknown function 'geoip_contry' (did you mean 'geoip_country'?)",
        ),
        (
            GOOD_BODY.replace("userIdentity.type", "userIdentity.typ"),
            14, 20, "'userIdentity' has no field 'typ' (did you mean 'type'?)",
        ),
        (
            GOOD_BODY.replace("FROM cloudtrail", "FROM security.cloudtrail"),
            13, 6, "rules read 'cloudtrail' without a database: drop 'security.'",
        ),
        (
            GOOD_BODY.replace("IN ('IAMUser', 'AssumedRole')", "IN ('IAMUser'"),
            14, 29, "SQL syntax: Expecting ) near",
        ),
        (
            GOOD_BODY.replace("eventID, eventTime", "eventTime"),
            10, 1, "the result has no column 'eventID' (every alert points to its event)",
        ),
        (
            GOOD_BODY + "; DROP TABLE cloudtrail",
            15, 1, "a rule holds exactly one query: remove what follows this ';'",
        ),
    ],
)  # fmt: skip
def test_broken_query_gives_the_exact_location(tmp_path, body, line, col, message):
    path = _write(tmp_path, "new_country", HEADER.format(name="new_country") + body)
    found = _messages(path)
    assert len(found) == 1, found
    assert found[0].startswith(f"{path}:{line}:{col}: {message}"), found[0]


def test_header_problems_are_all_reported_with_their_place(tmp_path):
    text = HEADER.format(name="new_country").replace("severity: medium", "severity: urgent")
    text = text.replace("learning: 14 days", "learnin: 14 days\nexpire: soon")
    path = _write(tmp_path, "new_country", text + GOOD_BODY)
    assert _messages(path) == [
        f"{path}:5:11: severity: 'urgent': expected one of info, low, medium, high, critical",
        f"{path}:8:1: unknown header key 'learnin' (did you mean 'learning'?)",
        f"{path}:9:9: expire: 'soon': expected a duration such as 30m, 24 hours or 14 days",
    ]


def test_missing_keys_wrong_kind_and_name_mismatch(tmp_path):
    text = HEADER.format(name="other_name").replace("kind: profile", "kind: alert")
    path = _write(tmp_path, "new_country", text.replace("severity: medium\n", "") + GOOD_BODY)
    assert _messages(path) == [
        f"{path}:1:1: 'learning' does not apply to a rule of kind alert",
        f"{path}:1:1: 'value' does not apply to a rule of kind alert",
        f"{path}:1:1: name 'other_name' differs from the file name 'new_country' "
        "(rename one of them)",
        f"{path}:1:1: the header has no 'severity'",
    ]


def test_duplicate_names_across_folders(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _write(tmp_path / "a", "same", HEADER.format(name="same") + GOOD_BODY)
    second = _write(tmp_path / "b", "same", HEADER.format(name="same") + GOOD_BODY)
    assert _messages(tmp_path) == [
        f"{second}:1:1: rule name 'same' is also used by {first}",
    ]


def test_cli_reports_everything_and_exits_non_zero_fast(tmp_path, capsys):
    good = _write(tmp_path, "good", HEADER.format(name="good") + GOOD_BODY)
    bad = _write(
        tmp_path, "bad", HEADER.format(name="bad") + GOOD_BODY.replace("eventID", "eventId2")
    )
    started = time.perf_counter()
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(tmp_path)]) == 1
    assert time.perf_counter() - started < 2
    out = capsys.readouterr()
    assert f"{bad}:12:8: unknown column 'eventId2' (did you mean 'eventID'?)" in out.out
    assert "2 rule file(s) checked: 2 problem(s)" in out.err


def test_every_header_key_is_documented_in_the_rules_page():
    readme = (REPO / "docs" / "rules.md").read_text()
    for key in KEYS.values():
        assert f"| `{key.name}` | {key.doc} |" in readme, key.name


def test_validate_loads_no_spark_pandas_or_boto3():
    import subprocess
    import sys

    code = (
        "import sys; from loader.cli import main; main(['validate', 'tests/rules']); "
        "print(sorted(m for m in ('pyspark', 'pandas', 'boto3', 'geoip2', 'py4j') "
        "if m in sys.modules))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr


def test_columns_used_are_what_detect_keeps_in_memory(tmp_path):
    from loader.rules.validate import columns_used

    good = _write(tmp_path, "new_country", HEADER.format(name="new_country") + GOOD_BODY)
    cte = _write(
        tmp_path,
        "cte_rule",
        HEADER.format(name="cte_rule")
        + "WITH c AS (SELECT cloudtrail.userIdentity.arn AS principal_arn, errorCode,\n"
        "  geoip_country(sourceIPAddress) AS country, eventID, eventTime FROM cloudtrail)\n"
        "SELECT principal_arn, country, eventID, eventTime FROM c WHERE errorCode IS NULL\n",
    )
    rules, problems = load_rules([str(good), str(cte)])
    assert problems == []
    assert columns_used(rules) == {
        "useridentity", "sourceipaddress", "eventid", "eventtime", "errorcode",
    }  # fmt: skip
    star = _write(
        tmp_path,
        "star_rule",
        HEADER.format(name="star_rule").replace("principal_arn", "userIdentity")
        + "SELECT *, geoip_country(sourceIPAddress) AS country FROM cloudtrail\n",
    )
    rules, problems = load_rules([str(star)])
    assert problems == [] and columns_used(rules) is None


def test_a_rule_has_one_typed_attribute_per_header_key():
    """keys.py defines the keys; Rule has each as an attribute, of the type its parser gives
    (checked on every bundled rule), so a misspelt key is an AttributeError, not a None."""
    from dataclasses import fields

    from loader.rules.model import Rule
    from loader.rules.validate import BUNDLED, load_rules

    annotations = {f.name: str(f.type) for f in fields(Rule)}
    header = {name for name in annotations if name not in ("path", "sql", "sql_offset", "text",
                                                           "given")}  # fmt: skip
    assert header == set(KEYS)
    kinds = {"str": str, "float": float, "int": int, "tuple": tuple}
    rules, _ = load_rules([str(p) for p in BUNDLED])
    seen = set()
    for rule in rules:
        for key in KEYS:
            value = getattr(rule, key)
            if value is not None:
                expected = kinds[annotations[key].split("[")[0].split(" ")[0]]
                assert isinstance(value, expected), (rule.name, key, value)
                seen.add(key)
    assert seen >= {"name", "kind", "severity", "entity", "value", "learning", "expire",
                    "dedup", "threshold", "window", "bucket", "deviation", "tags"}  # fmt: skip
    with pytest.raises(AttributeError):
        rules[0].severty  # noqa: B018 - the point: a misspelt key fails
