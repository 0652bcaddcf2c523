"""Reading and changing the catalog through Spark: statements, partitions and their locations."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from loader.errors import LoaderError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def run_statements(spark: SparkSession, statements: Iterable[str]) -> None:
    """Execute DDL, naming the statement that failed."""
    from pyspark.errors import PySparkException

    for statement in statements:
        try:
            spark.sql(statement)
        except PySparkException as exc:
            scheme = re.search(r'No FileSystem for scheme "(\w+)"', str(exc))
            if scheme:
                raise LoaderError(
                    f"this Spark has no filesystem for {scheme.group(1)}:// locations, so the "
                    "catalog cannot register them. Run on a cluster that reads S3 (EMR, or "
                    "Spark with hadoop-aws and fs.s3.impl set), or copy the logs to a local "
                    "folder and use that as --source"
                ) from exc
            head = statement if len(statement) < 200 else statement[:200] + "..."
            raise LoaderError(f"catalog refused: {head}\n  {exc}") from exc


def partition_locations(spark: SparkSession, db: str, table: str) -> dict[tuple[str, ...], str]:
    """{(account, region, dt): location} of the table's registered partitions."""
    jvm = spark._jvm
    catalog = spark._jsparkSession.sessionState().catalog()
    ident = jvm.org.apache.spark.sql.catalyst.TableIdentifier.apply(table, jvm.scala.Some(db))
    partitions = catalog.listPartitions(ident, jvm.scala.Option.empty())
    result: dict[tuple[str, ...], str] = {}
    iterator = partitions.iterator()
    while iterator.hasNext():
        partition = iterator.next()
        spec = partition.spec()
        key = tuple(spec.apply(name) for name in ("account", "region", "dt"))
        result[key] = _plain_location(partition.location().toString())
    return result


def _plain_location(uri: str) -> str:
    """'file:/a/b' -> '/a/b' so locations compare with the paths we list."""
    if uri.startswith("file:"):
        from urllib.parse import unquote, urlparse

        return unquote(urlparse(uri).path)
    return uri


def view_query(spark: SparkSession, db: str, view: str) -> str | None:
    """The SQL text a view was created with, None when there is no such view."""
    jvm = spark._jvm
    catalog = spark._jsparkSession.sessionState().catalog()
    ident = jvm.org.apache.spark.sql.catalyst.TableIdentifier.apply(view, jvm.scala.Some(db))
    if not catalog.tableExists(ident):
        return None
    text = catalog.getTableMetadata(ident).viewText()
    return text.get() if text.isDefined() else None
