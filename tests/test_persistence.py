"""The tables outlive the process: the CLI creates them in a folder's default (Derby) metastore
and a fresh process, `spark-sql -e` from the pyspark wheel started in that folder, queries them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FAST_START_JVM

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def spark_bin(name: str) -> str:
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / name)


def run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args[:4]} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc


def test_cli_tables_persist_across_processes_and_spark_sql(tmp_path):
    logs, work = tmp_path / "logs", tmp_path / "work"
    work.mkdir()
    loader = [sys.executable, "-m", "loader"]
    run(
        [*loader, "generate-sample", "--out", str(logs), "--events", "3000", "--days", "2"],
        cwd=tmp_path,
    )
    jvm = f"spark.driver.extraJavaOptions={FAST_START_JVM}"
    created = run(
        [
            *loader,
            "create-hive-table",
            "--source",
            str(logs),
            "--master",
            "local[2]",
            "--conf",
            "spark.sql.shuffle.partitions=2",
            "--conf",
            jvm,
        ],
        cwd=work,
    )
    assert "events in new files: 3,000" in created.stdout
    assert (work / "metastore_db").is_dir() and (work / "spark-warehouse").is_dir()

    query = "SELECT count(*), count(DISTINCT account) FROM security.cloudtrail;"
    sql = run(
        [
            spark_bin("spark-sql"),
            "--master",
            "local[1]",
            "--driver-java-options",
            FAST_START_JVM,
            "-S",
            "-e",
            query,
        ],
        cwd=work,
    )
    assert sql.stdout.split() == ["3000", "2"]
