"""`discover`: where the account's CloudTrail trails write, found with boto3.

Every enabled region is asked for its trails (``describe_trails`` with shadow trails, so a
multi-region or organization trail shows up in each region it covers). Trails that write to the
same bucket and prefix are one location, as in the 2015 demo: a location is read once however
many trails or regions point at it. A region that cannot be asked (access denied, disabled) is
reported and the others still answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loader.errors import LoaderError


@dataclass
class TrailLocation:
    bucket: str
    prefix: str
    trails: set[str] = field(default_factory=set)
    home_regions: set[str] = field(default_factory=set)
    organization: bool = False

    @property
    def url(self) -> str:
        prefix = f"{self.prefix.strip('/')}/" if self.prefix.strip("/") else ""
        return f"s3://{self.bucket}/{prefix}AWSLogs"


@dataclass
class Discovery:
    regions: list[str]
    locations: list[TrailLocation]
    problems: list[str]

    def render(self) -> str:
        lines = [
            f"regions asked: {len(self.regions)}",
            "",
            "| location | trails | home regions | organization |",
            "|---|---|---|---|",
        ]
        for loc in self.locations:
            names = ", ".join(sorted(t.rsplit("/", 1)[-1] for t in loc.trails))
            lines.append(f"| {loc.url} | {names} | {', '.join(sorted(loc.home_regions))} | "
                         f"{'yes' if loc.organization else 'no'} |")  # fmt: skip
        lines += [f"skipped {problem}" for problem in self.problems]
        return "\n".join(lines)


def enabled_regions(session: Any) -> list[str]:
    """The regions this account has enabled (opt-in regions only once opted in)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        answer = session.client("ec2").describe_regions(AllRegions=False)
    except (BotoCoreError, ClientError) as exc:
        raise LoaderError(f"cannot list the enabled regions (ec2:DescribeRegions): {exc}") from exc
    return sorted(region["RegionName"] for region in answer["Regions"])


def discover(regions: list[str] | None = None, session: Any = None) -> Discovery:
    """The trails' S3 locations over ``regions`` (default: every enabled region)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    session = session or boto3.session.Session()
    regions = regions or enabled_regions(session)
    by_place: dict[tuple[str, str], TrailLocation] = {}
    problems = []
    for region in regions:
        try:
            trails = session.client("cloudtrail", region_name=region).describe_trails(
                includeShadowTrails=True
            )["trailList"]
        except (BotoCoreError, ClientError) as exc:
            problems.append(f"{region}: {exc}")
            continue
        for trail in trails:
            if not trail.get("S3BucketName"):
                continue
            place = (trail["S3BucketName"], (trail.get("S3KeyPrefix") or "").strip("/"))
            location = by_place.setdefault(place, TrailLocation(*place))
            location.trails.add(trail.get("TrailARN") or trail["Name"])
            location.home_regions.add(trail.get("HomeRegion") or region)
            location.organization |= bool(trail.get("IsOrganizationTrail"))
    locations = sorted(by_place.values(), key=lambda loc: (loc.bucket, loc.prefix))
    return Discovery(list(regions), locations, problems)
