"""`serve`: the Spark Thrift Server inside this Python process, with the UDFs registered.

A Thrift server started with spark-submit has no Python UDFs. Started here, in single-session
mode, every JDBC connection (beeline, BI tools) shares this session and so can call
``geoip_country(...)`` and ``is_tor_exit(...)`` on the tables.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
import threading
import time

from loader.config import Settings
from loader.errors import ConfigError, EnvironmentProblem

STARTUP_TIMEOUT = 120  # seconds for the port to open


def _check_port_free(host: str, port: int) -> None:
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def _wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.3)
    return False


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(settings: Settings) -> int:
    from loader.enrichment import enriched_session

    host, port = settings.host, settings.port
    _check_port_free(host, port)  # before the JVM, like the settings checked next
    settings.conf = {
        # Other processes (the runner, create-hive-table, materialize) write these tables
        # while the server runs: a cached relation or file listing would answer from the
        # files as they were at the first query. Listing again per query keeps answers fresh.
        "spark.sql.filesourceTableRelationCacheSize": "0",
        "spark.sql.hive.filesourcePartitionFileCacheSize": "0",
        "spark.sql.hive.thriftServer.singleSession": "true",
        "spark.hadoop.hive.server2.thrift.bind.host": host,
        "spark.hadoop.hive.server2.thrift.port": str(port),
        **settings.conf,
    }
    spark, enrichment = enriched_session(settings, "tsa serve", refresh=True)
    jvm = spark._jvm
    jvm.org.apache.spark.sql.hive.thriftserver.HiveThriftServer2.startWithContext(
        spark._jsparkSession.sqlContext()
    )
    if not _wait_for_port(host, port, STARTUP_TIMEOUT):
        raise EnvironmentProblem(f"the Thrift server did not open {host}:{port} in time")
    if not _is_loopback(host):
        print(
            f"warning: listening on {host} without authentication: anyone who can reach "
            f"port {port} can query these tables",
            file=sys.stderr,
        )
    print(f"functions: {', '.join(enrichment.functions) or 'none (no GeoIP/Tor sources given)'}")
    print(f"serving on jdbc:hive2://{host}:{port}/{settings.database}", flush=True)
    _wait_for_signal()
    print("stopping", file=sys.stderr)
    enrichment.stop()
    # Spark's HiveThriftServer2 stops itself when the application ends
    spark.stop()
    return 0


def _wait_for_signal() -> None:
    stop = threading.Event()

    def handler(signum, frame):  # noqa: ANN001 - the signal module's signature
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    while not stop.wait(1.0):
        pass
