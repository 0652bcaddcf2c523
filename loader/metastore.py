"""`metastore --postgres URL`: one Hive metastore in PostgreSQL that every process shares.

The embedded Derby metastore admits one JVM at a time: a running `run` locks out `spark-sql`
and `serve`. With the catalog in PostgreSQL they all use it at once. This module

- creates the metastore schema once, completely and under a PostgreSQL advisory lock, so two
  first starts cannot race each other into half-made tables; the schema version is recorded;
- writes the settings every Spark process then needs into ``spark-defaults.conf`` of a Spark
  configuration folder (``SPARK_CONF_DIR``), which ``spark-submit``, ``spark-sql``, pyspark
  and ``python -m loader`` all read. Those settings let no process change the schema: the
  version is verified at start and DataNucleus creates no tables.
"""

from __future__ import annotations

import os
import re
import socket
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from loader.errors import ConfigError, EnvironmentProblem

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from loader.config import Settings

DEBIAN_JDBC_DRIVER = "/usr/share/java/postgresql.jar"
DRIVER_HINT = "apt-get install -y libpostgresql-jdbc-java, or give --jdbc-driver PATH"
HIVE_MODEL_PACKAGE = "org.apache.hadoop.hive.metastore.model"
SCHEMA_VERSION_PREFIX = "2.3."  # the Hive client inside pyspark 4
# pg_advisory_lock key held while the schema is created: "tsa-hive" in ASCII
SCHEMA_LOCK_KEY = 0x7473612D68697665
DEFAULTS_FILE = "spark-defaults.conf"
MANAGED_HEADER = "# Shared Hive metastore in PostgreSQL, written by `python -m loader metastore`"
# Every key this command writes; rewriting the file replaces exactly these.
MANAGED_KEYS = (
    "spark.sql.catalogImplementation",
    "spark.sql.warehouse.dir",
    "spark.driver.extraClassPath",
    "spark.hadoop.javax.jdo.option.ConnectionURL",
    "spark.hadoop.javax.jdo.option.ConnectionDriverName",
    "spark.hadoop.javax.jdo.option.ConnectionUserName",
    "spark.hadoop.javax.jdo.option.ConnectionPassword",
    "spark.hadoop.hive.metastore.schema.verification",
    "spark.hadoop.datanucleus.schema.autoCreateAll",
    "spark.hadoop.datanucleus.schema.autoCreateTables",
    "spark.hadoop.datanucleus.schema.autoCreateColumns",
    "spark.hadoop.datanucleus.schema.autoCreateConstraints",
)


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    database: str
    user: str
    password: str | None
    options: tuple[tuple[str, str], ...] = ()

    @property
    def jdbc_url(self) -> str:
        query = f"?{urlencode(self.options)}" if self.options else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"jdbc:postgresql://{host}:{self.port}/{self.database}{query}"

    def __str__(self) -> str:
        return f"PostgreSQL {self.user}@{self.host}:{self.port}/{self.database}"


def parse_postgres_url(url: str, environ: dict[str, str] | None = None) -> Postgres:
    """``postgresql://user:password@host:port/database?sslmode=require`` (also ``postgres://``
    and ``jdbc:postgresql://...?user=..&password=..``). Without a password in the URL,
    ``PGPASSWORD`` is used, as psql does.

    Raises:
        ConfigError: not a PostgreSQL URL, or without a database or user.
    """
    environ = os.environ if environ is None else environ
    text = url.strip()
    if text.startswith("jdbc:"):
        text = text[len("jdbc:") :]
    parts = urlsplit(text)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            f"--postgres {_redact(url)!r}: expected postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        )
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    user = unquote(parts.username or "") or query.get("user", "")
    password = unquote(parts.password) if parts.password else query.get("password")
    password = password or environ.get("PGPASSWORD")
    options = tuple((k, v) for k, v in query.items() if k not in ("user", "password"))
    database = unquote(parts.path.lstrip("/"))
    problems = []
    if not parts.hostname:
        problems.append("no host")
    if not database:
        problems.append("no database (the path, e.g. /metastore)")
    if not user:
        problems.append("no user (USER@ before the host)")
    try:
        port = parts.port or 5432
    except ValueError:
        problems.append("the port is not a number")
        port = 0
    if problems:
        raise ConfigError(f"--postgres {_redact(url)!r}: {', '.join(problems)}")
    return Postgres(parts.hostname or "", port, database, user, password, options)


def _redact(url: str) -> str:
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)


def shared_conf(pg: Postgres, warehouse: str, driver: str) -> dict[str, str]:
    """The settings every process sharing the catalog runs with: no schema changes."""
    conf = {
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": warehouse,
        "spark.driver.extraClassPath": driver,
        "spark.hadoop.javax.jdo.option.ConnectionURL": pg.jdbc_url,
        "spark.hadoop.javax.jdo.option.ConnectionDriverName": "org.postgresql.Driver",
        "spark.hadoop.javax.jdo.option.ConnectionUserName": pg.user,
        # the version `metastore` recorded is checked at every start
        "spark.hadoop.hive.metastore.schema.verification": "true",
        "spark.hadoop.datanucleus.schema.autoCreateAll": "false",
        "spark.hadoop.datanucleus.schema.autoCreateTables": "false",
        "spark.hadoop.datanucleus.schema.autoCreateColumns": "false",
        "spark.hadoop.datanucleus.schema.autoCreateConstraints": "false",
    }
    if pg.password is not None:
        conf["spark.hadoop.javax.jdo.option.ConnectionPassword"] = pg.password
    return conf


def schema_creation_conf(pg: Postgres, warehouse: str, driver: str) -> dict[str, str]:
    """The settings of the one process that creates the schema: every table of Hive's model
    at start (not lazily at first use, where two processes could race), no foreign keys
    (creating them with the tables deadlocks DataNucleus on its own lock), version recorded."""
    classes = ",".join(f"{HIVE_MODEL_PACKAGE}.{name}" for name in hive_model_classes())
    return {
        **shared_conf(pg, warehouse, driver),
        "spark.hadoop.hive.metastore.schema.verification": "false",
        "spark.hadoop.hive.metastore.schema.verification.record.version": "true",
        "spark.hadoop.datanucleus.schema.autoCreateTables": "true",
        "spark.hadoop.datanucleus.schema.autoCreateColumns": "true",
        "spark.hadoop.datanucleus.autoStartMechanism": "Classes",
        "spark.hadoop.datanucleus.autoStartClassNames": classes,
    }


def hive_model_classes() -> list[str]:
    """The persistent classes of the Hive metastore, from package.jdo in pyspark's jars."""
    import pyspark

    jars = sorted((Path(pyspark.__file__).parent / "jars").glob("hive-metastore-*.jar"))
    if not jars:
        raise EnvironmentProblem("no hive-metastore jar in pyspark's jars: is pyspark complete?")
    with zipfile.ZipFile(jars[-1]) as jar:
        mapping = jar.read("package.jdo").decode("utf-8")
    return re.findall(r'<class name="(\w+)"', mapping)


def check_reachable(pg: Postgres, timeout: float = 10.0) -> None:
    """Fail fast and clearly, before a JVM starts, when nothing listens at HOST:PORT."""
    try:
        with socket.create_connection((pg.host, pg.port), timeout=timeout):
            return
    except OSError as exc:
        raise EnvironmentProblem(
            f"cannot reach {pg} ({exc.strerror or exc}): is PostgreSQL running and listening "
            f"on {pg.host}?"
        ) from exc


def check_driver(path: str) -> str:
    if not Path(path).is_file():
        raise EnvironmentProblem(f"no PostgreSQL JDBC driver at {path}: {DRIVER_HINT}")
    return str(Path(path).resolve())


@dataclass
class SchemaReport:
    created: int  # tables this run created
    tables: int  # metastore tables now
    version: str

    def render(self, pg: Postgres) -> str:
        if self.created:
            return f"metastore: {pg}: created {self.created} tables, Hive schema {self.version}"
        return (
            f"metastore: {pg}: schema already there ({self.tables} tables, Hive schema "
            f"{self.version}), nothing changed"
        )


def create_schema(spark: SparkSession, pg: Postgres) -> SchemaReport:
    """Create the metastore schema in PostgreSQL (a no-op when it is there), holding an
    advisory lock so that concurrent runs of this command take turns.

    The session must have been built with :func:`schema_creation_conf` and must not have
    used its catalog yet: DataNucleus creates the tables when the Hive client starts.

    Raises:
        ConfigError: the database holds tables that are not a Hive metastore, or a metastore
            of a Hive version this Spark cannot use.
        EnvironmentProblem: PostgreSQL refused the connection or a statement.
    """
    from py4j.protocol import Py4JJavaError

    jvm = spark._jvm
    props = jvm.java.util.Properties()
    props.setProperty("user", pg.user)
    if pg.password is not None:
        props.setProperty("password", pg.password)
    try:
        connection = jvm.java.sql.DriverManager.getConnection(pg.jdbc_url, props)
    except Py4JJavaError as exc:
        raise EnvironmentProblem(f"{pg}: {_java_message(exc)}") from exc
    try:
        statement = connection.createStatement()
        statement.execute("SET lock_timeout = '10min'")
        statement.execute(f"SELECT pg_advisory_lock({SCHEMA_LOCK_KEY})")
        try:
            before = _tables(statement)
            _check_is_metastore(pg, before, _schema_version(statement, before))
            spark.sql("SHOW DATABASES").collect()  # the Hive client starts: tables are made
            after = _tables(statement)
            version = _schema_version(statement, after)
        finally:
            statement.execute(f"SELECT pg_advisory_unlock({SCHEMA_LOCK_KEY})")
    except Py4JJavaError as exc:
        raise EnvironmentProblem(f"{pg}: {_java_message(exc)}") from exc
    finally:
        connection.close()
    if version is None:
        raise EnvironmentProblem(f"{pg}: the Hive client started but recorded no schema version")
    return SchemaReport(created=len(after - before), tables=len(after), version=version)


def _java_message(exc: Exception) -> str:
    java = getattr(exc, "java_exception", None)
    text = str(java.getMessage()) if java is not None else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _tables(statement) -> set[str]:  # noqa: ANN001 - a java.sql.Statement through py4j
    rows = statement.executeQuery(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
    )
    names = set()
    while rows.next():
        names.add(str(rows.getString(1)))
    rows.close()
    return names


def _schema_version(statement, tables: set[str]) -> str | None:  # noqa: ANN001 - as above
    if "VERSION" not in tables:
        return None
    rows = statement.executeQuery('SELECT "SCHEMA_VERSION" FROM "VERSION"')
    version = str(rows.getString(1)) if rows.next() else None
    rows.close()
    return version


def _check_is_metastore(pg: Postgres, tables: set[str], version: str | None) -> None:
    if tables and "DBS" not in tables:
        sample = ", ".join(sorted(tables)[:3]) + (", ..." if len(tables) > 3 else "")
        raise ConfigError(
            f"{pg} holds {len(tables)} table(s) that are not a "
            f"Hive metastore ({sample}): "
            "give an empty database, e.g. CREATE DATABASE metastore"
        )
    if version is not None and not version.startswith(SCHEMA_VERSION_PREFIX):
        raise ConfigError(
            f"{pg} holds a Hive {version} metastore; the Hive client in pyspark 4 needs "
            f"{SCHEMA_VERSION_PREFIX}x: left unchanged"
        )


def write_spark_defaults(conf_dir: Path, conf: dict[str, str]) -> Path:
    """Write ``conf`` into ``conf_dir/spark-defaults.conf``, keeping every line of an existing
    file that is not one of our keys. Mode 600: the file holds the database password."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / DEFAULTS_FILE
    kept: list[str] = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            key = line.split(None, 1)[0] if line.strip() else ""
            if key not in MANAGED_KEYS and line != MANAGED_HEADER:
                kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    ours = [MANAGED_HEADER, *(f"{key} {value}" for key, value in conf.items())]
    text = "\n".join([*kept, *([""] if kept else []), *ours]) + "\n"
    partial = path.with_name(f".{DEFAULTS_FILE}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
    return path


def default_warehouse() -> str:
    return Path("spark-warehouse").resolve().as_uri()


def warehouse_uri(value: str) -> str:
    """A path every process resolves the same way: local paths are made absolute."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", value) or value.startswith("file:"):
        return value
    return Path(value).expanduser().resolve().as_uri()


def setup_shared_metastore(settings: Settings, url: str) -> int:
    """`metastore`: create the schema in PostgreSQL at URL, then write the Spark settings
    that share it into the configuration folder; prints what it did."""
    from loader.session import build_session

    pg = parse_postgres_url(url)
    driver = check_driver(settings.jdbc_driver or DEBIAN_JDBC_DRIVER)
    warehouse = warehouse_uri(settings.warehouse) if settings.warehouse else default_warehouse()
    conf_dir = Path(settings.conf_dir or os.environ.get("SPARK_CONF_DIR") or "spark-conf")
    conf_dir = conf_dir.resolve()
    check_reachable(pg)
    settings.conf = {**settings.conf, **schema_creation_conf(pg, warehouse, driver)}
    spark = build_session(settings, "tsa metastore")
    print(create_schema(spark, pg).render(pg))
    spark.stop()
    path = write_spark_defaults(conf_dir, shared_conf(pg, warehouse, driver))
    print(f"wrote {path} (mode 600: it holds the password)")
    print(f"warehouse: {warehouse}")
    print(f"every Spark process started with SPARK_CONF_DIR={conf_dir} shares this catalog:")
    print(f"  export SPARK_CONF_DIR={conf_dir}")
    return 0
