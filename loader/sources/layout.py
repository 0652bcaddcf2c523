"""The CloudTrail S3 key layout, parsed without touching any file.

    [prefix/]AWSLogs/[<org-id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/<name>.json.gz

``CloudTrail-Insight`` and ``CloudTrail-Digest`` folders sit beside ``CloudTrail`` and hold
Insights events and digest files.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

LAYOUT_RE = re.compile(
    r"(?:^|/)AWSLogs/(?:(?P<org>o-[a-z0-9]{10,32})/)?(?P<account>\d{12})/"
    r"(?P<folder>CloudTrail|CloudTrail-Insight|CloudTrail-Digest)/"
    r"(?P<region>[a-z0-9-]+)/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P<name>[^/]+)$"
)
# A path under a CloudTrail folder that does not follow the layout is worth reporting.
CLOUDTRAIL_FOLDER_RE = re.compile(r"(?:^|/)AWSLogs/.*/CloudTrail(?:-Insight)?/")
LOG_SUFFIXES = (".json.gz", ".json")

KIND_BY_FOLDER = {
    "CloudTrail": "cloudtrail",
    "CloudTrail-Insight": "insight",
    "CloudTrail-Digest": "digest",
}


@dataclass(frozen=True)
class ListedFile:
    """One file as listed: local path or s3:// URL, size in bytes, modification time (epoch s)."""

    path: str
    size: int
    modified: float


@dataclass(frozen=True)
class Placement:
    """Where a file sits in the layout; ``kind`` is cloudtrail, insight or digest."""

    kind: str
    account: str
    region: str
    dt: str
    org_id: str | None
    directory: str
    name: str

    @property
    def partition(self) -> tuple[str, str, str]:
        return (self.account, self.region, self.dt)


class LayoutMismatch(ValueError):
    """A file that looks like a CloudTrail log but is not where the layout puts one."""


def place(path: str) -> Placement | None:
    """Placement of ``path`` in the layout, None when the file is not a CloudTrail file at all.

    Raises:
        LayoutMismatch: the file is under a CloudTrail folder but breaks the layout (bad date,
            unexpected depth, not a .json/.json.gz file).
    """
    normalized = path.replace("\\", "/")
    match = LAYOUT_RE.search(normalized)
    if match is None:
        if CLOUDTRAIL_FOLDER_RE.search(normalized) and normalized.endswith(LOG_SUFFIXES):
            raise LayoutMismatch(
                "not in the CloudTrail layout "
                "AWSLogs/[<org-id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/<file>"
            )
        return None
    kind = KIND_BY_FOLDER[match["folder"]]
    name = match["name"]
    if not name.endswith(LOG_SUFFIXES):
        if kind == "digest" or name.startswith("."):
            return None
        raise LayoutMismatch(f"'{name}' is not a .json.gz log file")
    try:
        day = dt.date(int(match["y"]), int(match["m"]), int(match["d"]))
    except ValueError as exc:
        raise LayoutMismatch(f"invalid date folder {match['y']}/{match['m']}/{match['d']}") from exc
    directory = normalized[: normalized.rfind("/")]
    return Placement(
        kind=kind,
        account=match["account"],
        region=match["region"],
        dt=day.isoformat(),
        org_id=match["org"],
        directory=directory,
        name=name,
    )


# The partition values a file's path gives, as Spark SQL regular expressions.
_PATH_PARTS = {
    "account": r"/AWSLogs/(?:o-[a-z0-9]+/)?([0-9]{12})/CloudTrail/",
    "region": r"/CloudTrail/([a-z0-9-]+)/[0-9]{4}/",
    "dt": r"/CloudTrail/[a-z0-9-]+/([0-9]{4}/[0-9]{2}/[0-9]{2})/",
}


def with_layout_columns(raw: DataFrame, path: Column | None = None) -> DataFrame:
    """``Records`` of a file-source DataFrame (batch or streaming) with the file's path and the
    account, region and day its place in the layout gives: what ``events_query`` reads.
    ``path``: the column holding each row's file (default: the file source's metadata)."""
    from pyspark.sql import functions as F

    path = F.col("_metadata.file_path") if path is None else path
    columns = [raw.Records, path.alias("file_path")]
    for name, pattern in _PATH_PARTS.items():
        part = F.regexp_extract(path, pattern, 1)
        columns.append((F.regexp_replace(part, "/", "-") if name == "dt" else part).alias(name))
    return raw.select(*columns)
