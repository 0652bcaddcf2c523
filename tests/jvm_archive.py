"""A class-data-sharing (AppCDS) archive of the classes Spark loads, so the suite's JVMs start
in about half the time and CPU (measured: `spark-sql -e 'SELECT 1'` 11.7 s -> 5.5 s wall,
14 s -> 7 s CPU on 2 cores).

The suite starts dozens of Spark JVMs (the session fixture in each pytest worker, and every
`python -m loader`, `spark-sql`, `serve` and cluster daemon a test runs as a user would). Each
one loads and verifies some 15,000 classes from the same jars. The JDK can map classes it has
already parsed from an archive instead: one JVM running a small but typical workload (the
runner on a tiny sample, `create-hive-table` and a query) writes the archive when it exits
(`-XX:ArchiveClassesAtExit`), and every later JVM whose class path starts like that one's uses
it (`-XX:SharedArchiveFile`). A JVM with another class path (a different SPARK_CONF_DIR or an
extra driver jar) silently starts the usual way, so the archive changes speed, never results.

The archive is cached per JDK, pyspark and workload (XDG cache folder), made once by the pytest
controller before its workers start, and handed to every JVM through the launcher's
environment variables. TSA_TEST_JVM_ARCHIVE=0 turns it off.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Unified logging writes JVM warnings to stdout by default, where spark-class reads the
# launcher's command and tests read spark-sql's answers: keep only errors, on stderr.
QUIET_LOGGING = "-Xlog:disable -Xlog:all=error:stderr"
# Tests run tiny data: a JVM that skips the optimizing JIT starts and finishes ~30% sooner.
FAST_START_JVM = "-XX:TieredStopAtLevel=1"

WORKLOAD = r"""
import sys
from pyspark import SparkContext
from pyspark.sql import SparkSession
from loader.cli import main
from loader.enrichment import SAMPLE_FILES
from loader.rules.validate import SQL
from loader.sample.generate import SampleSpec, write_sample

write_sample("logs", SampleSpec(events=60, days=2))
sources = [f"--{key.replace('_', '-')}=logs/{path}" for key, path in SAMPLE_FILES.items()]
rules = [str(SQL / "alerts/tor_exit_node_activity.sql"),
         str(SQL / "profiles/new_country_for_principal.sql")]
spark_flags = ["--master", "local[2]", "--conf", "spark.ui.enabled=false",
               "--conf", "spark.sql.shuffle.partitions=2"]
run = ["run", "--source", "logs/AWSLogs", "--once", "--checkpoint", "checkpoint"]
assert main([*run, *sources, "--rules", *rules, *spark_flags]) == 0
assert main(["create-hive-table", "--source", "logs/AWSLogs", *spark_flags]) == 0
spark = SparkSession.getActiveSession()
spark.sql("SELECT eventName, count(*) FROM security.cloudtrail GROUP BY 1").collect()
jvm = SparkContext._gateway.proc
spark.stop()
SparkContext._gateway.shutdown()
jvm.stdin.close()  # the JVM exits, and writes the archive as it does
sys.exit(jvm.wait())
"""


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _key() -> str:
    """Changes with the JDK, the jars (names, sizes, times) and the workload."""
    from loader.java import java_executable

    java = java_executable() or "java"  # the java Spark starts: JAVA_HOME's, else PATH's
    version = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    jars = sorted(
        f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}"
        for p in (_spark_home() / "jars").glob("*.jar")
    )
    text = "\n".join([java, version, *jars, WORKLOAD, QUIET_LOGGING, FAST_START_JVM])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "timely-security-analytics"


def ensure_archive(report=print) -> Path | None:  # noqa: ANN001 - a print-like callable
    """The archive's path, made now if missing; None (and why, reported) if it cannot be."""
    try:
        return _make(report)
    except (OSError, subprocess.SubprocessError) as exc:  # an unwritable cache, a hung JVM
        report(f"JVM class archive not made (JVMs start the usual way): {exc}")
        return None


def _make(report) -> Path | None:  # noqa: ANN001 - a print-like callable
    archive = _cache_dir() / f"spark-{_key()}.jsa"
    if archive.is_file():
        return archive
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(f".{os.getpid()}.partial")
    started = time.monotonic()
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_SUBMIT_OPTS": f"-XX:ArchiveClassesAtExit={partial} {java_options(None)}",
    }
    with tempfile.TemporaryDirectory(prefix="tsa-jvm-archive-") as work:
        proc = subprocess.run(
            [sys.executable, "-c", WORKLOAD],
            cwd=work, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    if proc.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        report(f"JVM class archive not made (JVMs start the usual way):\n{proc.stderr[-2000:]}")
        return None
    partial.rename(archive)
    report(f"JVM class archive made in {time.monotonic() - started:.0f} s: {archive}")
    return archive


def java_options(archive: Path | None) -> str:
    options = f"{FAST_START_JVM} {QUIET_LOGGING}"
    return f"-XX:SharedArchiveFile={archive} {options}" if archive else options
