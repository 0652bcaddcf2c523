"""`metastore` without a JVM: the URL forms, the settings written, and the conf file merge."""

from __future__ import annotations

import pytest

from loader.cli import main
from loader.errors import ConfigError
from loader.metastore import (
    Postgres,
    hive_model_classes,
    parse_postgres_url,
    schema_creation_conf,
    shared_conf,
    write_spark_defaults,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://hive:p%40ss%20w@db.internal:6543/metastore",
            Postgres("db.internal", 6543, "metastore", "hive", "p@ss w"),
        ),
        ("postgres://hive@127.0.0.1/ms", Postgres("127.0.0.1", 5432, "ms", "hive", "from-env")),
        (
            "jdbc:postgresql://h:5432/ms?user=u&password=pw&sslmode=require",
            Postgres("h", 5432, "ms", "u", "pw", (("sslmode", "require"),)),
        ),
    ],
)
def test_url_forms(url, expected):
    assert parse_postgres_url(url, {"PGPASSWORD": "from-env"}) == expected


def test_jdbc_url_keeps_options_and_brackets_ipv6():
    assert Postgres("::1", 5432, "ms", "u", None, (("sslmode", "require"),)).jdbc_url == (
        "jdbc:postgresql://[::1]:5432/ms?sslmode=require"
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:secret@h/db", "'mysql://u:***@h/db': expected postgresql://"),
        ("postgresql://u:secret@h", "'postgresql://u:***@h': no database"),
        ("postgresql://h/db", "no user"),
        ("postgresql://u@h:port/db", "the port is not a number"),
    ],
)
def test_bad_urls_say_what_is_wrong_without_the_password(url, message):
    with pytest.raises(ConfigError) as caught:
        parse_postgres_url(url, {})
    assert message in str(caught.value)
    assert "secret" not in str(caught.value)


def test_everyday_settings_cannot_change_the_schema_and_creation_makes_every_table():
    pg = Postgres("h", 5432, "ms", "u", "pw")
    everyday = shared_conf(pg, "file:/w", "/d.jar")
    assert everyday["spark.hadoop.hive.metastore.schema.verification"] == "true"
    assert all(
        everyday[f"spark.hadoop.datanucleus.schema.{key}"] == "false"
        for key in ("autoCreateAll", "autoCreateTables", "autoCreateColumns")
    )
    creating = schema_creation_conf(pg, "file:/w", "/d.jar")
    classes = creating["spark.hadoop.datanucleus.autoStartClassNames"].split(",")
    # Hive 2.3's model: one class per metastore object kind, MTable and MDatabase among them
    assert len(classes) == len(hive_model_classes()) == 30
    assert "org.apache.hadoop.hive.metastore.model.MTable" in classes
    assert creating["spark.hadoop.datanucleus.schema.autoCreateConstraints"] == "false"
    assert "spark.hadoop.javax.jdo.option.ConnectionPassword" not in shared_conf(
        Postgres("h", 5432, "ms", "u", None), "file:/w", "/d.jar"
    )


def test_conf_file_keeps_the_users_lines_and_replaces_ours(tmp_path):
    path = tmp_path / "spark-defaults.conf"
    path.write_text(
        "# mine\nspark.executor.memory 8g\nspark.sql.warehouse.dir /old\n"
        "spark.hadoop.javax.jdo.option.ConnectionURL jdbc:derby:old\n"
    )
    conf = shared_conf(Postgres("h", 5432, "ms", "u", "pw"), "file:/new", "/d.jar")
    write_spark_defaults(tmp_path, conf)
    write_spark_defaults(tmp_path, conf)  # a rerun writes the same file
    lines = path.read_text().splitlines()
    assert lines[:3] == ["# mine", "spark.executor.memory 8g", ""]
    assert "spark.sql.warehouse.dir file:/new" in lines and "/old" not in path.read_text()
    assert "derby" not in path.read_text()
    assert len(lines) == 3 + 1 + len(conf)
    assert path.stat().st_mode & 0o777 == 0o600


def test_cli_errors_before_any_jvm(tmp_path, capsys):
    missing = str(tmp_path / "none.jar")
    assert main(["metastore", "--postgres", "postgresql://u@h/db", "--jdbc-driver", missing]) == 1
    assert f"no PostgreSQL JDBC driver at {missing}: apt-get install" in capsys.readouterr().err
    driver = tmp_path / "driver.jar"
    driver.write_bytes(b"")
    url = "postgresql://u@127.0.0.1:1/db"
    assert main(["metastore", "--postgres", url, "--jdbc-driver", str(driver)]) == 1
    assert "cannot reach PostgreSQL u@127.0.0.1:1/db" in capsys.readouterr().err
