"""`generate-sample`: realistic CloudTrail logs in the real S3 layout, deterministic per seed.

Normal life: IAM users working from their usual offices (US, GB, SE), roles assumed by CI and
engineers, AWS services acting on the accounts' behalf (``AWS Internal`` and service host
names as source), console sign-ins with and without MFA, a few percent of AccessDenied.

The attack story, on the last day, in the first account (docs/sample.md):
 1. IAM user ``dave`` (always from the US) calls APIs from China (175.16.199.0/24), then
    enumerates what the key may do: 40 calls in 5 minutes, all refused (AccessDenied), where
    dave is refused a call or two a week;
 2. then from a Tor exit node (171.25.193.25);
 3. the root user signs in to the console without MFA from the same Tor node;
 4. root stops CloudTrail logging (StopLogging);
 5. ``dave`` creates IAM user ``backup-admin`` and a long-term access key for it,
    which is then used from the Tor node.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from loader.sample.catalog import (
    API_MIX,
    API_WEIGHTS,
    ATTACKER_IPS,
    CONSOLE_AGENT,
    DEFAULT_END,
    OFFICE_IPS,
    TOR_EXIT_IP,
    USER_AGENTS,
)
from loader.sample.spec import SampleSpec

REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
REGION_WEIGHTS = (0.6, 0.25, 0.15)
ATTACK_USER = "dave"
ENUMERATION_CALLS = 40
ENUMERATION = (
    "iam:ListRoles", "iam:GetAccountAuthorizationDetails", "secretsmanager:ListSecrets",
    "kms:ListKeys", "lambda:ListFunctions20150331", "rds:DescribeDBInstances",
    "organizations:DescribeOrganization", "ssm:DescribeParameters",
)  # fmt: skip
ATTACK_NEW_USER = "backup-admin"
USERS = (
    ("alice", "US"),
    ("bob", "GB"),
    ("carol", "SE"),
    ("dave", "US"),
    ("erin", "GB"),
    ("frank", "US"),
    ("grace", "SE"),
    ("ci-deployer", "US"),
)
ROLES = ("Admin", "ReadOnly", "deploy", "lambda-ingest")


@dataclass
class SampleSummary:
    out: str
    files: int = 0
    events: int = 0
    accounts: list[str] = field(default_factory=list)
    days: list[str] = field(default_factory=list)
    attack_events: int = 0
    enrichment: list[str] = field(default_factory=list)

    def render(self) -> str:
        text = (
            f"wrote {self.events:,} events in {self.files:,} files under {self.out}/AWSLogs "
            f"(accounts {', '.join(self.accounts)}; {self.days[0]} .. {self.days[-1]}; "
            f"{self.attack_events} attack-story events on the last day)"
        )
        if self.enrichment:
            text += "\nand sample GeoIP databases and a Tor exit list: " + ", ".join(
                self.enrichment
            )
        return text


class World:
    """Accounts, identities and their habits, all drawn from one seeded generator."""

    def __init__(self, spec: SampleSpec) -> None:
        self.rng = random.Random(spec.seed)
        self.accounts = [f"{self.rng.randint(10**11, 10**12 - 1)}" for _ in range(spec.accounts)]
        self.identities: dict[str, list[dict[str, Any]]] = {
            acct: self._identities(acct) for acct in self.accounts
        }

    def _key(self, prefix: str) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
        return prefix + "".join(self.rng.choice(alphabet) for _ in range(16))

    def _identities(self, account: str) -> list[dict[str, Any]]:
        people = []
        for name, country in USERS:
            people.append(
                {
                    "kind": "user",
                    "name": name,
                    "country": country,
                    "weight": 3.0,
                    "ips": self.rng.sample(OFFICE_IPS[country], 2),
                    "principal_id": self._key("AIDA"),
                    "keys": [self._key("AKIA")],
                }
            )
        for role in ROLES:
            country = self.rng.choice(list(OFFICE_IPS))
            people.append(
                {
                    "kind": "role",
                    "name": role,
                    "country": country,
                    "weight": 4.0,
                    "ips": self.rng.sample(OFFICE_IPS[country], 2),
                    "principal_id": self._key("AROA"),
                    "sessions": self._sessions(role.lower()),
                }
            )
        people.append(
            {
                "kind": "service",
                "name": "config.amazonaws.com",
                "weight": 2.0,
                "sessions": self._sessions("AWSConfig-Describe"),
            }
        )
        people.append(
            {
                "kind": "internal",
                "name": "AWS Internal",
                "weight": 1.5,
                "sessions": self._sessions("aws-internal", 2),
            }
        )
        people.append(
            {
                "kind": "root",
                "name": "root",
                "country": "US",
                "weight": 0.05,
                "ips": OFFICE_IPS["US"][:1],
                "sessions": self._sessions("root", 2),
            }
        )
        return people

    def _sessions(self, prefix: str, count: int = 3) -> list[tuple[str, str]]:
        """A few long-lived sessions (name, temporary ASIA key), as role sessions are in life."""
        return [
            (f"{prefix}-{self.rng.randint(1000, 9999)}", self._key("ASIA")) for _ in range(count)
        ]

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


def _time(day: dt.date, seconds: float) -> str:
    moment = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc) + dt.timedelta(
        seconds=seconds
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _user_identity(world: World, account: str, who: dict[str, Any], at: str) -> dict[str, Any]:
    kind = who["kind"]
    if kind == "user":
        return {
            "type": "IAMUser",
            "principalId": who["principal_id"],
            "arn": f"arn:aws:iam::{account}:user/{who['name']}",
            "accountId": account,
            "accessKeyId": who["keys"][0],
            "userName": who["name"],
        }
    if kind == "root":
        return {
            "type": "Root",
            "principalId": account,
            "arn": f"arn:aws:iam::{account}:root",
            "accountId": account,
            "accessKeyId": world.rng.choice(who["sessions"])[1],
            "sessionContext": {"attributes": {"creationDate": at, "mfaAuthenticated": "true"}},
        }
    session, temporary_key = world.rng.choice(who["sessions"])
    role = who["name"] if kind == "role" else "AWSServiceRoleForConfig"
    identity = {
        "type": "AssumedRole",
        "principalId": f"{who.get('principal_id', 'AROAEXAMPLE')}:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": temporary_key,
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": who.get("principal_id", "AROAEX"),
                "arn": f"arn:aws:iam::{account}:role/{role}",
                "accountId": account,
                "userName": role,
            },
            "attributes": {"creationDate": at, "mfaAuthenticated": "false"},
        },
    }
    if kind == "service":
        identity["invokedBy"] = who["name"]
    return identity


def _event(
    world: World,
    account: str,
    region: str,
    who: dict[str, Any],
    at: str,
    api_source: str,
    api_name: str,
    read_only: bool,
    **extra: Any,
) -> dict[str, Any]:
    rng = world.rng
    kind = who["kind"]
    if kind == "service":
        source_ip, agent = who["name"], who["name"]
    elif kind == "internal":
        source_ip, agent = "AWS Internal", "AWS Internal"
    else:
        source_ip = rng.choice(who["ips"])
        agent = rng.choice(USER_AGENTS).format(cmd=api_name.lower())
    event = {
        "eventVersion": "1.09",
        "userIdentity": _user_identity(world, account, who, at),
        "eventTime": at,
        "eventSource": api_source,
        "eventName": api_name,
        "awsRegion": region,
        "sourceIPAddress": source_ip,
        "userAgent": agent,
        "requestParameters": None,
        "responseElements": None,
        "requestID": world.uuid(),
        "eventID": world.uuid(),
        "readOnly": read_only,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
        "tlsDetails": {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": api_source.replace(
                ".amazonaws.com", f".{region}.amazonaws.com"
            ),
        },
    }
    event.update(extra)
    return event


def _normal_event(world: World, account: str, day: dt.date) -> dict[str, Any]:
    rng = world.rng
    people = world.identities[account]
    who = rng.choices(people, weights=[p["weight"] for p in people])[0]
    # Working hours of the actor's office, with a long tail of automation at night.
    seconds = rng.gauss(13.5 * 3600, 3 * 3600) if rng.random() < 0.8 else rng.random() * 86400
    at = _time(day, min(max(seconds, 0), 86399))
    region = rng.choices(REGIONS, weights=REGION_WEIGHTS)[0]
    if who["kind"] in ("user", "root") and rng.random() < 0.02:
        return _console_login(
            world,
            account,
            who,
            at,
            mfa=who["kind"] == "root" or rng.random() < 0.85,
            success=rng.random() < 0.93,
        )
    api = rng.choices(API_MIX, weights=API_WEIGHTS)[0]
    extra: dict[str, Any] = {}
    if api.params:
        extra["requestParameters"] = api.params(rng, account, region)
    if api.response:
        extra["responseElements"] = api.response(rng, account, region)
    if api.data_event:
        extra.update(
            managementEvent=False,
            eventCategory="Data",
            resources=[
                {
                    "type": "AWS::S3::Object",
                    "ARN": "arn:aws:s3:::"
                    + extra["requestParameters"]["bucketName"]
                    + "/"
                    + extra["requestParameters"]["key"],
                }
            ],
        )
    if who["kind"] in ("user", "role") and rng.random() < 0.03:
        extra.update(
            errorCode="AccessDenied",
            errorMessage=(
                f"User is not authorized to perform: {api.source.split('.')[0]}:{api.name}"
            ),
            responseElements=None,
        )
    return _event(world, account, region, who, at, api.source, api.name, api.read_only, **extra)


def _console_login(
    world: World,
    account: str,
    who: dict[str, Any],
    at: str,
    mfa: bool,
    success: bool,
    source_ip: str | None = None,
) -> dict[str, Any]:
    event = _event(
        world,
        account,
        "us-east-1",
        who,
        at,
        "signin.amazonaws.com",
        "ConsoleLogin",
        False,
        eventType="AwsConsoleSignIn",
        userAgent=CONSOLE_AGENT,
        additionalEventData={
            "LoginTo": "https://console.aws.amazon.com/console/home",
            "MobileVersion": "No",
            "MFAUsed": "Yes" if mfa else "No",
        },
        responseElements={"ConsoleLogin": "Success" if success else "Failure"},
    )
    event["userIdentity"].pop("accessKeyId", None)
    event["userIdentity"].pop("sessionContext", None)
    if source_ip:
        event["sourceIPAddress"] = source_ip
    if not success:
        event["errorMessage"] = "Failed authentication"
    return event


def _attack(world: World, account: str, day: dt.date) -> list[dict[str, Any]]:
    """The documented attack story, between 02:00 and 03:00 UTC on the last day."""
    people = {p["name"]: p for p in world.identities[account]}
    dave, root = people[ATTACK_USER], people["root"]
    from_china = {**dave, "ips": ATTACKER_IPS}
    from_tor = {**dave, "ips": [TOR_EXIT_IP]}
    root_tor = {**root, "ips": [TOR_EXIT_IP]}
    cli = "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.0"

    def at(minute: int) -> str:
        return _time(day, 2 * 3600 + minute * 60)

    def call(who: dict[str, Any], minute: int, api: str, read_only: bool, **extra: Any):
        service, name = api.split(":")
        extra.setdefault("userAgent", cli)
        return _event(
            world,
            account,
            "us-east-1",
            who,
            at(minute),
            f"{service}.amazonaws.com",
            name,
            read_only,
            **extra,
        )

    events = [
        call(from_china, 1 + i, api, True)
        for i, api in enumerate(
            ["sts:GetCallerIdentity", "s3:ListBuckets", "ec2:DescribeInstances", "iam:ListUsers"]
        )
    ]
    for i in range(ENUMERATION_CALLS):  # what may this key do? mostly nothing
        api = ENUMERATION[i % len(ENUMERATION)]
        refused = call(
            from_china,
            5,
            api,
            True,
            errorCode="AccessDenied",
            errorMessage=f"User: {dave['name']} is not authorized to perform: {api}",
        )
        refused["eventTime"] = _time(day, 2 * 3600 + 5 * 60 + i * 7)  # 02:05 to 02:09
        refused["responseElements"] = None
        events.append(refused)
    events.append(call(from_tor, 10, "iam:ListAccessKeys", True))
    events.append(
        _console_login(
            world, account, root_tor, at(15), mfa=False, success=True, source_ip=TOR_EXIT_IP
        )
    )
    trail = f"arn:aws:cloudtrail:us-east-1:{account}:trail/management-events"
    stop = call(
        root_tor,
        17,
        "cloudtrail:StopLogging",
        False,
        requestParameters={"name": trail},
        userAgent=CONSOLE_AGENT,
    )
    stop["userIdentity"]["sessionContext"]["attributes"]["mfaAuthenticated"] = "false"
    events.append(stop)
    new_user_arn = f"arn:aws:iam::{account}:user/{ATTACK_NEW_USER}"
    events.append(
        call(
            from_tor,
            20,
            "iam:CreateUser",
            False,
            requestParameters={"userName": ATTACK_NEW_USER},
            responseElements={
                "user": {
                    "userName": ATTACK_NEW_USER,
                    "path": "/",
                    "arn": new_user_arn,
                    "userId": world._key("AIDA"),
                    "createDate": at(20),
                }
            },
        )
    )
    new_key = world._key("AKIA")
    events.append(
        call(
            from_tor,
            21,
            "iam:CreateAccessKey",
            False,
            requestParameters={"userName": ATTACK_NEW_USER},
            responseElements={
                "accessKey": {
                    "accessKeyId": new_key,
                    "status": "Active",
                    "userName": ATTACK_NEW_USER,
                    "createDate": at(21),
                }
            },
        )
    )
    backdoor = {
        "kind": "user",
        "name": ATTACK_NEW_USER,
        "ips": [TOR_EXIT_IP],
        "principal_id": world._key("AIDA"),
        "keys": [new_key],
    }
    events += [
        call(backdoor, 30 + i, api, True)
        for i, api in enumerate(
            ["sts:GetCallerIdentity", "s3:ListBuckets", "secretsmanager:ListSecrets"]
        )
    ]
    return events


def _file_name(account: str, region: str, last_time: str, world: World, delay: float = 0) -> str:
    written = dt.datetime.fromisoformat(last_time.replace("Z", "+00:00"))
    written += dt.timedelta(seconds=delay)
    stamp = written.strftime("%Y%m%dT%H%MZ")  # when the file was written, to the minute
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    suffix = "".join(world.rng.choice(alphabet) for _ in range(16))
    return f"{account}_CloudTrail_{region}_{stamp}_{suffix}.json.gz"


def _files(
    events: list[dict[str, Any]], spec: SampleSpec, world: World
) -> list[tuple[list[dict[str, Any]], float]]:
    """A bucket's events (in time order) cut into files, each with its delivery delay (s)."""
    if not spec.file_minutes:
        size = spec.events_per_file
        return [(events[i : i + size], 0.0) for i in range(0, len(events), size)]
    windows: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        moment = dt.datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00"))
        windows[int(moment.timestamp()) // (spec.file_minutes * 60)].append(event)
    files = []
    for _, window in sorted(windows.items()):
        for i in range(0, len(window), spec.events_per_file):
            # CloudTrail writes a file a few minutes after its newest event
            files.append((window[i : i + spec.events_per_file], world.rng.uniform(60, 300)))
    return files


def write_sample(out: str, spec: SampleSpec) -> SampleSummary:
    """Generate the sample and write it under ``out/AWSLogs/...``; returns what was written."""
    if spec.events < 1 or spec.days < 1 or spec.accounts < 1 or spec.events_per_file < 1:
        raise ValueError("--events, --days, --accounts and --events-per-file must be positive")
    if spec.file_minutes < 0:
        raise ValueError("--file-minutes must be 0 (files by size) or a number of minutes")
    world = World(spec)
    try:
        end = dt.date.fromisoformat(spec.end_date or DEFAULT_END)
    except ValueError as exc:
        raise ValueError(f"--end-date {spec.end_date!r}: expected a day as YYYY-MM-DD") from exc
    days = [end - dt.timedelta(days=spec.days - 1 - i) for i in range(spec.days)]
    buckets: dict[tuple[str, str, dt.date], list[dict[str, Any]]] = defaultdict(list)
    attack = _attack(world, world.accounts[0], days[-1])
    for event in attack:
        buckets[(world.accounts[0], event["awsRegion"], days[-1])].append(event)
    for _ in range(max(spec.events - len(attack), 0)):
        account = world.rng.choice(world.accounts)
        day = world.rng.choice(days)
        event = _normal_event(world, account, day)
        buckets[(account, event["awsRegion"], day)].append(event)
    summary = SampleSummary(
        out=out,
        accounts=world.accounts,
        days=[d.isoformat() for d in days],
        attack_events=len(attack),
    )
    from loader.sample.enrichment_data import write_enrichment_data

    summary.enrichment = write_enrichment_data(out, days[-1])
    for (account, region, day), events in sorted(buckets.items()):
        events.sort(key=lambda e: e["eventTime"])
        folder = os.path.join(
            out, "AWSLogs", account, "CloudTrail", region, f"{day:%Y}", f"{day:%m}", f"{day:%d}"
        )
        os.makedirs(folder, exist_ok=True)
        for chunk, delay in _files(events, spec, world):
            name = _file_name(account, region, chunk[-1]["eventTime"], world, delay)
            payload = json.dumps({"Records": chunk}, separators=(",", ":")).encode()
            with open(os.path.join(folder, name), "wb") as handle:
                handle.write(gzip.compress(payload, compresslevel=6, mtime=0))
            summary.files += 1
            summary.events += len(chunk)
    return summary
