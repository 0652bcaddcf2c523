"""Build the SparkSession: Spark's own defaults unless the user configures otherwise.

With no flags and no configuration this is local[*] with Hive support and the embedded Derby
metastore (``metastore_db/``) and warehouse (``spark-warehouse/``) in the current directory, so
``spark-sql`` started in the same directory sees the tables. SPARK_CONF_DIR, spark-defaults.conf
and hive-site.xml are honoured because pyspark launches the JVM through spark-submit.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from loader.config import Settings
from loader.errors import EnvironmentProblem
from loader.java import java_problem
from loader.shipping import ship_packages

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Applied only where neither the user's Spark configuration nor --conf sets them.
DEFAULT_CONF = {
    # Event times are instants; showing them in UTC makes every analyst see the same value.
    "spark.sql.session.timeZone": "UTC",
    # Our own progress lines say what is happening; Spark's stage bars garble the report.
    "spark.ui.showConsoleProgress": "false",
    # The runner's profile state can reach millions of keys: RocksDB keeps it off the heap.
    "spark.sql.streaming.stateStore.providerClass": (
        "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
    ),
}


def build_session(settings: Settings, app_name: str, hive: bool = True) -> SparkSession:
    """Start (or reuse) the SparkSession for a command.

    Raises:
        EnvironmentProblem: no usable Java, so Spark cannot start.
    """
    problem = java_problem()
    if problem:
        raise EnvironmentProblem(problem)
    master = settings.master
    if master is None or master.startswith("local"):
        # Keeps a laptop's Spark on loopback and quiet about its network interfaces.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    conf = SparkConf()  # loads spark.* settings already given to the JVM launcher
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    for key, value in DEFAULT_CONF.items():
        if key not in settings.conf and not conf.contains(key):
            builder = builder.config(key, value)
    for key, value in settings.conf.items():
        builder = builder.config(key, value)
    if hive:
        builder = builder.enableHiveSupport()
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN" if settings.debug else "ERROR")
    ship_packages(spark)  # on a cluster, executors get this project's code from here
    return spark
