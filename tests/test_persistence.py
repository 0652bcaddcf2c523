"""The tables outlive the process: the CLI creates them in a folder's default (Derby) metastore
and fresh processes use them: `spark-sql -e` from the pyspark wheel, also over the enriched
view. Processes run one after the other, as Derby admits one JVM at a time (beeline against
`serve`, beside other processes, is in test_shared_metastore.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from loader.enrichment import SAMPLE_FILES
from loader.sample.generate import TOR_EXIT_IP
from tests.conftest import FAST_START_JVM

pytestmark = [pytest.mark.spark, pytest.mark.slow]
LOADER = [sys.executable, "-m", "loader"]
SPARK = [
    "--master", "local[2]", "--conf", "spark.sql.shuffle.partitions=2",
    "--conf", "spark.ui.enabled=false",
]  # fmt: skip
JVM = ["--conf", f"spark.driver.extraJavaOptions={FAST_START_JVM}"]
TOR_QUERY = (
    "SELECT geoip_country(sourceIPAddress), geoip_asn(sourceIPAddress), "
    "is_tor_exit(sourceIPAddress), count(*) FROM {db}.cloudtrail "
    f"WHERE sourceIPAddress = '{TOR_EXIT_IP}' GROUP BY 1, 2, 3"
)


def spark_bin(name: str) -> str:
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / name)


def run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args[:4]} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc


def spark_sql(query: str, cwd: Path) -> list[str]:
    command = [spark_bin("spark-sql"), "--master", "local[1]", "--driver-java-options"]
    return run([*command, FAST_START_JVM, "-S", "-e", query], cwd=cwd).stdout.splitlines()


def enrichment_flags(logs: Path) -> list[str]:
    return [
        f"--{key.replace('_', '-')}={logs / relative}" for key, relative in SAMPLE_FILES.items()
    ]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Logs generated and tables created by the CLI in `work/`'s default metastore."""
    root = tmp_path_factory.mktemp("cli")
    logs, work = root / "logs", root / "work"
    work.mkdir()
    run([*LOADER, "generate-sample", "--out", str(logs), "--events", "1000", "--days", "1"], root)
    created = run([*LOADER, "create-hive-table", "--source", str(logs), *SPARK, *JVM], work)
    assert "events in new files: 1,000" in created.stdout
    return logs, work


def test_tables_persist_and_spark_sql_queries_the_enriched_view(workdir):
    logs, work = workdir
    assert (work / "metastore_db").is_dir() and (work / "spark-warehouse").is_dir()
    enriched = run([*LOADER, "enrich", *enrichment_flags(logs), *SPARK, *JVM], work)
    assert "scanned: all events" in enriched.stdout
    rows = spark_sql(
        "SELECT count(*), count(DISTINCT account) FROM security.cloudtrail; "
        "SELECT country, asn_org, count(*) FROM security.cloudtrail_enriched WHERE is_tor "
        "GROUP BY 1, 2;",
        work,
    )
    assert rows == ["1000\t2", "Sweden\tForeningen for digitala fri\t8"]
