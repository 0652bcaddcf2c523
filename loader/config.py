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
from loader.sample.spec import SampleSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ONCE = {"flag_only": True}  # about one invocation: a flag, never a config key


def _choices(*values: str) -> dict[str, Any]:
    return {"choices": values}


@dataclass
class Settings:
    """Everything a command reads, with its default.

    A config file key has the name of its field; the flag is the same name with dashes
    (``max_files`` is ``--max-files``). Fields marked ``ONCE`` say what to do this time
    (``--since``, ``--explain``, paths) and are flags only. ``sinks``, ``delivery`` and
    ``allowlist`` are tables of the config file only.
    """

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
    # enrichment: every command that evaluates SQL
    geoip_city_db: str | None = None
    geoip_country_db: str | None = None
    geoip_asn_db: str | None = None
    tor_exit_list: str | None = None
    tor_refresh: str = "1h"
    # tables
    kind: str = field(default="cloudtrail", metadata=_choices("cloudtrail", "s3-access-logs"))
    dry_run: bool = field(default=False, metadata=ONCE)
    # serve
    host: str = "127.0.0.1"
    port: int = 10000
    # the rule engine (detect, run, test-rules, export)
    rules: list[str] | None = None
    no_fuse: bool = False
    strict: bool = False
    explain: bool = field(default=False, metadata=ONCE)
    paths: list[str] = field(default_factory=list, metadata=ONCE)
    # which events and alerts (detect, coverage, report, materialize)
    table: str | None = None
    since: str | None = field(default=None, metadata=ONCE)
    until: str | None = field(default=None, metadata=ONCE)
    output: str | None = None
    # log delivery gaps (detect, run, coverage)
    no_coverage: bool = False
    min_gap: str = "1h"
    gap_factor: float = 3.0
    now: str | None = field(default=None, metadata=ONCE)
    # report
    report_out: str = field(default="alerts.html", metadata=ONCE)
    entities: int = 20
    # run
    checkpoint: str = "tsa-checkpoint"
    trigger: str = "30s"
    once: bool = field(default=False, metadata=ONCE)
    max_files: int | None = None
    history_table: str | None = None
    sqs_queue_url: str | None = None
    sqs_inbox: str | None = None
    sqs_visibility_timeout: str = "15m"
    events_queue_url: str | None = None
    events_inbox: str | None = None
    dedup_window: str = "24h"
    # metastore
    postgres: str | None = None
    conf_dir: str | None = None
    warehouse: str | None = None
    jdbc_driver: str | None = None
    # export
    dialect: str = field(default="athena", metadata=_choices("athena"))
    every: str = "1h"
    export_dir: str | None = field(default=None, metadata=ONCE)
    # discover and sync
    regions: list[str] | None = None
    create: bool = field(default=False, metadata=ONCE)
    sync_to: str | None = None
    dest: str | None = None
    # deliver
    wait: str = "0s"
    # import-sigma
    sigma_sources: list[str] = field(default_factory=list, metadata=ONCE)
    sigma_out: str | None = field(default=None, metadata=ONCE)
    force: bool = field(default=False, metadata=ONCE)
    source_url: str | None = field(default=None, metadata=ONCE)
    license: str | None = field(default=None, metadata=ONCE)
    sigma_dedup: str | None = field(default=None, metadata=ONCE)
    # alert delivery (run, detect, deliver): [[sinks]], [delivery], [allowlist] tables
    sinks: list[dict[str, Any]] = field(default_factory=list)
    delivery: dict[str, Any] = field(default_factory=dict)
    allowlist: dict[str, Any] = field(default_factory=dict)

    def need(self, key: str, command: str) -> Any:
        """The value of a setting a command cannot do without, or a one-line error."""
        value = getattr(self, key)
        if value in (None, "", []):
            flag = "--" + key.replace("_", "-")
            raise ConfigError(f"{command} needs {flag} (or '{key}' in the config file)")
        return value


FILE_ONLY = ("sinks", "delivery", "allowlist")


def known_keys() -> list[str]:
    """The keys a config file may hold."""
    return [f.name for f in fields(Settings) if not f.metadata.get("flag_only")]


def flag_only_keys() -> list[str]:
    return [f.name for f in fields(Settings) if f.metadata.get("flag_only")]


def choices(key: str) -> tuple[str, ...] | None:
    return next(f.metadata.get("choices") for f in fields(Settings) if f.name == key)


def _expected_type(key: str) -> type:
    annotation = str(next(f.type for f in fields(Settings) if f.name == key))
    for name, kind in (
        ("dict", dict), ("list", list), ("bool", bool), ("int", int), ("float", float)
    ):  # fmt: skip
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
        if key in flag_only_keys():
            problems.append(f"{origin}: '{key}' is about one run: give it as a flag "
                            f"(--{key.replace('_', '-')}), not in the config file")  # fmt: skip
        elif key not in keys:
            hint = difflib.get_close_matches(key, keys, n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            problems.append(f"{origin}: unknown setting '{key}'{suggestion}")
        elif key == "conf":
            if not isinstance(value, dict):
                problems.append(f"{origin}: 'conf' must be a table of Spark settings")
            else:
                data[key] = {str(k): _conf_value(v) for k, v in value.items()}
        else:
            problem = _check_value(key, value)
            if problem:
                problems.append(f"{origin}: {problem}")
            elif isinstance(value, int) and _expected_type(key) is float:
                data[key] = float(value)
    if problems:
        raise ConfigError("; ".join(problems))
    return data


def _check_value(key: str, value: Any) -> str | None:
    """What is wrong with a config value for KEY, or None."""
    expected = _expected_type(key)
    article = {
        "str": "a string", "int": "an integer", "bool": "true or false", "float": "a number",
        "dict": "a table", "list": "an array",
    }  # fmt: skip
    ok = isinstance(value, expected) or (expected is float and isinstance(value, int))
    # bool is an int in Python; a setting that wants a number must not take `true`
    if not ok or (expected in (int, float) and isinstance(value, bool)):
        what = "an array of tables ([[sinks]])" if key == "sinks" else article[expected.__name__]
        return f"'{key}' must be {what}, got {type(value).__name__} {value!r}"
    if expected is list and key != "sinks" and not all(isinstance(v, str) for v in value):
        return f"'{key}' must be an array of strings, got {value!r}"
    allowed = choices(key)
    if allowed and value not in allowed:
        return f"'{key}' must be one of {', '.join(allowed)}, got {value!r}"
    return None


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
    for key in (f.name for f in fields(Settings)):
        value = flags.get(key)
        if key == "conf":
            settings.conf = {**settings.conf, **parse_conf_pairs(value)}
        elif value is not None and value is not False and value != []:
            setattr(settings, key, value)
    return settings
