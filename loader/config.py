"""One configuration file (TOML, local or s3://) for every setting a flag can give.

Precedence: command-line flag > config file > built-in default. Unknown keys are errors with a
"did you mean" hint, because a misspelt setting that is silently ignored is a security bug.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from loader.errors import ConfigError, TsaError
from loader.sample.generate import SampleSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


@dataclass
class Settings:
    """Every setting, with its default. A config key has the name of its field."""

    master: str | None = None
    conf: dict[str, str] = field(default_factory=dict)
    database: str = "security"
    source: str | None = None
    debug: bool = False
    # generate-sample and demo; the sample's own defaults are the single source
    out: str | None = None
    events: int = SampleSpec.events
    days: int = SampleSpec.days
    accounts: int = SampleSpec.accounts
    seed: int = SampleSpec.seed
    events_per_file: int = SampleSpec.events_per_file
    end_date: str | None = None
    file_minutes: int = SampleSpec.file_minutes
    # enrichment: every command that evaluates SQL (demo, enrich, serve)
    geoip_city_db: str | None = None
    geoip_country_db: str | None = None
    geoip_asn_db: str | None = None
    tor_exit_list: str | None = None
    tor_refresh: str = "1h"
    # run: history replayed from the materialized Parquet table (database.table)
    history_table: str | None = None
    # serve
    host: str = "127.0.0.1"
    port: int = 10000
    # alert delivery (run, detect, deliver): [[sinks]], [delivery], [allowlist] tables
    sinks: list[dict[str, Any]] = field(default_factory=list)
    delivery: dict[str, Any] = field(default_factory=dict)
    allowlist: dict[str, Any] = field(default_factory=dict)


def known_keys() -> list[str]:
    return [f.name for f in fields(Settings)]


def _expected_type(key: str) -> type:
    annotation = str(next(f.type for f in fields(Settings) if f.name == key))
    for name, kind in (("dict", dict), ("list", list), ("bool", bool), ("int", int)):
        if annotation.startswith(name):
            return kind
    return str


def read_config_text(path: str) -> str:
    from loader.s3util import is_s3, read_s3_bytes

    if is_s3(path):
        try:
            return read_s3_bytes(path).decode("utf-8")
        except TsaError as exc:
            raise ConfigError(f"config file {exc}") from exc
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from exc


def parse_config(text: str, origin: str) -> dict[str, Any]:
    """Parse TOML text and check every key and its type against :class:`Settings`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: invalid TOML: {exc}") from exc
    keys = known_keys()
    problems = []
    for key, value in data.items():
        if key not in keys:
            hint = difflib.get_close_matches(key, keys, n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            problems.append(f"{origin}: unknown setting '{key}'{suggestion}")
        elif key == "conf":
            if not isinstance(value, dict):
                problems.append(f"{origin}: 'conf' must be a table of Spark settings")
            else:
                data[key] = {str(k): _conf_value(v) for k, v in value.items()}
        else:
            expected = _expected_type(key)
            # bool is an int in Python; a setting that wants a number must not take `true`
            if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
                article = {
                    "str": "a string", "int": "an integer", "bool": "true or false",
                    "dict": "a table", "list": "an array of tables ([[sinks]])",
                }  # fmt: skip
                problems.append(
                    f"{origin}: '{key}' must be {article[expected.__name__]}, "
                    f"got {type(value).__name__} {value!r}"
                )
    if problems:
        raise ConfigError("; ".join(problems))
    return data


def _conf_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_conf_pairs(pairs: list[str] | None) -> dict[str, str]:
    """['spark.a=1', 'spark.b=x=y'] -> {'spark.a': '1', 'spark.b': 'x=y'}."""
    result: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--conf {pair!r}: expected key=value, e.g. spark.driver.memory=4g")
        result[key.strip()] = value
    return result


def resolve(config_path: str | None, flags: dict[str, Any]) -> Settings:
    """Merge defaults, the config file and the flags that were given (not None)."""
    settings = Settings()
    if config_path:
        for key, value in parse_config(read_config_text(config_path), config_path).items():
            setattr(settings, key, value)
    for key in known_keys():
        value = flags.get(key)
        if key == "conf":
            settings.conf = {**settings.conf, **parse_conf_pairs(value)}
        elif value is not None and value is not False:
            setattr(settings, key, value)
    return settings
