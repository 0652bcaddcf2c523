"""Normal life in the sample's accounts, one CloudTrail event at a time.

IAM users working from their usual offices (US, GB, SE), roles assumed by CI and engineers, AWS
services acting on the accounts' behalf (``AWS Internal`` and service host names as source),
console sign-ins with and without MFA, a few percent of AccessDenied. Deterministic per seed.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any

from loader.sample.catalog import API_MIX, API_WEIGHTS, CONSOLE_AGENT, OFFICE_IPS, USER_AGENTS
from loader.sample.spec import SampleSpec

REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
REGION_WEIGHTS = (0.6, 0.25, 0.15)
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


def event_time(day: dt.date, seconds: float) -> str:
    moment = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc) + dt.timedelta(
        seconds=seconds
    )
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def user_identity(world: World, account: str, who: dict[str, Any], at: str) -> dict[str, Any]:
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


def make_event(
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
        "userIdentity": user_identity(world, account, who, at),
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


def normal_event(world: World, account: str, day: dt.date) -> dict[str, Any]:
    rng = world.rng
    people = world.identities[account]
    who = rng.choices(people, weights=[p["weight"] for p in people])[0]
    # Working hours of the actor's office, with a long tail of automation at night.
    seconds = rng.gauss(13.5 * 3600, 3 * 3600) if rng.random() < 0.8 else rng.random() * 86400
    at = event_time(day, min(max(seconds, 0), 86399))
    region = rng.choices(REGIONS, weights=REGION_WEIGHTS)[0]
    if who["kind"] in ("user", "root") and rng.random() < 0.02:
        return console_login(
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
    return make_event(world, account, region, who, at, api.source, api.name, api.read_only, **extra)


def console_login(
    world: World,
    account: str,
    who: dict[str, Any],
    at: str,
    mfa: bool,
    success: bool,
    source_ip: str | None = None,
) -> dict[str, Any]:
    event = make_event(
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
