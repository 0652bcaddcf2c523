"""A month of CloudTrail history for the baseline rules' tests: principals refused API calls at
their own steady rates, and the departures the tests look for.

In account ACCOUNT (and, for the organization test, a second one), from START for DAYS days:

- ``steady-app``: a service user refused ~4 calls every hour, day and night (Poisson); on
  SPIKE_DAY at 14:00 it is refused SPIKE more (enumeration with a key that lacks rights);
- ``office-worker``: ~22 refusals an hour, 09:00-17:00 only (zero at night: the p95 term);
- ``growing-role``: working hours, ~10 an hour on the first day, 3% more every day;
- ``new-hire``: first seen two days before SPIKE_DAY (3 an hour), then a burst of 80 at
  10:00 on SPIKE_DAY: younger than ``min_history``, so no alert.

Files as CloudTrail writes them: one per account, region and 6 hours, named with the time
written (the last event plus 3 minutes), in the ``AWSLogs/ACCOUNT/CloudTrail/REGION/Y/M/D``
layout.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import random
from pathlib import Path
from typing import Any

ACCOUNT = "111122223333"
START = dt.date(2024, 3, 1)
DAYS = 30
SPIKE_DAY = dt.date(2024, 3, 28)
SPIKE_HOUR = 14
SPIKE = 150
APIS = ("iam:ListUsers", "iam:ListRoles", "s3:ListBuckets", "ec2:DescribeInstances",
        "secretsmanager:ListSecrets")  # fmt: skip


def arn(name: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:iam::{account}:user/{name}"


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: the counts of a steady rate of independent calls
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def event(
    name: str, at: dt.datetime, api: str, n: int, account: str = ACCOUNT,
    denied: bool = True, ip: str = "81.2.69.142",
) -> dict[str, Any]:  # fmt: skip
    service, call = api.split(":")
    record: dict[str, Any] = {
        "eventVersion": "1.09",
        "userIdentity": {"type": "IAMUser", "principalId": f"AIDA{name.upper()[:12]}",
                         "arn": arn(name, account), "accountId": account, "userName": name},
        "eventTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": f"{service}.amazonaws.com", "eventName": call,
        "awsRegion": "us-east-1", "sourceIPAddress": ip, "userAgent": "aws-cli/2.15.0",
        "requestParameters": None, "responseElements": None,
        "eventID": f"{account}-{name}-{at:%Y%m%d%H%M%S}-{n:05d}", "readOnly": True,
        "eventType": "AwsApiCall", "managementEvent": True, "recipientAccountId": account,
        "eventCategory": "Management",
    }  # fmt: skip
    if denied:
        record["errorCode"] = "AccessDenied"
        record["errorMessage"] = f"User: {arn(name, account)} is not authorized to perform: {api}"
    return record


def _hour(rng: random.Random, name: str, hour: dt.datetime, count: int, **kw: Any) -> list:
    return [
        event(name, hour + dt.timedelta(seconds=rng.randrange(3600)), rng.choice(APIS),
              rng.randrange(100_000), **kw)
        for _ in range(count)
    ]  # fmt: skip


def history_events(seed: int = 5, spike: bool = True) -> list[dict[str, Any]]:
    """The month's events (see the module's text), in time order."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    for d in range(DAYS):
        day = START + dt.timedelta(days=d)
        for h in range(24):
            hour = dt.datetime(day.year, day.month, day.day, h)
            events += _hour(rng, "steady-app", hour, _poisson(rng, 4))
            if 9 <= h < 17:
                events += _hour(rng, "office-worker", hour, _poisson(rng, 22))
                events += _hour(rng, "growing-role", hour, _poisson(rng, 10 * 1.03**d))
                if day >= SPIKE_DAY - dt.timedelta(days=2):
                    events += _hour(rng, "new-hire", hour, _poisson(rng, 3))
            if spike and day == SPIKE_DAY and h == SPIKE_HOUR:
                events += _hour(rng, "steady-app", hour, SPIKE)
            if spike and day == SPIKE_DAY and h == 10:
                events += _hour(rng, "new-hire", hour, 80)
    events.sort(key=lambda e: (e["eventTime"], e["eventID"]))
    return events


def write_files(
    root: Path, events: list[dict[str, Any]], hours: int = 6, org: str | None = None
) -> list[Path]:
    """``events`` as CloudTrail log files under ``root/AWSLogs`` (``AWSLogs/ORG`` for an
    organization trail): one per account, region and ``hours``; the paths, in time order."""
    chunks: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for record in events:
        at = dt.datetime.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%SZ")
        window = at.replace(hour=at.hour - at.hour % hours, minute=0, second=0)
        key = (record["recipientAccountId"], record["awsRegion"], window.isoformat())
        chunks.setdefault(key, []).append(record)
    paths = []
    for (account, region, window), records in sorted(chunks.items(), key=lambda kv: kv[0][2]):
        newest = max(r["eventTime"] for r in records)
        written = dt.datetime.strptime(newest, "%Y-%m-%dT%H:%M:%SZ") + dt.timedelta(minutes=3)
        start = dt.datetime.fromisoformat(window)
        base = root / "AWSLogs" / org if org else root / "AWSLogs"
        folder = base / account / "CloudTrail" / region / f"{start:%Y/%m/%d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{account}_CloudTrail_{region}_{written:%Y%m%dT%H%MZ}_{start:%H}h.json.gz"
        payload = json.dumps({"Records": records}, separators=(",", ":")).encode()
        path.write_bytes(gzip.compress(payload, mtime=0))
        paths.append(path)
    return paths
