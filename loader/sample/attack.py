"""The attack story the sample injects on its last day, in its first account (docs/sample.md):

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
from typing import Any

from loader.sample.catalog import ATTACKER_IPS, CONSOLE_AGENT, TOR_EXIT_IP
from loader.sample.events import World, console_login, event_time, make_event

ATTACK_USER = "dave"
ENUMERATION_CALLS = 40
ENUMERATION = (
    "iam:ListRoles", "iam:GetAccountAuthorizationDetails", "secretsmanager:ListSecrets",
    "kms:ListKeys", "lambda:ListFunctions20150331", "rds:DescribeDBInstances",
    "organizations:DescribeOrganization", "ssm:DescribeParameters",
)  # fmt: skip
ATTACK_NEW_USER = "backup-admin"
CLI = "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.0"


class _Story:
    """The attack's actors and clock; each step appends its events, in time order."""

    def __init__(self, world: World, account: str, day: dt.date) -> None:
        self.world, self.account, self.day = world, account, day
        people = {p["name"]: p for p in world.identities[account]}
        self.dave, root = people[ATTACK_USER], people["root"]
        self.from_china = {**self.dave, "ips": ATTACKER_IPS}
        self.from_tor = {**self.dave, "ips": [TOR_EXIT_IP]}
        self.root_tor = {**root, "ips": [TOR_EXIT_IP]}
        self.events: list[dict[str, Any]] = []

    def at(self, minute: int) -> str:
        return event_time(self.day, 2 * 3600 + minute * 60)

    def call(self, who: dict[str, Any], minute: int, api: str, read_only: bool, **extra: Any):
        service, name = api.split(":")
        extra.setdefault("userAgent", CLI)
        return make_event(
            self.world, self.account, "us-east-1", who, self.at(minute),
            f"{service}.amazonaws.com", name, read_only, **extra,
        )  # fmt: skip

    def reconnaissance(self) -> None:
        """02:01-02:09 from China: who am I, then 40 refused calls: what may this key do?"""
        first = ["sts:GetCallerIdentity", "s3:ListBuckets", "ec2:DescribeInstances",
                 "iam:ListUsers"]  # fmt: skip
        self.events += [self.call(self.from_china, 1 + i, api, True) for i, api in enumerate(first)]
        for i in range(ENUMERATION_CALLS):
            api = ENUMERATION[i % len(ENUMERATION)]
            refused = self.call(
                self.from_china, 5, api, True, errorCode="AccessDenied",
                errorMessage=f"User: {self.dave['name']} is not authorized to perform: {api}",
            )  # fmt: skip
            refused["eventTime"] = event_time(self.day, 2 * 3600 + 5 * 60 + i * 7)  # to 02:09
            refused["responseElements"] = None
            self.events.append(refused)

    def takeover(self) -> None:
        """02:10-02:17 from Tor: dave lists keys, root signs in without MFA, stops the trail."""
        self.events.append(self.call(self.from_tor, 10, "iam:ListAccessKeys", True))
        self.events.append(
            console_login(
                self.world,
                self.account,
                self.root_tor,
                self.at(15),
                mfa=False,
                success=True,
                source_ip=TOR_EXIT_IP,
            )  # fmt: skip
        )
        trail = f"arn:aws:cloudtrail:us-east-1:{self.account}:trail/management-events"
        stop = self.call(self.root_tor, 17, "cloudtrail:StopLogging", False,
                         requestParameters={"name": trail}, userAgent=CONSOLE_AGENT)  # fmt: skip
        stop["userIdentity"]["sessionContext"]["attributes"]["mfaAuthenticated"] = "false"
        self.events.append(stop)

    def backdoor(self) -> None:
        """02:20-02:32: a new user with a long-term key, then used from Tor."""
        world, user = self.world, ATTACK_NEW_USER
        created = {"userName": user, "path": "/", "arn": f"arn:aws:iam::{self.account}:user/{user}",
                   "userId": world._key("AIDA"), "createDate": self.at(20)}  # fmt: skip
        self.events.append(self.call(self.from_tor, 20, "iam:CreateUser", False,
                                     requestParameters={"userName": user},
                                     responseElements={"user": created}))  # fmt: skip
        new_key = world._key("AKIA")
        access = {"accessKeyId": new_key, "status": "Active", "userName": user,
                  "createDate": self.at(21)}  # fmt: skip
        self.events.append(self.call(self.from_tor, 21, "iam:CreateAccessKey", False,
                                     requestParameters={"userName": user},
                                     responseElements={"accessKey": access}))  # fmt: skip
        backdoor = {"kind": "user", "name": user, "ips": [TOR_EXIT_IP],
                    "principal_id": world._key("AIDA"), "keys": [new_key]}  # fmt: skip
        uses = ["sts:GetCallerIdentity", "s3:ListBuckets", "secretsmanager:ListSecrets"]
        self.events += [self.call(backdoor, 30 + i, api, True) for i, api in enumerate(uses)]


def attack_events(world: World, account: str, day: dt.date) -> list[dict[str, Any]]:
    """The documented attack story, between 02:00 and 03:00 UTC on the last day."""
    story = _Story(world, account, day)
    story.reconnaissance()
    story.takeover()
    story.backdoor()
    return story.events
