"""`run` killed with SIGKILL in the middle of a batch, twice, then restarted: the alerts and
profile state equal an uninterrupted run's (its own file, so pytest-xdist can run it beside
the other `run` tests)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from loader.cli import main
from loader.sample.generate import SampleSpec, write_sample

pytestmark = pytest.mark.spark


def _wait_for(condition, proc, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the runner ended before the kill point:\n{proc.stdout.read()}"
        assert time.monotonic() < deadline, "the kill point never came"
        time.sleep(0.02)


def _latest_state(rows) -> set[tuple]:
    latest: dict[tuple, tuple] = {}
    for r in sorted(rows, key=lambda r: r.batch_id):
        latest[(r.rule, r.entity, r.value)] = (r.first_seen, r.last_seen, r.seen_count)
    return {(*key, *seen) for key, seen in latest.items() if seen[2] > 0}


# every kind of state: stateless, dedup, threshold, per-principal and account-wide profiles
KILL_RULES = [
    "alerts/root_account_usage.sql", "alerts/tor_exit_node_activity.sql",
    "alerts/unauthorized_api_calls_burst.sql", "profiles/new_country_for_principal.sql",
    "profiles/new_source_ip.sql",
]  # fmt: skip


@pytest.mark.slow
def test_killed_mid_batch_twice_then_restarted_equals_an_uninterrupted_run(spark, tmp_path):
    """SIGKILL while the observe query writes a batch, then while the apply query runs one;
    the third start finishes. Alerts and profile state equal an uninterrupted run's."""
    from loader.rules.validate import SQL
    from tests.test_persistence import LOADER, SPARK, enrichment_flags

    logs = tmp_path / "logs"
    write_sample(str(logs), SampleSpec(events=1200, days=16, events_per_file=1000))  # 96 files
    flags = ["--source", str(logs / "AWSLogs"), "--once", "--max-files", "50"]
    flags += [*enrichment_flags(logs), "--rules", *[str(SQL / name) for name in KILL_RULES]]
    reference_run = ["run", *flags, "--database", "killref", "--checkpoint", str(tmp_path / "ref")]
    assert main(reference_run) == 0
    spark.catalog.refreshTable("killref.alerts")
    spark.catalog.refreshTable("killref.profile_state_log")
    reference = spark.table("killref.alerts").collect()
    expected_alerts = sorted(r.alert_id for r in reference)
    expected_state = _latest_state(spark.table("killref.profile_state_log").collect())
    assert expected_state and any(r.kind == "profile" for r in reference)

    work, checkpoint = tmp_path / "work", tmp_path / "work" / "ck"
    work.mkdir()
    command = [*LOADER, "run", *flags, "--database", "killrun", "--checkpoint", str(checkpoint),
               *SPARK]  # fmt: skip
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}

    def start() -> subprocess.Popen:
        return subprocess.Popen(command, cwd=work, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip

    observations = checkpoint / "observations"
    proc = start()  # killed while writing the second batch's rows
    _wait_for(lambda: (observations / "_partial-000000001").is_dir(), proc)
    proc.kill()
    proc.wait()
    assert not (observations / "batch-000000001").exists()

    state = checkpoint / "state"
    proc = start()  # killed in the apply query's first batch
    _wait_for(lambda: (state / "offsets" / "0").exists(), proc)
    assert not (state / "commits" / "0").exists()
    proc.kill()
    proc.wait()
    assert not (state / "commits" / "0").exists()

    proc = start()
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    warehouse = work / "spark-warehouse" / "killrun.db"
    alerts = spark.read.parquet(str(warehouse / "alerts")).collect()
    assert sorted(r.alert_id for r in alerts) == expected_alerts  # none lost, none twice
    state_rows = spark.read.parquet(str(warehouse / "profile_state_log")).collect()
    assert _latest_state(state_rows) == expected_state
