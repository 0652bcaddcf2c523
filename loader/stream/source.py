"""The runner's source: CloudTrail log files under a folder or s3:// prefix, new ones as they
land, as a Structured Streaming DataFrame typed exactly like the ``cloudtrail`` view.

Only CloudTrail log files are read: their names are ``<account>_CloudTrail_<region>_...json.gz``,
so digests (``_CloudTrail-Digest_``) and Insights files (``_CloudTrail-Insight_``) never match.
The checkpoint of the query using this source remembers which files were processed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

LOG_FILE_GLOB = "*_CloudTrail_*.json.gz"
RAW_VIEW = "__stream_raw"


def stream_events(
    spark: SparkSession,
    source: str,
    max_files_per_trigger: int | None = None,
    files_where: str | None = None,
) -> DataFrame:
    """A streaming DataFrame of the events in log files under ``source``; ``files_where``: SQL
    over a file's ``account``, ``region`` and ``dt`` choosing the files to read (Spark prunes
    the others by their path, without opening them)."""
    from loader.sources.layout import with_layout_columns
    from loader.sources.listing import normalize_source
    from loader.tables.cloudtrail_ddl import RAW_OPTIONS, events_query

    options = {**RAW_OPTIONS, "pathGlobFilter": LOG_FILE_GLOB, "recursiveFileLookup": "true"}
    if max_files_per_trigger:
        options["maxFilesPerTrigger"] = str(max_files_per_trigger)
    reader = spark.readStream.schema("Records ARRAY<STRING>").options(**options)
    raw = with_layout_columns(reader.json(normalize_source(source)))
    if files_where:
        raw = raw.where(files_where)
    raw.createOrReplaceTempView(RAW_VIEW)
    return spark.sql(events_query(RAW_VIEW, file_path="file_path"))
