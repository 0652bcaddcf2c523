"""What imported Sigma rules match, run by the rule engine (fused, as `detect` and `run` run
them): Sigma's semantics case by case on small events, an event_count correlation at N and
N-1, and SigmaHQ's rules over the real corpus compared, event by event, with what a reading of
each rule by hand says Sigma matches."""

from __future__ import annotations

import json
import os
import re
import textwrap
from collections import defaultdict

import pytest

from loader.engine.ruletests import run_rule_tests
from loader.rules.validate import load_rules
from tests.corpus import corpus_dir

if os.environ.get("CI") == "true":  # CI installs the [sigma] extra through [test]
    import sigma  # noqa: F401
else:
    pytest.importorskip("sigma", reason="the [sigma] extra (pySigma) is not installed")

from loader.sigma.importer import import_sigma  # noqa: E402

pytestmark = pytest.mark.spark

# --- Sigma's semantics, case by case -----------------------------------------------------------

# name -> (Sigma detection, [(case name, alerts, [event fields])])
SEMANTICS = {
    "case_and_wildcards": (
        """
        selection:
            eventName: 'Put?ucket*'
        condition: selection
        """,
        [
            ("a wildcard match", 1, [{"eventName": "PutBucketPolicy"}]),
            ("equality ignores case", 1, [{"eventName": "putbucketacl"}]),
            ("? is exactly one character", 0, [{"eventName": "PutBBucketAcl"}]),
        ],
    ),
    "percent_and_underscore_are_literal": (
        """
        selection:
            userAgent|contains: '50%_off'
        condition: selection
        """,
        [
            ("the text itself", 1, [{"userAgent": "tool 50%_off now"}]),
            ("not SQL's wildcards", 0, [{"userAgent": "tool 50XXoff now"}]),
        ],
    ),
    "not_is_null_safe": (
        """
        selection:
            eventName: ListBuckets
        filter:
            userIdentity.type: AssumedRole
        condition: selection and not filter
        """,
        [
            (
                "no identity type: not filtered",
                1,
                [{"eventName": "ListBuckets", "userIdentity": None}],
            ),
            ("an IAM user", 1, [{"eventName": "ListBuckets"}]),
            (
                "an assumed role is filtered",
                0,
                [{"eventName": "ListBuckets", "userIdentity": {"type": "AssumedRole"}}],
            ),
        ],
    ),  # fmt: skip
    "null_means_absent": (
        """
        selection:
            eventName: DeleteBucket
            errorCode: null
        condition: selection
        """,
        [
            ("no error", 1, [{"eventName": "DeleteBucket"}]),
            ("an error", 0, [{"eventName": "DeleteBucket", "errorCode": "AccessDenied"}]),
        ],
    ),
    "exists": (
        """
        selection:
            requestParameters.policy|exists: true
        condition: selection
        """,
        [
            ("present", 1, [{"requestParameters": {"policy": "{}"}}]),
            ("absent", 0, [{"requestParameters": {"bucketName": "b"}}]),
        ],
    ),
    "regex_is_case_sensitive": (
        """
        selection:
            userAgent|re: '^aws-cli/2\\.'
        condition: selection
        """,
        [
            ("matches", 1, [{"userAgent": "aws-cli/2.15.0 Python/3.11"}]),
            ("other case", 0, [{"userAgent": "AWS-CLI/2.15.0"}]),
        ],
    ),
    "regex_with_i": (
        """
        selection:
            userAgent|re|i: '^aws-cli/2\\.'
        condition: selection
        """,
        [("other case", 1, [{"userAgent": "AWS-CLI/2.15.0"}])],
    ),
    "cidr": (
        """
        selection:
            sourceIPAddress|cidr: 203.0.113.0/25
        condition: selection
        """,
        [
            ("inside", 1, [{"sourceIPAddress": "203.0.113.9"}]),
            ("outside", 0, [{"sourceIPAddress": "203.0.113.200"}]),
            ("not an address", 0, [{"sourceIPAddress": "AWS Internal"}]),
        ],
    ),
    "contains_all": (
        """
        selection:
            userAgent|contains|all:
                - 'curl'
                - 'kali'
        condition: selection
        """,
        [
            ("both", 1, [{"userAgent": "curl/8.0 (Kali Linux)"}]),
            ("one", 0, [{"userAgent": "curl/8.0"}]),
        ],
    ),
    "fieldref": (
        """
        selection:
            eventName: CreateAccessKey
        self:
            userIdentity.userName|fieldref: requestParameters.userName
        condition: selection and not self
        """,
        [
            (
                "another user's key",
                1,
                [{"eventName": "CreateAccessKey", "requestParameters": {"userName": "bob"}}],
            ),
            (
                "one's own key (case differs)",
                0,
                [{"eventName": "CreateAccessKey", "requestParameters": {"userName": "ALICE"}}],
            ),
        ],
    ),  # fmt: skip
    "any_element_of_nested_arrays": (
        """
        selection:
            requestParameters.containerDefinitions.command|contains: 'CREDENTIALS_RELATIVE_URI'
        condition: selection
        """,
        [
            (
                "the second container's second word",
                1,
                [
                    {
                        "requestParameters": {
                            "containerDefinitions": [
                                {"command": ["sh"]},
                                {
                                    "command": [
                                        "curl",
                                        "169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                                    ]
                                },
                            ]
                        }
                    }
                ],
            ),
            (
                "no container asks",
                0,
                [
                    {
                        "requestParameters": {
                            "containerDefinitions": [{"command": ["sh", "-c", "echo"]}]
                        }
                    }
                ],
            ),
        ],
    ),  # fmt: skip
    "struct_array": (
        """
        selection:
            resources.ARN|endswith: ':secret:prod'
        condition: selection
        """,
        [
            (
                "second resource",
                1,
                [{"resources": [{"ARN": "arn:x:1"}, {"ARN": "arn:x:SECRET:prod"}]}],
            ),
            ("none", 0, [{"resources": [{"ARN": "arn:x:1"}]}]),
        ],
    ),  # fmt: skip
    "policy_inside_parameters": (
        """
        selection:
            eventName: PutUserPolicy
            requestParameters|contains: '"Action":"\\*"'
        condition: selection
        """,
        [
            (
                "a policy document kept as a JSON string",
                1,
                [
                    {
                        "eventName": "PutUserPolicy",
                        "requestParameters": {"policyDocument": '{"Effect":"Allow","Action":"*"}'},
                    }
                ],
            ),
            (
                "a narrower policy",
                0,
                [
                    {
                        "eventName": "PutUserPolicy",
                        "requestParameters": {
                            "policyDocument": '{"Effect":"Allow","Action":"s3:Get"}'
                        },
                    }
                ],
            ),
        ],
    ),  # fmt: skip
    "boolean_in_parameters": (
        """
        selection:
            requestParameters.enable: false
        condition: selection
        """,
        [
            ("false", 1, [{"requestParameters": {"enable": False}}]),
            ("true", 0, [{"requestParameters": {"enable": True}}]),
        ],
    ),
    "keyword": (
        """
        keywords:
            - 'evil-tool'
        condition: keywords
        """,
        [
            (
                "anywhere in the event",
                1,
                [{"requestParameters": {"note": "made by Evil-Tool 1.0"}}],
            ),
            ("nowhere", 0, [{"userAgent": "good-tool"}]),
        ],
    ),  # fmt: skip
}

CORRELATION = """
title: Base
id: 5e5e5e5e-0000-4000-8000-000000000001
name: refused_call
status: test
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        errorCode: AccessDenied
    condition: selection
level: low
---
title: Three refusals from one address in ten minutes
id: 5e5e5e5e-0000-4000-8000-000000000002
status: test
author: Test Author
correlation:
    type: event_count
    rules:
        - refused_call
    group-by:
        - sourceIPAddress
    timespan: 10m
    condition:
        gte: 3
level: high
"""


def _event(n: int, fields: dict, minute: int = 0) -> dict:
    event = {
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice",
                         "principalId": "AIDAEXAMPLE", "userName": "alice"},
        "eventTime": f"2024-03-31T10:{minute:02d}:{n % 60:02d}Z",
        "eventSource": "iam.amazonaws.com", "eventName": "GetUser", "awsRegion": "us-east-1",
        "sourceIPAddress": "81.2.69.142", "userAgent": "aws-cli/1.0",
        "eventID": f"ev-{n:04d}", "eventType": "AwsApiCall", "recipientAccountId": "111122223333",
    }  # fmt: skip
    event.update(fields)
    return event


@pytest.fixture(scope="module")
def semantic_rules(tmp_path_factory):
    root = tmp_path_factory.mktemp("sigma_semantics")
    for n, (name, (detection, _)) in enumerate(SEMANTICS.items()):
        yaml = (
            f"title: {name}\nid: 7a7a7a7a-{n:04d}-4000-8000-000000000000\nstatus: test\n"
            "author: Test Author\nlogsource:\n    product: aws\n    service: cloudtrail\n"
            "detection:" + textwrap.indent(textwrap.dedent(detection), "    ") + "level: low\n"
        )
        (root / "src").mkdir(exist_ok=True)
        (root / "src" / f"{name}.yml").write_text(yaml)
    (root / "src" / "burst.yml").write_text(CORRELATION)
    report = import_sigma([str(root / "src")], str(root / "out"))
    assert [o for o in report.outcomes if o.status == "failed"] == [] and report.problems == []
    counter = iter(range(10_000))
    for name, (_, cases) in SEMANTICS.items():
        doc = {"cases": [
            {"name": case, "alerts": alerts,
             "events": [_event(next(counter), fields) for fields in events]}
            for case, alerts, events in cases
        ]}  # fmt: skip
        (root / "out" / f"sigma_{name}.test.json").write_text(json.dumps(doc))
    burst = [o.name for o in report.outcomes if o.title.startswith("Three")][0]
    refused = {"errorCode": "AccessDenied"}
    doc = {"cases": [
        {"name": "three refusals from one address", "alerts": 1,
         "expect": [{"entity": "81.2.69.142"}],
         "events": [_event(next(counter), refused, minute=m) for m in (0, 4, 9)]},
        {"name": "two are not enough", "alerts": 0,
         "events": [_event(next(counter), refused, minute=m) for m in (0, 4)]},
        {"name": "three, but the third after ten minutes", "alerts": 0,
         "events": [_event(next(counter), refused, minute=m) for m in (0, 4, 11)]},
        {"name": "three from three addresses", "alerts": 0,
         "events": [_event(next(counter), {**refused, "sourceIPAddress": f"81.2.69.{i}"})
                    for i in (1, 2, 3)]},
    ]}  # fmt: skip
    (root / "out" / f"{burst}.test.json").write_text(json.dumps(doc))
    rules, problems = load_rules([str(root / "out")])
    assert problems == []
    return rules


def test_sigma_semantics_case_by_case(spark, semantic_rules):
    report, problems = run_rule_tests(spark, semantic_rules)
    assert problems == [] and report.untested == []
    assert report.failed == [], report.render()
    cases = sum(len(c) for _, c in SEMANTICS.values()) + 4
    assert len(report.results) == cases


# --- SigmaHQ's rules over the real corpus ------------------------------------------------------


# An event as an alert names it. Samples that share an eventID (AWS's docs reuse "1") are told
# apart by what they hold; the same event in two files is one event, delivered twice, and the
# engine raises one alert for it.
_NAMED_BY = ("eventID", "eventSource", "eventName", "errorCode", "userAgent", "sourceIPAddress",
             "recipientAccountId", "awsRegion")  # fmt: skip


def _identity(event: dict) -> tuple:
    who = event.get("userIdentity")
    if isinstance(who, dict):
        principal = who.get("arn") or who.get("principalId")
    else:
        principal = event.get("principal")
    return (principal, *(event.get(k) for k in _NAMED_BY))


def _records(spark):
    """Every event of the corpus table, each read from its original JSON (``raw_json``) with
    Python's json module: the events the rules ran over, seen without Spark's typing. Rules
    run over events in time order: an event without a readable eventTime (panther's test
    samples have none, or "redacted") is never a rule's match."""
    table = spark.table("corpus.cloudtrail")
    rows = table.where("eventTime IS NOT NULL").select("raw_json").collect()
    return [json.loads(row.raw_json) for row in rows]


def _values(record, path):
    """The values at a dotted path, a JSON string parsed on the way, arrays giving each
    element (as Sigma's document-store backends read fields)."""
    found = [record]
    for key in path.split("."):
        step = []
        for item in found:
            if isinstance(item, str):
                try:
                    item = json.loads(item)
                except ValueError:
                    continue
            if isinstance(item, dict) and key in item:
                value = item[key]
                step += value if isinstance(value, list) else [value]
        found = step
    return [v for v in found if v is not None]


def _is(record, path, *texts):
    """Sigma's equality: any value equal to any text, ignoring case."""
    wanted = {t.lower() for t in texts}
    return any(_text(v).lower() in wanted for v in _values(record, path))


def _text(value):
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _contains(record, path, text):
    return any(text.lower() in _text(v).lower() for v in _values(record, path))


def _whole(record, column, text):
    """``column|contains``: the column's JSON text, nested JSON strings' quotes unescaped."""
    value = record.get(column)
    if value is None:
        return False
    raw = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text.lower() in raw.lower() or text.lower() in raw.replace('\\"', '"').lower()


# Each SigmaHQ rule read by hand (../shared/corpus/sigma/cloudtrail/<file>.yml), in Python.
BY_HAND = {
    "aws_cloudtrail_disable_logging": lambda r: _is(r, "eventSource", "cloudtrail.amazonaws.com")
    and _is(r, "eventName", "StopLogging", "UpdateTrail", "DeleteTrail"),
    "aws_cloudtrail_console_login_success_without_mfa": lambda r: _is(r, "eventName", "ConsoleLogin")
    and _is(r, "additionalEventData.MFAUsed", "NO")
    and _is(r, "responseElements.ConsoleLogin", "Success"),
    "aws_new_lambda_layer_attached": lambda r: _is(r, "eventSource", "lambda.amazonaws.com")
    and str(r.get("eventName", "")).lower().startswith("updatefunctionconfiguration")
    and bool(_values(r, "requestParameters.layers")),
    "aws_ecs_task_definition_cred_endpoint_query": lambda r: _is(r, "eventSource", "ecs.amazonaws.com")
    and _is(r, "eventName", "DescribeTaskDefinition", "RegisterTaskDefinition", "RunTask")
    and _contains(r, "requestParameters.containerDefinitions.command",
                  "$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
    "aws_update_login_profile": lambda r: _is(r, "eventSource", "iam.amazonaws.com")
    and _is(r, "eventName", "UpdateLoginProfile")
    and not any(_is(r, "userIdentity.arn", str(u)) for u in _values(r, "requestParameters.userName")),
    "aws_iam_backdoor_users_keys": lambda r: _is(r, "eventSource", "iam.amazonaws.com")
    and _is(r, "eventName", "CreateAccessKey")
    and not _contains(r, "userIdentity.arn", "responseElements.accessKey.userName"),
    "aws_root_account_usage": lambda r: _is(r, "userIdentity.type", "Root")
    and not _is(r, "eventType", "AwsServiceEvent"),
    "aws_enum_buckets": lambda r: _is(r, "eventSource", "s3.amazonaws.com")
    and _is(r, "eventName", "ListBuckets") and not _is(r, "userIdentity.type", "AssumedRole"),
    "aws_cloudtrail_imds_malicious_usage": lambda r: any(
        re.search(".+:assumed-role/aws:.+", str(v)) for v in _values(r, "userIdentity.arn"))
    and not (_is(r, "eventSource", "ssm.amazonaws.com")
             or _is(r, "eventName", "RegisterManagedInstance")
             or _is(r, "sourceIPAddress", "AWS Internal")),
    "aws_cloudtrail_console_login_failed_authentication": lambda r: _is(r, "eventName", "ConsoleLogin")
    and _is(r, "errorMessage", "Failed authentication"),
    "aws_sts_assumerole_misuse": lambda r: _is(r, "userIdentity.type", "AssumedRole")
    and _is(r, "userIdentity.sessionContext.sessionIssuer.type", "Role"),
    "aws_disable_bucket_versioning": lambda r: _is(r, "eventSource", "s3.amazonaws.com")
    and _is(r, "eventName", "PutBucketVersioning") and _whole(r, "requestParameters", "Suspended"),
    "aws_cloudtrail_ssm_malicious_usage": lambda r: _is(r, "eventName", "SendCommand")
    and _is(r, "eventSource", "ssm.amazonaws.com")
    and (_is(r, "errorCode", "Success") or r.get("errorCode") is None),
    "aws_console_getsignintoken": lambda r: _is(r, "eventSource", "signin.amazonaws.com")
    and _is(r, "eventName", "GetSigninToken")
    and not _contains(r, "userAgent", "Jersey/${project.version}"),
    "aws_cloudtrail_guardduty_detector_deleted_or_updated": lambda r: _is(
        r, "eventSource", "guardduty.amazonaws.com")
    and (_is(r, "eventName", "DeleteDetector")
         or (_is(r, "eventName", "UpdateDetector") and _is(r, "requestParameters.enable", "false"))),
}  # fmt: skip
# What the issue names, seen on the real events: tampering with the trail in Stratus Red Team's
# recordings, a console login without MFA, and the layer added under Lambda's versioned name
MUST_FIRE = {
    "aws_cloudtrail_disable_logging": 3,
    "aws_cloudtrail_console_login_success_without_mfa": 1,
    "aws_new_lambda_layer_attached": 1,
}


@pytest.fixture(scope="module")
def corpus_sigma_alerts(spark, corpus_tables, tmp_path_factory):
    """rule stem -> its alerts over the corpus, with SigmaHQ's 56 convertible rules imported
    and evaluated as `detect` does (one fused pass)."""
    from loader.engine.evaluate import cache_events, evaluate
    from loader.engine.plan import plan_rules

    out = tmp_path_factory.mktemp("sigmahq")
    import_sigma([str(corpus_dir("sigma") / "cloudtrail")], str(out))
    rules, problems = load_rules([str(out)])
    assert problems == [] and len(rules) == 56
    events, _ = cache_events(spark.table("corpus.cloudtrail"), None)
    try:
        result = evaluate(plan_rules(rules), events)
        assert result.errors == {}
        alerts = defaultdict(list)
        for alert in result.alerts.collect():
            alerts[alert.rule.removeprefix("sigma_")].append(alert)
        return alerts
    finally:
        events.unpersist()


def test_sigmahq_rules_match_what_sigma_says_over_the_real_corpus(spark, corpus_sigma_alerts):
    records = _records(spark)
    assert len(records) > 1000
    firing = 0
    for stem, matches in BY_HAND.items():
        expected = {_identity(r) for r in records if matches(r)}
        fired = {_identity(json.loads(a.details)["event"]) for a in corpus_sigma_alerts[stem]}
        assert fired == expected, (stem, fired - expected, expected - fired)
        assert len(fired) >= MUST_FIRE.get(stem, 0), stem
        firing += bool(fired)
    assert firing >= 13  # the ECS and GuardDuty rules find nothing in the corpus, rightly
    layer = corpus_sigma_alerts["aws_new_lambda_layer_attached"]
    assert {json.loads(a.details)["event"]["eventName"] for a in layer} == {
        "UpdateFunctionConfiguration20150331v2"
    }
    stratus = {
        r.get("eventID") for r in records if _is(r, "eventName", "StopLogging", "DeleteTrail")
    }
    trail = {a.event_id for a in corpus_sigma_alerts["aws_cloudtrail_disable_logging"]}
    assert stratus <= trail and stratus


def test_every_alert_of_an_imported_rule_keeps_its_author_and_source(corpus_sigma_alerts):
    alerts = corpus_sigma_alerts["aws_cloudtrail_disable_logging"]
    assert alerts
    for alert in alerts:
        details = json.loads(alert.details)
        assert details["author"] == "vitaliy0x1"
        assert details["source"].endswith("sigma/cloudtrail/aws_cloudtrail_disable_logging.yml")
        assert details["sigma_id"] == "4db60cc0-36fb-42b7-9b58-a5b53019fb74"
        assert details["license"] == "DRL-1.1"
        assert details["event"].get("eventID") == alert.event_id
