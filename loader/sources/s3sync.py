"""`sync`: mirror the CloudTrail log objects under an S3 prefix to a local folder, for a Spark
that has no S3 filesystem (the pyspark wheel).

- Only CloudTrail log files are listed and copied (``*_CloudTrail_*.json.gz`` and Insights
  ``*_CloudTrail-Insight_*.json.gz``); digests and anything else under the prefix are not.
- Each object goes to ``DEST/<its key>``, so the copy keeps the CloudTrail layout
  (``DEST/AWSLogs/...``) that `create-hive-table` and `run` read.
- Incremental: an object whose local copy has its size and is not older is skipped.
- Resumable: an object is written to a hidden ``.part`` file and renamed when complete, so
  a sync stopped at any point leaves no half file under a real name; the next run redoes it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from loader.errors import LoaderError
from loader.progress import Progress
from loader.s3util import s3_client, split_s3

LOG_OBJECT = re.compile(r"_CloudTrail(?:-Insight)?_[^/]*\.json\.gz$")


@dataclass(frozen=True)
class LogObject:
    bucket: str
    key: str
    size: int
    modified: float


@dataclass
class SyncReport:
    source: str
    dest: str
    listed: int = 0
    copied: int = 0
    copied_bytes: int = 0
    up_to_date: int = 0
    failed: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [
            f"{self.source} -> {self.dest}",
            f"log objects: {self.listed:,} listed, {self.copied:,} copied "
            f"({self.copied_bytes / 1e6:,.1f} MB), {self.up_to_date:,} already up to date",
        ]
        lines += [f"FAILED {problem}" for problem in self.failed]
        return "\n".join(lines)


def list_log_objects(url: str, client: Any = None, page_size: int = 1000) -> Iterator[LogObject]:
    """The CloudTrail log objects under an s3:// prefix, page by page."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = split_s3(url)
    client = client or s3_client()
    paginator = client.get_paginator("list_objects_v2")
    try:
        pages = paginator.paginate(
            Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}
        )
        for page in pages:
            for item in page.get("Contents", []):
                if LOG_OBJECT.search(item["Key"]):
                    yield LogObject(bucket, item["Key"], int(item["Size"]),
                                    item["LastModified"].timestamp())  # fmt: skip
    except (BotoCoreError, ClientError) as exc:
        raise LoaderError(f"{url}: cannot list S3 objects: {exc}") from exc


def sync(url: str, dest: str, client: Any = None, page_size: int = 1000) -> SyncReport:
    """Copy the log objects under ``url`` that ``dest`` lacks or holds an older copy of."""
    from botocore.exceptions import BotoCoreError, ClientError

    client = client or s3_client()
    report = SyncReport(url, dest)
    progress = Progress("objects checked")
    for item in list_log_objects(url, client, page_size):
        report.listed += 1
        target = os.path.join(dest, *item.key.split("/"))
        progress.advance(detail=item.key)
        partial = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.part")
        if _up_to_date(target, item):
            report.up_to_date += 1
            if os.path.exists(partial):  # left by a copy stopped after an earlier complete one
                os.remove(partial)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        try:
            client.download_file(item.bucket, item.key, partial)
            os.utime(partial, (item.modified, item.modified))
            os.replace(partial, target)
        except (BotoCoreError, ClientError, OSError) as exc:
            report.failed.append(f"s3://{item.bucket}/{item.key}: {exc}")
            continue
        report.copied += 1
        report.copied_bytes += item.size
    progress.close()
    return report


def _up_to_date(path: str, item: LogObject) -> bool:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return False
    return stat.st_size == item.size and stat.st_mtime >= item.modified - 1
