"""What the sample's actors do: API calls with realistic request parameters and weights."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Params = Callable[[random.Random, str, str], Any]


@dataclass(frozen=True)
class Api:
    source: str
    name: str
    read_only: bool
    weight: float
    params: Params | None = None
    response: Params | None = None
    data_event: bool = False


def _instance(rng: random.Random) -> str:
    return f"i-{rng.getrandbits(68):017x}"


def _bucket(rng: random.Random, account: str) -> str:
    return rng.choice(["app-assets", "backups", "logs", "data-lake", "terraform-state"]) + (
        f"-{account[-4:]}"
    )


def _describe_instances(rng, account, region):
    return {"instancesSet": {"items": [{"instanceId": _instance(rng)}]}, "filterSet": {}}


def _get_object(rng, account, region):
    return {
        "bucketName": _bucket(rng, account),
        "Host": f"{_bucket(rng, account)}.s3.{region}.amazonaws.com",
        "key": f"reports/2024/{rng.randint(1, 12):02d}/report-{rng.randint(1, 999)}.csv",
    }


def _bucket_only(rng, account, region):
    return {"bucketName": _bucket(rng, account), "Host": "s3.amazonaws.com"}


def _kms(rng, account, region):
    return {
        "keyId": f"arn:aws:kms:{region}:{account}:key/{rng.getrandbits(128):032x}",
        "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }


def _parameter(rng, account, region):
    return {
        "name": rng.choice(["/app/db/host", "/app/feature-flags", "/ci/token"]),
        "withDecryption": rng.random() < 0.5,
    }


def _secret(rng, account, region):
    return {"secretId": rng.choice(["prod/db/password", "prod/api-key", "ci/github-token"])}


def _log_stream(rng, account, region):
    return {
        "logGroupName": f"/aws/lambda/{rng.choice(['ingest', 'resize', 'notify'])}",
        "logStreamName": f"2024/03/01/[$LATEST]{rng.getrandbits(128):032x}",
    }


def _run_instances(rng, account, region):
    return {
        "instancesSet": {
            "items": [{"imageId": f"ami-{rng.getrandbits(64):016x}", "minCount": 1, "maxCount": 1}]
        },
        "instanceType": rng.choice(["t3.micro", "t3.large", "m5.xlarge"]),
        "disableApiTermination": False,
    }


def _run_instances_response(rng, account, region):
    return {"instancesSet": {"items": [{"instanceId": _instance(rng)}]}, "ownerId": account}


def _assume_role(rng, account, region):
    return {
        "roleArn": f"arn:aws:iam::{account}:role/deploy",
        "roleSessionName": "ci",
        "durationSeconds": 3600,
    }


def _put_metric(rng, account, region):
    return {
        "namespace": "App",
        "metricData": [{"metricName": "Latency", "value": round(rng.random() * 300, 3)}],
    }


API_MIX: tuple[Api, ...] = (
    Api("ec2.amazonaws.com", "DescribeInstances", True, 14, _describe_instances),
    Api("ec2.amazonaws.com", "DescribeSecurityGroups", True, 6),
    Api("ec2.amazonaws.com", "DescribeVolumes", True, 4),
    Api("ec2.amazonaws.com", "RunInstances", False, 0.6, _run_instances, _run_instances_response),
    Api("s3.amazonaws.com", "ListBuckets", True, 5, lambda r, a, g: {"Host": "s3.amazonaws.com"}),
    Api("s3.amazonaws.com", "GetBucketAcl", True, 3, _bucket_only),
    Api("s3.amazonaws.com", "GetObject", True, 12, _get_object, data_event=True),
    Api("s3.amazonaws.com", "PutObject", False, 5, _get_object, data_event=True),
    Api("sts.amazonaws.com", "GetCallerIdentity", True, 5),
    Api("sts.amazonaws.com", "AssumeRole", False, 4, _assume_role),
    Api("kms.amazonaws.com", "Decrypt", True, 9, _kms),
    Api("kms.amazonaws.com", "GenerateDataKey", True, 4, _kms),
    Api("iam.amazonaws.com", "ListUsers", True, 2),
    Api("iam.amazonaws.com", "GetUser", True, 2),
    Api("iam.amazonaws.com", "ListRoles", True, 2),
    Api("lambda.amazonaws.com", "ListFunctions20150331", True, 3),
    Api("logs.amazonaws.com", "CreateLogStream", False, 6, _log_stream),
    Api("monitoring.amazonaws.com", "PutMetricData", False, 4, _put_metric),
    Api("ssm.amazonaws.com", "GetParameter", True, 5, _parameter),
    Api("secretsmanager.amazonaws.com", "GetSecretValue", True, 2, _secret),
    Api("cloudtrail.amazonaws.com", "DescribeTrails", True, 1),
    Api("config.amazonaws.com", "DescribeConfigRules", True, 1),
)
API_WEIGHTS = [api.weight for api in API_MIX]

USER_AGENTS = (
    "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.0 exe/x86_64.debian.12 prompt/off command/{cmd}",
    "Boto3/1.34.51 md/Botocore#1.34.51 ua/2.0 os/linux#6.1.0 md/arch#x86_64 lang/python#3.11.8",
    "aws-sdk-go-v2/1.25.2 os/linux lang/go#1.22.0 md/GOOS#linux md/GOARCH#amd64 api/ec2#1.149.3",
    "terraform/1.7.4 (+https://www.terraform.io) terraform-provider-aws/5.39.1",
    "console.amazonaws.com",
)
CONSOLE_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36"
)

# Addresses inside the ranges of MaxMind's public test databases, so GeoIP finds them.
OFFICE_IPS = {
    "US": ["216.160.83.56", "216.160.83.57", "216.160.83.58", "214.78.0.10", "214.78.1.20"],
    "GB": ["81.2.69.142", "81.2.69.143", "81.2.69.150", "2.125.160.216", "2.125.160.217"],
    "SE": ["89.160.20.112", "89.160.20.115", "89.160.20.130"],
}
ATTACKER_IPS = ["175.16.199.21", "175.16.199.88"]  # CN in the test databases
TOR_EXIT_IP = "171.25.193.25"  # a long-lived Tor exit node, in every published list
DEFAULT_END = "2024-03-31"  # the last day of a sample unless told
