"""Small helpers around S3 URLs and boto3, imported lazily so --help stays fast."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from loader.errors import LoaderError


def is_s3(path: str) -> bool:
    return path.startswith(("s3://", "s3a://", "s3n://"))


def split_s3(url: str) -> tuple[str, str]:
    """'s3://bucket/a/b' -> ('bucket', 'a/b')."""
    parsed = urlparse(url)
    if not parsed.netloc:
        raise LoaderError(f"{url}: not an S3 URL of the form s3://bucket/prefix")
    return parsed.netloc, parsed.path.lstrip("/")


def s3_client() -> Any:
    """A boto3 S3 client honouring the standard credential chain, AWS_PROFILE, region and
    AWS_ENDPOINT_URL settings."""
    import boto3

    return boto3.client("s3")


def read_s3_bytes(url: str) -> bytes:
    """Whole object as bytes; errors name the URL and what went wrong."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_s3(url)
    try:
        return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except (BotoCoreError, ClientError) as exc:
        raise LoaderError(f"{url}: cannot read from S3: {exc}") from exc
