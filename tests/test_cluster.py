"""`detect` and `run --once` on a real Spark standalone cluster (master and worker started with
pyspark's spark-class on 127.0.0.1) give the alerts local mode gives.

The executors run a Python that cannot import this project, as on a cluster where nobody
installed it: the GeoIP/Tor functions work only because the driver ships the packages, the
GeoIP databases and the Tor index itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

from loader.cli import main
from loader.rules.validate import SQL
from loader.sample.generate import SampleSpec, write_sample
from tests.test_persistence import LOADER, enrichment_flags, spark_bin

pytestmark = [pytest.mark.spark, pytest.mark.slow]
# a stateless rule, the Tor rule (broadcast index) and a GeoIP profile (shipped databases)
RULES = ["alerts/root_account_usage.sql", "alerts/tor_exit_node_activity.sql"]
PROFILE = "profiles/new_country_for_principal.sql"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _python_without_this_project(folder: Path) -> Path:
    """A python for the executors that sees site-packages but not `loader` or `udfs`
    (neither an editable install's finder nor installed copies)."""
    site = folder / "site"
    site.mkdir()
    for root in dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]):
        for entry in Path(root).iterdir():
            hidden = entry.name in ("loader", "udfs") or entry.name.startswith("__editable__")
            if not hidden and not entry.name.endswith(".pth") and not (site / entry.name).exists():
                (site / entry.name).symlink_to(entry)
    wrapper = folder / "executor-python"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{site}" exec {sys.executable} -S "$@"\n'
    )
    wrapper.chmod(0o755)
    cwd = folder / "elsewhere"
    cwd.mkdir()
    probe = "import pandas, pyarrow, maxminddb, pyspark\ntry:\n import udfs\nexcept ImportError:\n"
    probe += " print('hidden')"
    checked = subprocess.run([wrapper, "-c", probe], cwd=cwd, capture_output=True, text=True)
    assert checked.stdout.strip() == "hidden", checked.stdout + checked.stderr
    return wrapper


def _wait_until(condition, what: str, procs, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for proc in procs:
            assert proc.poll() is None, f"{what}: a cluster process ended:\n{proc.stdout.read()}"
        assert time.monotonic() < deadline, f"{what}: timed out"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """A standalone master and one worker (2 cores) on 127.0.0.1."""
    root = tmp_path_factory.mktemp("standalone")
    port, ui = _free_port(), _free_port()
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1"}
    spark_class = spark_bin("spark-class")
    master = subprocess.Popen(
        [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
         "--port", str(port), "--webui-port", str(ui)],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    url = f"spark://127.0.0.1:{port}"
    worker = subprocess.Popen(
        [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
         "--cores", "2", "--memory", "2g", "--webui-port", str(_free_port()),
         "--work-dir", str(root / "work"), url],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip

    def workers_alive() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=2) as answer:
                return json.load(answer).get("aliveworkers", 0) == 1
        except OSError:
            return False

    try:
        _wait_until(workers_alive, "the worker registering", [master, worker])
        yield url, root / "work"
    finally:
        for proc in (worker, master):
            proc.terminate()
        for proc in (worker, master):
            proc.wait(timeout=60)


def _alert_ids(spark, warehouse: Path, database: str) -> list[str]:
    rows = spark.read.parquet(str(warehouse / f"{database}.db" / "alerts")).collect()
    return sorted(row.alert_id for row in rows)


def test_detect_and_run_on_a_standalone_cluster_equal_local_mode(spark, standalone, tmp_path):
    url, worker_dir = standalone
    logs = tmp_path / "logs"
    write_sample(str(logs), SampleSpec(events=600, days=4, events_per_file=1000))
    # the profile learns 2 days instead of 14, so 4 days of logs raise its alerts
    profile = tmp_path / "new_country_for_principal.sql"
    text = (SQL / PROFILE).read_text()
    profile.write_text(text.replace("learning: 14 days", "learning: 2 days"))
    assert profile.read_text() != text
    flags = ["--source", str(logs / "AWSLogs"), *enrichment_flags(logs), "--rules",
             *[str(SQL / name) for name in RULES], str(profile)]  # fmt: skip
    assert main(["detect", *flags, "--database", "local_ref"]) == 0
    spark.catalog.refreshTable("local_ref.alerts")
    local = sorted(row.alert_id for row in spark.table("local_ref.alerts").collect())
    kinds = {row.rule for row in spark.table("local_ref.alerts").collect()}
    assert {"tor_exit_node_activity", "new_country_for_principal"} <= kinds

    work = tmp_path / "work"
    work.mkdir()
    executor_python = _python_without_this_project(tmp_path)
    executor_jvm = os.environ["SPARK_SUBMIT_OPTS"]  # the suite's JVM options (conftest)
    cluster = ["--master", url, "--conf", "spark.sql.shuffle.partitions=4",
               "--conf", "spark.ui.enabled=false", "--conf", "spark.executor.memory=1g",
               "--conf", f"spark.executor.extraJavaOptions={executor_jvm}"]  # fmt: skip
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": str(executor_python)}
    for command in (
        ["detect", *flags, "--database", "on_cluster"],
        ["run", *flags, "--once", "--database", "run_on_cluster",
         "--checkpoint", str(work / "checkpoint")],
    ):  # fmt: skip
        proc = subprocess.run([*LOADER, *command, *cluster], cwd=work, env=env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        assert proc.returncode == 0, f"{command[0]}:\n{proc.stdout}\n{proc.stderr[-4000:]}"

    warehouse = work / "spark-warehouse"
    assert _alert_ids(spark, warehouse, "on_cluster") == local
    assert _alert_ids(spark, warehouse, "run_on_cluster") == local
    # the work was done by the worker's executors, with what the driver shipped them
    shipped = {path.name for path in worker_dir.glob("app-*/*/*")}
    assert any(name.startswith("tsa-packages-") for name in shipped), shipped
    for database in ("tsa-sample-City.mmdb", "tsa-sample-ASN.mmdb"):
        assert any(name.endswith(f"-{database}") for name in shipped), shipped
    assert len(list(worker_dir.glob("app-*"))) == 2
