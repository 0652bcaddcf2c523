"""`discover --sync-to/--create`: copy and register every location the trails write to."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loader.config import Settings
    from loader.sources.discover import Discovery


def sync_locations(sources: list[str], dest: str) -> list[str] | None:
    """Copy every location's log objects under DEST; the local folders, None on a failure."""
    from loader.s3util import split_s3
    from loader.sources.s3sync import sync

    copies = []
    for url in sources:
        report = sync(url, dest)
        print(report.render())
        if report.failed:
            return None
        _, prefix = split_s3(url)
        copies.append(os.path.join(dest, prefix))
    return copies


def create_discovered(settings: Settings, found: Discovery) -> int:
    """Sync (with ``sync_to``) and create the tables (with ``create``) for what was found."""
    sources: list[str] | None = [location.url for location in found.locations]
    if settings.sync_to:
        sources = sync_locations(sources or [], settings.sync_to)
        if sources is None:
            return 1
    if not settings.create:
        return 0
    from loader.session import build_session
    from loader.sources.listing import list_files
    from loader.tables.create_cloudtrail import create_cloudtrail_tables

    spark = build_session(settings, "tsa discover --create")
    for source in sources or []:
        if settings.sync_to and not os.path.isdir(source):
            print(f"{source}: no log objects copied, no tables to make")
            continue
        if not settings.sync_to and next(iter(list_files(source)), None) is None:
            print(f"{source}: no objects yet, no tables to make")
            continue
        print(create_cloudtrail_tables(spark, source, settings.database).render())
    return 0
