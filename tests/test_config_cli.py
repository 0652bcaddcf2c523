"""Fast tier: configuration file, flags, the CLI front door and the Java check."""

from __future__ import annotations

import subprocess
import sys
import time

import boto3
import pytest

from loader.cli import main
from loader.config import parse_conf_pairs, resolve
from loader.errors import ConfigError
from loader.java import parse_java_major


def test_config_file_then_flags_override(tmp_path):
    config = tmp_path / "tsa.toml"
    config.write_text(
        'database = "sec"\nmaster = "local[1]"\nsource = "/logs"\n'
        '[conf]\n"spark.driver.memory" = "2g"\n"spark.sql.adaptive.enabled" = false\n'
    )
    settings = resolve(str(config), {"master": "local[4]", "conf": ["spark.x=1=2"]})
    assert settings.database == "sec"
    assert settings.master == "local[4]"
    assert settings.source == "/logs"
    assert settings.conf == {
        "spark.driver.memory": "2g",
        "spark.sql.adaptive.enabled": "false",
        "spark.x": "1=2",
    }


def test_unknown_and_mistyped_keys_are_errors(tmp_path):
    config = tmp_path / "tsa.toml"
    config.write_text('databse = "x"\nmaster = 3\nevents = true\ndays = "7"\n')
    with pytest.raises(ConfigError) as err:
        resolve(str(config), {})
    message = str(err.value)
    assert "unknown setting 'databse' (did you mean 'database'?)" in message
    assert "'master' must be a string, got int 3" in message
    assert "'events' must be an integer, got bool True" in message
    assert "'days' must be an integer, got str '7'" in message


def test_invalid_toml_names_the_file(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("database = \n")
    with pytest.raises(ConfigError, match="bad.toml: invalid TOML"):
        resolve(str(config), {})


def test_config_from_s3(moto_server):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="config-bucket")
    s3.put_object(Bucket="config-bucket", Key="tsa.toml", Body=b'database = "from_s3"\n')
    assert resolve("s3://config-bucket/tsa.toml", {}).database == "from_s3"
    with pytest.raises(ConfigError, match="cannot read from S3"):
        resolve("s3://config-bucket/missing.toml", {})


def test_sample_settings_come_from_the_config_file(tmp_path, capsys):
    config = tmp_path / "tsa.toml"
    config.write_text(f'out = "{tmp_path / "logs"}"\nevents = 120\ndays = 1\naccounts = 1\n')
    assert main(["generate-sample", "--config", str(config), "--events", "90"]) == 0
    assert "wrote 90 events" in capsys.readouterr().out
    assert main(["generate-sample", "--out", str(tmp_path), "--end-date", "31/03/2024"]) == 1
    assert "expected a day as YYYY-MM-DD" in capsys.readouterr().err


def test_conf_pairs_need_an_equals_sign():
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_conf_pairs(["spark.driver.memory"])


def test_help_is_fast_and_starts_no_jvm():
    code = (
        "import sys, contextlib, io\n"
        "from loader.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "for sub in ['create-hive-table', 'generate-sample', 'demo']:\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        main([sub, '--help'])\n"
        "heavy = [m for m in ('pyspark', 'py4j', 'boto3', 'pandas', 'geoip2')\n"
        "         if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    elapsed = time.monotonic() - start
    assert "HEAVY []" in proc.stdout, proc.stderr
    assert elapsed < 1.0


def test_cli_errors_are_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["create-hive-table", "--database", "x"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        "error: create-hive-table needs --source (or 'source' in the config file)"
    )
    start = time.monotonic()
    assert main(["create-hive-table", "--source", str(tmp_path / "nope")]) == 1
    assert "nope: no such directory" in capsys.readouterr().err
    assert time.monotonic() - start < 2  # refused before any JVM starts
    assert not (tmp_path / "metastore_db").exists()


@pytest.mark.parametrize(
    "output, major",
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_292"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("garbage", None),
    ],
)
def test_java_version_parsing(output, major):
    assert parse_java_major(output) == major


def test_missing_java_is_one_clear_line(tmp_path):
    env = {"PATH": str(tmp_path), "JAVA_HOME": str(tmp_path / "nojava"), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "loader", "create-hive-table", "--source", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: no Java found (needed by Spark): install a Java")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_bad_enrichment_sources_fail_before_spark_starts(monkeypatch, capsys, tmp_path):
    import socket

    import loader.session
    from tests.corpus import corpus_dir

    def no_spark(*args, **kwargs):
        raise AssertionError("Spark must not start for a bad setting")

    monkeypatch.setattr(loader.session, "build_session", no_spark)
    bad = corpus_dir("geoip") / "bad-data" / "maxminddb-golang" / "invalid-string-length.mmdb"
    assert main(["enrich", "--geoip-city-db", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --geoip-city-db {bad}: not a valid MaxMind DB file")
    assert "\n" not in err
    assert main(["serve", "--tor-refresh", "soon"]) == 1
    assert "--tor-refresh 'soon': expected a number with a unit" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["serve", "--port", str(busy.getsockname()[1])]) == 1
    assert "cannot listen on 127.0.0.1:" in capsys.readouterr().err


def test_a_python_worker_failure_names_the_python_error():
    from loader.errors import first_line

    worker = Exception(
        "An exception was thrown from the Python worker. Please see the stack trace below.\n"
        'Traceback (most recent call last):\n  File "pyspark/worker.py", line 1\n'
        "ModuleNotFoundError: No module named 'udfs'\n\nJVM stacktrace:\n"
        "org.apache.spark.SparkException: Job aborted due to stage failure\n"
    )
    assert first_line(worker) == (
        "An exception was thrown from the Python worker: "
        "ModuleNotFoundError: No module named 'udfs'"
    )
    assert first_line(Exception("\n[TABLE_OR_VIEW_NOT_FOUND] x\nmore")) == (
        "[TABLE_OR_VIEW_NOT_FOUND] x"
    )
