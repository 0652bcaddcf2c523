"""`demo`: the whole product on a generated sample, in the current directory."""

from __future__ import annotations

import os
from pathlib import Path

from loader.config import Settings
from loader.enrichment import SAMPLE_FILES, enriched_session, with_sample_sources
from loader.sample.enrichment_data import write_enrichment_data
from loader.sample.generate import SampleSpec, write_sample
from loader.tables.create_cloudtrail import create_cloudtrail_tables
from loader.tables.enrich import enrich

QUERIES = Path(__file__).resolve().parents[1] / "sql" / "queries"
SHOWN_ROWS = 15
CELL = 60


def query_files(folder: Path = QUERIES) -> list[Path]:
    return sorted(folder.glob("*.sql"))


def query_text(path: Path) -> str:
    """The statement of a query file, without comment lines or a trailing semicolon."""
    lines = [ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("--")]
    return "\n".join(lines).strip().rstrip(";")


def format_table(columns: list[str], rows: list[tuple]) -> str:
    """Rows as a markdown table, long cells cut so a terminal stays readable."""

    def cell(value: object) -> str:
        text = "" if value is None else str(value)
        text = text.replace("|", "\\|").replace("\n", " ")
        return text if len(text) <= CELL else text[: CELL - 1] + "…"

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def run_demo(settings: Settings, out: str = "sample", events: int = 20_000) -> int:
    """Generate (once), load, enrich, and show every query in sql/queries/."""
    if not os.path.isdir(os.path.join(out, "AWSLogs")):
        print(write_sample(out, SampleSpec(events=events)).render())
    else:
        print(f"using the sample already in {out}/")
        if not os.path.exists(os.path.join(out, SAMPLE_FILES["geoip_city_db"])):
            write_enrichment_data(out)
    with_sample_sources(settings, out)
    spark, enrichment = enriched_session(settings, "tsa demo")
    logs = os.path.join(out, "AWSLogs")  # not the sample's GeoIP and Tor files beside it
    print(create_cloudtrail_tables(spark, logs, settings.database).render())
    print(enrich(spark, settings.database, enrichment).render())
    spark.catalog.setCurrentDatabase(settings.database)
    for path in query_files():
        df = spark.sql(query_text(path))
        rows = [tuple(r) for r in df.limit(SHOWN_ROWS + 1).collect()]
        print(f"\n## {path.name}\n")
        print(format_table(df.columns, rows[:SHOWN_ROWS]))
        if len(rows) > SHOWN_ROWS:
            print(
                f"(first {SHOWN_ROWS} rows; run `spark-sql --database {settings.database} "
                f"-f sql/queries/{path.name}` for all)"
            )
    print(
        f"\nTables are in the {settings.database} database of ./metastore_db; try:\n"
        f"  spark-sql --database {settings.database} -e 'SELECT eventName, count(*) "
        "FROM cloudtrail GROUP BY 1 ORDER BY 2 DESC LIMIT 10'"
    )
    return 0
