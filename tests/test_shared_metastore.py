"""A Hive metastore in PostgreSQL (Debian's server, started here on loopback) shared at the
same time by the runner, `serve` with beeline, `create-hive-table` and `spark-sql`, all
separate JVMs configured only by the SPARK_CONF_DIR that `metastore` wrote."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from loader.metastore import DEBIAN_JDBC_DRIVER
from loader.sample.generate import SampleSpec, write_sample
from tests.test_persistence import LOADER, TOR_QUERY, enrichment_flags, spark_bin

pytestmark = [pytest.mark.spark, pytest.mark.slow]
PASSWORD = "s3cret pass"  # a space and no quoting: the URL and the conf file must cope
SPARK = ["--master", "local[1]", "--conf", "spark.sql.shuffle.partitions=2",
         "--conf", "spark.ui.enabled=false"]  # fmt: skip


def _postgres_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A PostgreSQL server on 127.0.0.1 with password (SCRAM) logins, as user `tsa`."""
    initdb, pg_ctl, psql = (_postgres_bin(n) for n in ("initdb", "pg_ctl", "psql"))
    if not (initdb and pg_ctl and psql and Path(DEBIAN_JDBC_DRIVER).is_file()):
        message = "PostgreSQL or its JDBC driver not installed (apt-get install -y postgresql "
        message += "libpostgresql-jdbc-java)"
        if os.environ.get("CI"):
            pytest.fail(message)  # .ci/run installs it: a skip there would hide a gap
        pytest.skip(message)
    # the server refuses to run as root: as root, it runs as Debian's `postgres` user, in a
    # folder of its own (pytest's are private to root)
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="tsa-postgres-"))
    if as_user:
        shutil.chown(root, "postgres")
    (root / "pw").write_text(PASSWORD + "\n")
    os.chmod(root / "pw", 0o644)
    data, port = root / "data", _free_port()
    init = [initdb, "-D", str(data), "-U", "tsa", f"--pwfile={root / 'pw'}", "-E", "UTF8",
            "--auth=scram-sha-256"]  # fmt: skip
    options = f"-h 127.0.0.1 -p {port} -k {root}"
    start = [pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]
    for command in (init, start):
        proc = subprocess.run([*as_user, *command], capture_output=True, text=True)
        assert proc.returncode == 0, f"{command[0]}: {proc.stdout}{proc.stderr}"
    env = {**os.environ, "PGPASSWORD": PASSWORD}

    def sql(database: str, statement: str) -> str:
        command = [psql, "-h", "127.0.0.1", "-p", str(port), "-U", "tsa", "-d", database, "-Atq"]
        proc = subprocess.run([*command, "-c", statement], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    try:
        yield port, sql
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "fast", "stop"], check=False)
        shutil.rmtree(root, ignore_errors=True)


def _env(conf_dir: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("PGPASSWORD", None)
    if conf_dir:
        env["SPARK_CONF_DIR"] = str(conf_dir)
    return env


def _start(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip


class Lines:
    """A process's output lines, read by a thread so waiting never blocks on a pipe."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.lines = proc, []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, predicate, timeout: float = 240.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines if predicate(line)]
            if found:
                return found[-1]
            assert self.proc.poll() is None, "\n".join(self.lines[-40:])
            time.sleep(0.2)
        raise AssertionError("timed out; last output:\n" + "\n".join(self.lines[-40:]))


def _finished(proc: subprocess.Popen, timeout: float = 300) -> str:
    output, _ = proc.communicate(timeout=timeout)
    return f"exit {proc.returncode}\n{output}"


def _new_alerts(lines: list[str]) -> int:
    return sum(int(line.split(", new ")[1].split(",")[0]) for line in lines if " new " in line)


def test_runner_serve_and_spark_sql_share_the_postgresql_catalog(postgres, tmp_path):
    port, sql = postgres
    sql("postgres", "CREATE DATABASE metastore")
    sql("postgres", "CREATE DATABASE appdata")
    sql("appdata", "CREATE TABLE invoices (id int)")
    url = f"postgresql://tsa:{PASSWORD.replace(' ', '%20')}@127.0.0.1:{port}/metastore"
    work = tmp_path / "work"
    work.mkdir()
    metastore = [*LOADER, "metastore", "--warehouse", str(tmp_path / "warehouse"), *SPARK]

    # two first starts at once take turns; a database holding other tables is refused
    first = _start([*metastore, "--postgres", url, "--conf-dir", "a"], work, _env())
    second = _start([*metastore, "--postgres", url, "--conf-dir", "b"], work, _env())
    other = url.replace("/metastore", "/appdata")
    refused = _start([*metastore, "--postgres", other, "--conf-dir", "c"], work, _env())
    outputs = sorted(_finished(p) for p in (first, second))
    denied = _finished(refused)
    assert all(o.startswith("exit 0") for o in outputs), outputs
    created = [o for o in outputs if "created 45 tables, Hive schema 2.3.0" in o]
    present = [o for o in outputs if "schema already there (45 tables, Hive schema 2.3.0)" in o]
    assert len(created) == 1 and len(present) == 1, outputs
    assert denied.startswith("exit 1"), denied
    assert "/appdata holds 1 table(s) that are not a Hive metastore (invoices)" in denied
    assert sql("appdata", "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "1"
    assert not (work / "c").exists()
    assert sql("metastore", 'SELECT "SCHEMA_VERSION" FROM "VERSION"') == "2.3.0"
    conf_dir = work / "a"
    written = (conf_dir / "spark-defaults.conf").read_text()
    assert written == (work / "b" / "spark-defaults.conf").read_text()
    assert (conf_dir / "spark-defaults.conf").stat().st_mode & 0o777 == 0o600
    assert "spark.hadoop.datanucleus.schema.autoCreateTables false" in written
    assert not (work / "metastore_db").exists()

    # history, then the runner and the Thrift server, side by side on the shared catalog
    logs, later = tmp_path / "logs", tmp_path / "later"
    write_sample(str(logs), SampleSpec(events=800, days=1, end_date="2024-05-01"))
    write_sample(str(later), SampleSpec(events=400, days=1, end_date="2024-05-02", seed=8))
    env = _env(conf_dir)
    rules = [str(Path("sql/alerts") / name) for name in ("root_account_usage.sql",
             "tor_exit_node_activity.sql", "console_login_without_mfa.sql")]  # fmt: skip
    repo = Path(__file__).resolve().parents[1]
    runner = Lines(_start(
        [*LOADER, "run", "--source", str(logs / "AWSLogs"), "--trigger", "2s",
         "--checkpoint", str(tmp_path / "ck"), "--rules", *[str(repo / r) for r in rules],
         *enrichment_flags(logs), *SPARK], work, env))  # fmt: skip
    serve_port = _free_port()
    server = Lines(_start(
        [*LOADER, "serve", "--port", str(serve_port), *enrichment_flags(logs), *SPARK],
        work, env))  # fmt: skip
    try:
        runner.wait_for(lambda line: line.startswith("batch 0:"))
        server.wait_for(lambda line: line.startswith("serving on"))
        beeline = [spark_bin("beeline"), "-u", f"jdbc:hive2://127.0.0.1:{serve_port}/security",
                   "-n", "tsa", "--silent=true", "--outputformat=tsv2", "-e"]  # fmt: skip
        count = "SELECT count(*) FROM security.alerts"
        before = _finished(_start([*beeline, count], tmp_path, env))
        assert _results(before) == [str(_new_alerts(runner.lines))], before
        # tables made while both run: the catalog is not locked by either
        created_tables = subprocess.run(
            [*LOADER, "create-hive-table", "--source", str(logs), *SPARK],
            cwd=work, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
        assert created_tables.returncode == 0, created_tables.stdout + created_tables.stderr
        assert "events in new files: 800" in created_tables.stdout
        shutil.copytree(later / "AWSLogs", logs / "AWSLogs", dirs_exist_ok=True)
        runner.wait_for(lambda line: line.startswith("batch 1:"))
        alerts = _new_alerts(runner.lines)
        assert alerts > 0
        # the server's session saw the alerts table before: it must see the new files
        queries = f"{count}; SELECT count(*) FROM security.cloudtrail"
        beeline = [*beeline, f"{queries}; {TOR_QUERY.format(db='security')}"]
        spark_sql = [spark_bin("spark-sql"), "--master", "local[1]", "-S", "-e", queries]
        clients = [_start(beeline, tmp_path, env), _start(spark_sql, tmp_path, env)]
        through_beeline, through_spark_sql = (_finished(c) for c in clients)
        assert runner.proc.poll() is None and server.proc.poll() is None
    finally:
        for proc in (runner.proc, server.proc):
            proc.terminate()
        for proc in (runner.proc, server.proc):
            proc.wait(timeout=120)
    assert through_spark_sql.startswith("exit 0"), through_spark_sql
    assert _results(through_spark_sql) == [str(alerts), "800"], through_spark_sql
    # the two counts, then the sample's GeoIP facts for the Tor exit and its 8 story events
    assert through_beeline.startswith("exit 0"), through_beeline
    assert _results(through_beeline) == [str(alerts), "800", "Sweden\t198093\ttrue\t8"], (
        through_beeline
    )


def _results(output: str) -> list[str]:
    """Result rows of spark-sql -S or beeline tsv2: digits or tab-separated, no headers."""
    rows = output.splitlines()[1:]
    return [row for row in rows if row.isdigit() or ("\t" in row and "(" not in row)]
