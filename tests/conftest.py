"""Shared fixtures. The Spark tier uses one session-scoped SparkSession built by the product's
own session builder, with its metastore and warehouse in a temporary folder."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from tests.jvm_archive import ensure_archive, java_options

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# AWS settings must be in the environment before the JVM (and so its Python workers) starts:
# tests talk to a moto server on 127.0.0.1 through the standard AWS_ENDPOINT_URL.
MOTO_PORT = _free_port()
os.environ.update(
    {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{MOTO_PORT}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
)
os.environ.pop("AWS_PROFILE", None)


def pytest_configure(config):
    """Every Spark JVM the tests start, in-process or as a user would, gets the fast-start
    options and the class archive (tests/jvm_archive.py) through the launcher's variables."""
    if hasattr(config, "workerinput"):
        return  # a pytest-xdist worker inherits the controller's environment
    from loader.java import java_problem

    archive = None
    wanted = os.environ.get("TSA_TEST_JVM_ARCHIVE", "1") != "0"
    if wanted and "not spark" not in (config.getoption("markexpr") or ""):
        if java_problem() is None:
            archive = ensure_archive(lambda line: print(line, file=sys.stderr))
    options = java_options(archive)
    for name in ("SPARK_SUBMIT_OPTS", "SPARK_DAEMON_JAVA_OPTS", "SPARK_BEELINE_OPTS"):
        os.environ[name] = f"{os.environ.get(name, '')} {options}".strip()


# The longest test files, longest first. pytest-xdist hands files to its two workers in
# collection order; alphabetical order started the two longest last, so one worker ran them
# alone at the end. Starting them first lets the short files fill the gaps (same tests).
LONGEST_FIRST = (
    "test_shared_metastore.py", "test_run_kill.py", "test_run.py", "test_run_sqs.py",
    "test_cluster.py", "test_persistence.py",
    "test_rule_pack.py", "test_materialize.py",
    "test_detect.py", "test_create_corpus.py", "test_enrich.py",
    "test_delivery_run.py",
)  # fmt: skip


def pytest_collection_modifyitems(items):
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def moto_server():
    """A moto server on 127.0.0.1, reached by boto3 over HTTP via AWS_ENDPOINT_URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=MOTO_PORT, verbose=False)
    server.start()
    yield os.environ["AWS_ENDPOINT_URL"]
    server.stop()


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from loader.config import Settings
    from loader.session import build_session

    base = tmp_path_factory.mktemp("spark")
    settings = Settings(
        master="local[2]",
        conf={
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            "spark.ui.enabled": "false",
            "spark.sql.warehouse.dir": str(base / "warehouse"),
            "spark.hadoop.javax.jdo.option.ConnectionURL": (
                f"jdbc:derby:;databaseName={base}/metastore_db;create=true"
            ),
            "spark.driver.extraJavaOptions": f"-Dderby.system.home={base}",
        },
    )
    session = build_session(settings, "tsa-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def corpus_tables(spark, tmp_path_factory):
    """The whole corpus laid out as in S3 and loaded once into database `corpus`."""
    from loader.tables.create_cloudtrail import create_cloudtrail_tables
    from loader.tables.enrich import enrich
    from tests.corpus import arrange_corpus, corpus_dir
    from udfs.spark import EnrichmentConfig, register_udfs

    root = tmp_path_factory.mktemp("corpus_layout")
    expected = arrange_corpus(root)
    report = create_cloudtrail_tables(spark, str(root), "corpus")
    # cloudtrail_enriched too, with MaxMind's test databases and the corpus's Tor lists
    geoip = corpus_dir("geoip") / "test-data"
    config = EnrichmentConfig(
        geoip_city_db=str(geoip / "GeoIP2-City-Test.mmdb"),
        geoip_asn_db=str(geoip / "GeoLite2-ASN-Test.mmdb"),
        tor_exit_list=str(corpus_dir("tor")),
    )
    session = spark.newSession()
    enrich(session, "corpus", register_udfs(session, config, refresh=False))
    return root, expected, report
