"""`import-sigma` without a JVM: SigmaHQ's 57 CloudTrail rules converted (or refused with a
reason), the header each rule file gets, correlations as threshold rules, and the CLI's
behaviour around the files it writes. What the rules match is tested in test_sigma_spark.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest

from loader.cli import main
from loader.rules.model import read_rule
from loader.rules.validate import load_rules
from tests.conftest import REPO
from tests.corpus import corpus_dir

if os.environ.get("CI") == "true":  # CI installs the [sigma] extra through [test]
    import sigma  # noqa: F401
else:
    pytest.importorskip("sigma", reason="the [sigma] extra (pySigma) is not installed")

from loader.sigma.importer import import_sigma  # noqa: E402


def _sigma_corpus():
    return corpus_dir("sigma")


def _write(folder, name: str, text: str):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_every_sigmahq_cloudtrail_rule_converts_and_validates_or_says_why(tmp_path):
    src = _sigma_corpus() / "cloudtrail"
    report = import_sigma([str(src)], str(tmp_path / "out"))
    by_file = {os.path.basename(o.path): o for o in report.outcomes}
    assert len(by_file) == 57 == len(report.outcomes)
    failed = {name: o.reason for name, o in by_file.items() if o.status == "failed"}
    assert failed == {"aws_delete_saml_provider.yml": "field 'status' is not in CloudTrail events"}
    assert [o for o in report.outcomes if o.status == "skipped"] == []
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(written) == 56 == len(report.written)
    assert "sigma_aws_cloudtrail_disable_logging.sql" in written
    assert report.problems == []
    rules, problems = load_rules([str(tmp_path / "out")])  # as `validate` reads them
    assert problems == [] and len(rules) == 56
    # as the README runs them: `--rules sql DIR`, the bundled folder standing for its rules
    together, problems = load_rules([str(REPO / "sql"), str(tmp_path / "out")])
    assert problems == [] and len(together) == 56 + len(load_rules([str(REPO / "sql")])[0])
    assert not any("queries" in rule.path for rule in together)
    text = report.render()
    assert "56 converted, 0 skipped, 1 failed" in text
    assert re.search(r"^failed +\S+aws_delete_saml_provider\.yml +field 'status'", text, re.M)


def test_the_old_pipe_syntax_is_refused_with_pysigmas_reason(tmp_path):
    report = import_sigma([str(_sigma_corpus() / "unsupported")], str(tmp_path / "out"))
    assert len(report.outcomes) == 3
    for outcome in report.outcomes:
        assert outcome.status == "failed"
        assert "pipe syntax in Sigma conditions has been deprecated" in outcome.reason
    assert report.written == []
    assert "0 converted, 0 skipped, 3 failed" in report.render()


def test_the_header_carries_the_rules_attribution(tmp_path):
    src = _sigma_corpus() / "cloudtrail"
    import_sigma(
        [str(src / "aws_cloudtrail_disable_logging.yml")],
        str(tmp_path),
        source_url="https://github.com/SigmaHQ/sigma/blob/master/rules/cloud/aws/cloudtrail/",
    )
    rule, problems = read_rule(tmp_path / "sigma_aws_cloudtrail_disable_logging.sql")
    assert problems == []
    values = rule.values
    assert values["kind"] == "alert" and values["entity"] == "principal"
    assert values["severity"] == "medium"
    assert values["description"].startswith("AWS CloudTrail Important Change: Detects disabling")
    assert values["author"] == "vitaliy0x1"
    assert values["sigma_id"] == "4db60cc0-36fb-42b7-9b58-a5b53019fb74"
    assert values["license"] == "DRL-1.1"
    assert values["source"] == (
        "https://github.com/SigmaHQ/sigma/blob/master/rules/cloud/aws/cloudtrail/"
        "aws_cloudtrail_disable_logging.yml"
    )
    assert values["tags"] == ("T1685.002",)
    # eventName compared as Sigma does, case-insensitively, in a form the engine prefilters on
    assert "lower(eventName) IN ('deletetrail', 'stoplogging', 'updatetrail')" in rule.sql


SIGMA_HEADER = """
title: {title}
id: 0b7e3e58-{n:04d}-4000-8000-000000000000
status: test
description: {title}, for a test.
author: Test Author, Other Author
license: MIT
tags:
    - attack.persistence
    - attack.t1098.001
logsource:
    product: {product}
    service: {service}
level: {level}
"""


def _rule(folder, name, detection, *, n=1, level="informational", product="aws",
          service="cloudtrail", extra=""):  # fmt: skip
    header = SIGMA_HEADER.format(title=name, n=n, level=level, product=product, service=service)
    return _write(folder, f"{name}.yml", header + extra + textwrap.dedent(detection))


def test_levels_tags_licence_and_logsources(tmp_path):
    src = tmp_path / "src"
    detection = """
    detection:
        selection:
            eventName: CreateUser
        condition: selection
    """
    _rule(src, "info_rule", detection, level="informational")
    _rule(src, "windows_rule", detection, n=2, product="windows", service="security")
    report = import_sigma([str(src)], str(tmp_path / "out"))
    status = {o.title: (o.status, o.reason) for o in report.outcomes}
    assert status["info_rule"] == ("converted", "")
    assert status["windows_rule"] == (
        "skipped",
        "logsource is product windows / service security "
        "(import-sigma converts product aws / service cloudtrail)",
    )
    rule, _ = read_rule(tmp_path / "out" / "sigma_info_rule.sql")
    assert rule.severity == "info"
    assert rule.tags == ("T1098.001",)
    assert rule.license == "MIT"  # the rule's own licence wins over DRL-1.1
    assert rule.author == "Test Author, Other Author"
    assert "dedup" not in rule.given  # Sigma has none: every matching event alerts
    import_sigma([str(src)], str(tmp_path / "deduped"), dedup="1 hour")
    deduped, problems = read_rule(tmp_path / "deduped" / "sigma_info_rule.sql")
    assert problems == [] and deduped.dedup == 3600


def test_an_event_count_correlation_becomes_a_threshold_rule(tmp_path):
    src = _write(
        tmp_path / "src",
        "bursts.yml",
        """
        title: Failed console logins
        id: 1d1e1f00-0000-4000-8000-000000000001
        name: failed_console_login
        status: test
        author: Base Author
        logsource:
            product: aws
            service: cloudtrail
        detection:
            selection:
                eventName: ConsoleLogin
                errorMessage: Failed authentication
            condition: selection
        level: low
        ---
        title: Many failed console logins from one address
        id: 1d1e1f00-0000-4000-8000-000000000002
        status: test
        author: Correlation Author
        correlation:
            type: event_count
            rules:
                - failed_console_login
            group-by:
                - sourceIPAddress
            timespan: 1M
            condition:
                gte: 5
        level: high
        ---
        title: Over three
        id: 1d1e1f00-0000-4000-8000-000000000003
        status: test
        author: Correlation Author
        correlation:
            type: event_count
            rules:
                - failed_console_login
            timespan: 10m
            condition:
                gt: 3
        level: medium
        ---
        title: Distinct users
        id: 1d1e1f00-0000-4000-8000-000000000004
        status: test
        correlation:
            type: value_count
            rules:
                - failed_console_login
            timespan: 1h
            condition:
                gte: 3
                field: userIdentity.arn
        level: medium
        """,
    ).parent
    _write(
        src,
        "other_file.yml",
        """
        title: Two from one user, counting a rule of another file
        id: 1d1e1f00-0000-4000-8000-000000000005
        status: test
        correlation:
            type: event_count
            rules:
                - failed_console_login
            group-by:
                - userIdentity.arn
                - sourceIPAddress
            timespan: 1h
            condition:
                gte: 2
        level: medium
        ---
        title: Counting nothing
        id: 1d1e1f00-0000-4000-8000-000000000006
        status: test
        correlation:
            type: event_count
            rules:
                - no_such_rule
            timespan: 1h
            condition:
                gte: 2
        level: medium
        """,
    )
    report = import_sigma([str(src)], str(tmp_path / "out"))
    status = {o.title: (o.status, o.reason, o.name) for o in report.outcomes}
    assert status["Counting nothing"][:2] == (
        "failed",
        "Rule 'no_such_rule' not found in rule collection",
    )
    pair, _ = read_rule(
        tmp_path / "out" / f"{status['Two from one user, counting a rule of another file'][2]}.sql"
    )
    assert "concat_ws('|', userIdentity.arn, sourceIPAddress) AS group_by" in pair.sql
    assert status["Failed console logins"][:2] == (
        "skipped", "used by a correlation rule only (it has no 'generate: true')"
    )  # fmt: skip
    assert status["Distinct users"][:2] == (
        "skipped",
        "a value_count correlation (import-sigma converts event_count, as a threshold rule)",
    )
    monthly, _ = read_rule(
        tmp_path / "out" / f"{status['Many failed console logins from one address'][2]}.sql"
    )
    assert monthly.threshold == 5
    assert monthly.window == 2629746  # Sigma's month: 30.44 days
    assert monthly.entity == "group_by"
    assert monthly.author == "Correlation Author; Base Author"
    assert "sourceIPAddress AS group_by" in monthly.sql
    assert "lower(errorMessage) = 'failed authentication'" in monthly.sql
    over, _ = read_rule(tmp_path / "out" / f"{status['Over three'][2]}.sql")
    assert over.threshold == 4 and over.window == 600  # gt 3: from 4 on
    assert "entity" not in over.given  # no group-by: all the events count together
    assert load_rules([str(tmp_path / "out")])[1] == []


def test_existing_files_are_kept_unless_forced(tmp_path, capsys):
    rule = _sigma_corpus() / "cloudtrail" / "aws_enum_buckets.yml"
    out = tmp_path / "out"
    assert main(["import-sigma", str(rule), "--out", str(out)]) == 0
    written = out / "sigma_aws_enum_buckets.sql"
    written.write_text("edited by hand")
    assert main(["import-sigma", str(rule), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "already exist(s); --force replaces them (nothing was written)" in err
    assert written.read_text() == "edited by hand"
    assert main(["import-sigma", str(rule), "--out", str(out), "--force"]) == 0
    assert written.read_text().startswith("/*\nname: sigma_aws_enum_buckets\n")
    assert main(["import-sigma", str(tmp_path / "nowhere"), "--out", str(out)]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_without_pysigma_the_command_says_how_to_install_it(tmp_path):
    code = (
        "import sys; sys.modules['sigma'] = None; from loader.cli import main; "
        f"sys.exit(main(['import-sigma', {str(tmp_path)!r}, '--out', {str(tmp_path / 'o')!r}]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: import-sigma needs pySigma: pip install 'timely-security-analytics[sigma]' "
        "(or: pip install 'pySigma>=2.0.1,<3')"
    ]


def test_not_is_null_safe_and_values_are_escaped_for_like(tmp_path):
    src = tmp_path / "src"
    _rule(src, "edge", """
    detection:
        selection:
            eventName: 'Put*Policy'
            userAgent|contains: '100%_sure\\'
        filter:
            userIdentity.type: AssumedRole
        condition: selection and not filter
    """)  # fmt: skip
    import_sigma([str(src)], str(tmp_path / "out"))
    rule, _ = read_rule(tmp_path / "out" / "sigma_edge.sql")
    assert "lower(eventName) LIKE 'put%policy'" in rule.sql
    # the value's own % and _ are literal (escaped), its backslash too; SQL-quoted once more
    assert "lower(userAgent) LIKE '%100\\\\%\\\\_sure\\\\\\\\%'" in rule.sql
    assert "NOT coalesce(lower(userIdentity.type) = 'assumedrole', false)" in rule.sql


def test_alerts_of_an_attributed_rule_carry_it_and_messages_show_the_author(tmp_path):
    import datetime as dt
    import json

    from loader.alerts.content import summary_lines
    from loader.engine.records import Observation, alert_records

    rule_file = _sigma_corpus() / "cloudtrail" / "aws_enum_buckets.yml"
    import_sigma([str(rule_file)], str(tmp_path), source_url="https://example.test/aws/")
    rule, _ = read_rule(tmp_path / "sigma_aws_enum_buckets.sql")
    row = {"principal": "arn:aws:iam::1:user/a", "eventName": "ListBuckets", "eventID": "e1"}
    seen = Observation(
        "arn:aws:iam::1:user/a", None, dt.datetime(2024, 1, 1), "e1", json.dumps(row)
    )
    (record,) = alert_records(rule, [(seen, None, None)])
    details = json.loads(record[9])
    assert details["event"] == {**row, "eventTime": "2024-01-01T00:00:00"}
    assert details["author"] == "Christopher Peacock @securepeacock, SCYTHE @scythe_io"
    assert details["source"] == "https://example.test/aws/aws_enum_buckets.yml"
    assert details["license"] == "DRL-1.1" and details["sigma_id"]
    lines = dict(summary_lines({"rule": rule.name, "details": record[9]}))
    assert lines["Rule author"] == "Christopher Peacock @securepeacock, SCYTHE @scythe_io"
    assert lines["Rule source"] == "https://example.test/aws/aws_enum_buckets.yml"
    assert lines["Current activity"] == "eventName=ListBuckets"  # the event, not the credit


def test_a_checkout_with_filters_workflows_and_broken_files(tmp_path):
    checkout = tmp_path / "sigma"
    rule = (_sigma_corpus() / "cloudtrail" / "aws_cloudtrail_disable_logging.yml").read_text()
    _write(checkout / "rules" / "cloud" / "aws" / "cloudtrail", "trail.yml", rule)
    _write(checkout / ".github" / "workflows", "ci.yml", "on: push\njobs:\n  test: {}\n")
    _write(checkout / "rules" / "cloud" / "aws", "broken.yml", "title: [unclosed\n")
    _write(
        checkout / "filters",
        "trail_admin.yml",
        """
        title: The trail admin may change trails
        id: 9f9f9f9f-0000-4000-8000-000000000001
        logsource:
            product: aws
            service: cloudtrail
        filter:
            rules:
                - 4db60cc0-36fb-42b7-9b58-a5b53019fb74
            selection:
                userIdentity.arn: 'arn:aws:iam::111122223333:role/trail-admin'
            condition: not selection
        """,
    )
    report = import_sigma([str(checkout)], str(tmp_path / "out"))
    by_file = {os.path.basename(o.path): (o.status, o.reason) for o in report.outcomes}
    assert by_file["ci.yml"] == (
        "skipped",
        "not a Sigma rule (no detection, correlation or filter)",
    )
    assert by_file["trail_admin.yml"] == (
        "skipped",
        "a Sigma filter: applied to the rules it names, not a rule itself",
    )
    assert by_file["broken.yml"] == (
        "failed",
        "not valid YAML at line 2, column 1: expected ',' or ']', but got '<stream end>'",
    )
    assert by_file["trail.yml"] == ("converted", "")
    rule_file, problems = read_rule(tmp_path / "out" / "sigma_trail.sql")
    assert problems == []
    # the filter is part of the rule: the trail admin's changes do not alert
    admin = "lower(userIdentity.arn) = 'arn:aws:iam::111122223333:role/trail-admin'"
    assert f"NOT coalesce({admin}, false)" in rule_file.sql


@pytest.mark.parametrize(
    ("regex", "literal"),
    [
        (".+:assumed-role/aws:.+", ":assumed-role/aws:"),  # SigmaHQ's IMDS rule
        ("^aws-cli/2\\.", "aws-cli/2."),
        ("ab*cde", "cde"),  # b* may be absent: 'a' and 'cde' are apart
        ("te?st1234", "st1234"),
        ("abc+def", "abc"),  # 'abc' and 'def' are both there, maybe apart
        ("x\\dabc", "abc"),  # \d is a class, not the letter d
        ("(?i)abcdef", None),  # a group: not guessed about
        ("one|two2", None),
        ("[a-z]+secret", None),
        ("^s3", None),  # too short to be worth a test
    ],
)
def test_the_text_every_match_of_a_regex_contains(regex, literal):
    from loader.sigma.patterns import required_literal

    assert required_literal(regex) == literal
    if literal is not None:  # and it is so: a few matches by Python's engine, alike here
        for text in ("x:assumed-role/aws:y", "aws-cli/2.1", "acde", "tst1234", "abccdef",
                     "x1abc"):  # fmt: skip
            if re.search(regex, text):
                assert literal in text
