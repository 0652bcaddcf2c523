"""Where the logs are: discover, sync."""

from __future__ import annotations

import argparse

from loader.cli.options import DATABASE, SOURCE, Option, command
from loader.config import Settings
from loader.errors import ConfigError

REGIONS = Option("regions", "only these regions", many=True)
CREATE = Option(
    "create",
    "create/update the CloudTrail tables (as create-hive-table) over every location",
)
SYNC_TO = Option(
    "sync_to",
    "first copy every location's log objects into DIR (as sync); with --create, the tables "
    "are made over the copies (for a Spark without an S3 filesystem)",
    metavar="DIR",
)
DEST = Option("dest", "local folder to copy into (required)")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    discover = command(
        commands, "discover", discover_trails,
        help="find where the CloudTrail trails of every enabled region write (boto3)",
        description="Ask every enabled region (or --regions) for its trails, organization "
        "trails included, and print each S3 bucket/prefix once however many trails or regions "
        "write there. Give a location to create-hive-table, or to sync first.",
    )  # fmt: skip
    REGIONS.add(discover)
    CREATE.add(discover)
    SYNC_TO.add(discover)
    DATABASE.add(discover, "database for --create")

    sync = command(
        commands, "sync", sync_logs, spark=False,
        help="copy new CloudTrail log objects from S3 to a local folder (incremental)",
        description="Mirror the CloudTrail log objects (not digests) under an s3:// prefix to "
        "DEST/<key>, keeping the layout; objects already copied are skipped, an interrupted "
        "sync is resumed by running it again. For a local Spark without an S3 filesystem.",
    )  # fmt: skip
    SOURCE.add(sync, "s3://bucket/prefix to copy from (required)")
    DEST.add(sync)


def discover_trails(settings: Settings) -> int:
    from loader.sources.discover import discover
    from loader.tables.discovered import create_discovered

    found = discover(settings.regions)
    print(found.render())
    if not found.locations:
        return 1
    return create_discovered(settings, found)


def sync_logs(settings: Settings) -> int:
    from loader.s3util import is_s3
    from loader.sources.s3sync import sync

    source = settings.need("source", "sync")
    if not is_s3(source):
        raise ConfigError(f"sync --source {source}: expected s3://bucket/prefix")
    report = sync(source, settings.need("dest", "sync"))
    print(report.render())
    return 1 if report.failed else 0
