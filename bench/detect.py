"""`detect` with the bundled rule pack over the reference events: events/s per core, and how
the cost grows with the number of rules (1, 10, all bundled, 200).

Each row is one whole `detect` call as the command runs it: read and type the raw .json.gz
logs (the `--source` path), keep the events in memory, evaluate the rules, write the new alerts
to `bench_detect.alerts`. The data are the reference 1,000,000 events of bench/README.md (seven
days, so the profiles compute their state but are still learning), with the sample's GeoIP
databases and Tor list. The 200-rule set is the bundled pack plus generated filter rules shaped
like the community's (Sigma's CloudTrail rules: an eventSource, one or a few eventNames, a
condition on the identity, an error code, a request parameter), most of them for calls that are
rare in the data, as detections are. The `sigma` set is the bundled pack plus SigmaHQ's 56
convertible CloudTrail rules, imported with `import-sigma` from ../shared/corpus/sigma.

Competitors, same run: the same `detect` with `--no-fuse` (every rule its own Spark job, as
before the fused engine), and the plain-Python loop (gzip + json.loads, one core) evaluating
the one-rule case's predicate (root console sign-ins) over the same files, the floor for any
tool that reads these logs in Python.

    python -m bench.detect [--events 1000000] [--runs 1] [--driver-memory 8g] [--no-fuse-row]
                           [--sets 1,10,all,large,sigma]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import tempfile
import time
from pathlib import Path

from bench.common import DATA, cores, log_files, markdown_table, median_time, reference_logs
from loader.sample.catalog import API_MIX

ONE = ["root_console_login"]
# a mix like a real deployment's: stateless alerts, a threshold rule, GeoIP/Tor, profiles
TEN = [
    "root_console_login", "cloudtrail_logging_tampered", "iam_access_key_created",
    "security_group_opened_to_world", "s3_bucket_made_public", "unauthorized_api_calls_burst",
    "tor_exit_node_activity", "new_country_for_principal", "new_access_key",
    "new_sensitive_api_for_principal",
]  # fmt: skip


# rare calls, as most detections look for (none of them is in the sample's normal life)
RARE = [
    ("iam.amazonaws.com", n) for n in (
        "CreatePolicyVersion", "SetDefaultPolicyVersion", "PutUserPolicy", "PutRolePolicy",
        "AttachGroupPolicy", "UpdateAssumeRolePolicy", "CreateServiceLinkedRole", "AddUserToGroup",
        "DeleteRolePermissionsBoundary", "UpdateLoginProfile", "CreateVirtualMFADevice",
    )
] + [
    ("ec2.amazonaws.com", n) for n in (
        "CreateKeyPair", "ImportKeyPair", "ModifyInstanceAttribute", "CreateImage",
        "ExportImage", "DisableEbsEncryptionByDefault", "CreateSnapshot", "DeleteFlowLogs",
        "AuthorizeSecurityGroupEgress", "ModifySnapshotAttribute", "GetPasswordData",
    )
] + [
    ("s3.amazonaws.com", n) for n in (
        "PutBucketPolicy", "DeleteBucketPolicy", "PutBucketAcl", "PutBucketReplication",
        "DeleteBucketEncryption", "PutBucketLifecycle", "PutBucketWebsite",
    )
] + [
    ("lambda.amazonaws.com", n) for n in (
        "UpdateFunctionCode20150331v2", "AddPermission20150331v2", "CreateFunction20150331",
    )
] + [
    ("sts.amazonaws.com", "GetFederationToken"), ("sts.amazonaws.com", "GetSessionToken"),
    ("kms.amazonaws.com", "ScheduleKeyDeletion"), ("kms.amazonaws.com", "PutKeyPolicy"),
    ("secretsmanager.amazonaws.com", "PutResourcePolicy"),
    ("ssm.amazonaws.com", "SendCommand"), ("ssm.amazonaws.com", "StartSession"),
    ("route53.amazonaws.com", "ChangeResourceRecordSets"),
    ("organizations.amazonaws.com", "LeaveOrganization"),
]  # fmt: skip
COMMON = [(api.source, api.name) for api in API_MIX]
RULE = """/*
name: {name}
kind: alert
description: generated for the benchmark ({shape})
severity: low
entity: principal
*/
SELECT eventTime, eventID, COALESCE(userIdentity.arn, userIdentity.principalId) AS principal,
  eventName, sourceIPAddress{extra}
FROM cloudtrail
WHERE {where}
"""


def generated_rules(count: int, folder: Path, seed: int = 7) -> list[Path]:
    """``count`` filter rules shaped like the community's, written to ``folder``."""
    rng = random.Random(seed)
    paths = []
    for i in range(count):
        shape = rng.choices(["rare", "rare set", "common", "json", "no name"], [5, 2, 2, 2, 1])[0]
        extra = ""
        if shape in ("rare", "common"):
            source, name = rng.choice(RARE if shape == "rare" else COMMON)
            identity = rng.choice(["IAMUser", "AssumedRole", "Root", "FederatedUser"])
            where = (f"eventSource = '{source}' AND eventName = '{name}' "
                     f"AND userIdentity.type = '{identity}'")  # fmt: skip
            if shape == "common":
                where += f" AND errorCode = '{rng.choice(['AccessDenied', 'ThrottlingException'])}'"
        elif shape == "rare set":
            picked = rng.sample(RARE, 3)
            names = ", ".join(f"'{n}'" for _, n in picked)
            where = f"eventName IN ({names}) AND errorCode IS NULL"
        elif shape == "json":
            source, name = rng.choice(COMMON + RARE)
            key = rng.choice(["bucketName", "userName", "roleArn", "instanceType", "name"])
            pattern = f"%{rng.randrange(99)}%"
            where = (f"eventName = '{name}' AND "
                     f"get_json_object(requestParameters, '$.{key}') LIKE '{pattern}'")  # fmt: skip
            extra = f",\n  get_json_object(requestParameters, '$.{key}') AS {key}"
        else:  # no eventName: a source and an agent or address, read for every event
            source, _ = rng.choice(COMMON)
            agent = rng.choice(["%python-requests%", "%curl/%", "%Go-http-client%", "%nmap%"])
            where = f"eventSource = '{source}' AND userAgent LIKE '{agent}'"
        path = folder / f"bench_generated_{i:03d}.sql"
        path.write_text(RULE.format(name=path.stem, shape=shape, extra=extra, where=where))
        paths.append(path)
    return paths


# SigmaHQ rules written for hunting, that match a large part of normal life: every call made
# by an assumed role (about half of the sample's events)
HUNTING = ("sigma_aws_sts_assumerole_misuse",)


def sigma_rules(out: Path) -> list:
    """SigmaHQ's CloudTrail rules (the corpus's copy), imported as a user would."""
    from loader.rules.validate import load_rules
    from loader.sigma.importer import import_sigma

    corpus = Path(
        os.environ.get("TSA_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus")
    )
    report = import_sigma([str(corpus / "sigma" / "cloudtrail")], str(out), force=True)
    rules, problems = load_rules([str(p) for p in report.written])
    assert not problems, problems
    return rules


def python_root_logins(root) -> int:
    found = 0
    for path in log_files(root):
        with gzip.open(path, "rb") as handle:
            for event in json.load(handle).get("Records", []):
                identity = event.get("userIdentity") or {}
                response = event.get("responseElements") or {}
                if (
                    event.get("eventName") == "ConsoleLogin"
                    and identity.get("type") == "Root"
                    and isinstance(response, dict)
                    and response.get("ConsoleLogin") == "Success"
                ):
                    found += 1
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--rules", type=int, default=200, help="the large rule set's size")
    parser.add_argument(
        "--sets", default="1,10,all,large",
        help="rows (1, 10, all, large, sigma, sigma-tuned), comma-separated; the first is the base",
    )  # fmt: skip
    parser.add_argument(
        "--no-fuse-row", action="store_true",
        help="also time all bundled rules with --no-fuse (every rule its own job; slow)",
    )  # fmt: skip
    args = parser.parse_args()

    from loader.batch.detect import detect, source_events
    from loader.config import resolve
    from loader.engine import timing
    from loader.enrichment import enriched_session, with_sample_sources
    from loader.rules.validate import load_rules, load_valid_rules

    logs = reference_logs(args.events)
    work = DATA / "detect_work"  # the bench's own metastore and warehouse
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    settings = resolve(None, {"conf": [f"spark.driver.memory={args.driver_memory}"]})
    with_sample_sources(settings, str(logs))
    spark, enrichment = enriched_session(settings, "bench detect")
    spark.sql("DROP DATABASE IF EXISTS bench_detect CASCADE")
    rules = load_valid_rules([])
    by_name = {rule.name: rule for rule in rules}
    folder = Path(tempfile.mkdtemp(prefix="tsa-bench-rules-", dir=work))
    generated, problems = load_rules(
        [str(p) for p in generated_rules(args.rules - len(rules), folder)]
    )
    assert not problems, problems
    every = {
        "1": ("1", [by_name[n] for n in ONE], True),
        "10": ("10", [by_name[n] for n in TEN], True),
        "all": (f"all {len(rules)}", rules, True),
        "large": (f"{len(rules) + len(generated)} (bundled + generated)", rules + generated, True),
    }
    if {"sigma", "sigma-tuned"} & set(args.sets.split(",")):
        imported = sigma_rules(folder / "sigma")
        every["sigma"] = (f"all {len(rules)} + {len(imported)} Sigma", rules + imported, True)
        tuned = [r for r in imported if r.name not in HUNTING]
        every["sigma-tuned"] = (
            f"all {len(rules)} + {len(tuned)} Sigma (not {', '.join(HUNTING)})",
            rules + tuned,
            True,
        )
    sets = [every[key] for key in args.sets.split(",")]
    if args.no_fuse_row:
        sets.append((f"all {len(rules)}, `--no-fuse`", rules, False))
    n_cores = cores()
    rows, base, phases = [], None, []
    for label, chosen, fuse in sets:
        print(f"detect with {label} rule(s) ...", flush=True)

        def run(chosen=chosen, fuse=fuse):
            timing.clear()
            spark.sql("DROP TABLE IF EXISTS bench_detect.alerts")
            events = source_events(spark, str(logs / "AWSLogs"))
            return detect(spark, chosen, events, "bench_detect", enrichment=enrichment, fuse=fuse)

        seconds, report = median_time(run, runs=args.runs, warmup=base is None)
        assert not report.failed, report.render()
        phases.append(f"- {label}: {timing.render()}")
        base = seconds if base is None else base
        per_rule = "-" if len(chosen) == 1 else f"{(seconds - base) / (len(chosen) - 1):.2f}"
        rows.append([
            f"this project: `detect`, {label} rule(s)", f"{seconds:.1f}", f"{seconds / base:.2f}x",
            str(n_cores), f"{report.events / seconds / n_cores:,.0f}", per_rule,
            f"{report.added:,}",
        ])  # fmt: skip
        events_count = report.events
    print("plain Python loop, 1 rule ...", flush=True)
    started = time.perf_counter()
    found = python_root_logins(logs)
    seconds = time.perf_counter() - started
    rows.append([
        "plain Python gzip + json.loads loop, 1 rule (root console sign-ins)", f"{seconds:.1f}",
        f"{seconds / base:.2f}x", "1", f"{events_count / seconds:,.0f}", "-",
        f"{found:,} matching events",
    ])  # fmt: skip
    print()
    print(f"{events_count:,} events, {len(log_files(logs))} files, median of {args.runs} run(s)")
    print()
    header = ["what ran", "seconds", "vs first row", "cores", "events/s per core",
              "s per extra rule", "alerts"]  # fmt: skip
    print(markdown_table(header, rows))
    print("\nwhere the time went (last run of each row):")
    print("\n".join(phases))
    spark.stop()


if __name__ == "__main__":
    main()
