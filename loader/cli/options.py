"""Every command-line option, defined once.

An option is named after the setting it fills (``Settings.max_files`` is ``--max-files``);
its type, choices and default come from :class:`loader.config.Settings`, so the flag, the
config file key and the default cannot disagree. Argparse defaults stay None: a flag that is
not given leaves the config file's value, else the default, in place (``config.resolve``).
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, dataclass, fields
from typing import Any

from loader.config import Settings, choices

Parser = argparse.ArgumentParser | argparse._ArgumentGroup


def _field(key: str) -> Any:
    return next(f for f in fields(Settings) if f.name == key)


def default_of(key: str) -> Any:
    found = _field(key)
    if found.default is not MISSING:
        return found.default
    return found.default_factory()  # type: ignore[misc]


@dataclass(frozen=True)
class Option:
    """One option: the setting it fills and how it reads on the command line."""

    key: str
    help: str
    flag: str | None = None  # default: --key-with-dashes
    metavar: str | None = None
    many: bool = False  # one or more values (nargs="+")
    positional: bool = False
    show_default: bool = True

    @property
    def flags(self) -> list[str]:
        return [self.flag or "--" + self.key.replace("_", "-")]

    def add(self, parser: Parser, help: str | None = None, required: bool = False) -> None:
        """Add the option to PARSER; HELP replaces the generic text where a command needs
        to say more (the setting, its type and default stay the same)."""
        annotation = str(_field(self.key).type)
        text = help or self.help
        default = default_of(self.key)
        if self.show_default and default not in (None, False, [], {}) and "(default" not in text:
            text = f"{text} (default: {default})"
        kwargs: dict[str, Any] = {"help": text}
        if self.positional:
            parser.add_argument(self.key, nargs="*", metavar=self.metavar, help=text)
            return
        if annotation.startswith("bool"):
            kwargs.update(action="store_true", default=None)
        else:
            kwargs.update(default=None, metavar=self.metavar, choices=choices(self.key))
            if annotation.startswith("int"):
                kwargs["type"] = int
            elif annotation.startswith("float"):
                kwargs["type"] = float
            if self.many:
                kwargs["nargs"] = "+"
        if required:
            kwargs["required"] = True
        parser.add_argument(*self.flags, dest=self.key, **kwargs)


# Where and what
DATABASE = Option("database", "database of the tables")
SOURCE = Option("source", "a folder or s3://bucket/prefix of CloudTrail logs")
TABLE = Option("table", "events table or view (default: DATABASE.cloudtrail)")
KIND = Option(
    "kind",
    "what the logs are: CloudTrail, or S3 server access logs (security.s3_access_logs, flat "
    "or date-partitioned key layout)",
)
SINCE = Option("since", "first event time, e.g. 2024-03-01 or 2024-03-01T12:00:00")
UNTIL = Option("until", "end (exclusive) of the event times")
RULES = Option("rules", "rule folders or files (default: bundled)", metavar="DIR", many=True)
PATHS = Option("paths", "rule files or folders", metavar="PATH", positional=True)

# Spark
MASTER = Option("master", "Spark master URL (default: Spark's own, local[*])")
CONF = Option("conf", "a Spark setting, repeatable (e.g. --conf spark.driver.memory=4g)")

# Enrichment
GEOIP_CITY_DB = Option("geoip_city_db", "MaxMind City .mmdb, local or s3://", metavar="PATH")
GEOIP_COUNTRY_DB = Option("geoip_country_db", "MaxMind Country .mmdb", metavar="PATH")
GEOIP_ASN_DB = Option("geoip_asn_db", "MaxMind ASN .mmdb", metavar="PATH")
TOR_EXIT_LIST = Option(
    "tor_exit_list",
    "Tor exit list: file, folder or tarball of snapshots, http(s) URL or s3://",
    metavar="SOURCE",
)
TOR_REFRESH = Option(
    "tor_refresh", "re-read the Tor list this often (0: never)", metavar="DURATION"
)

# Rule engine
EXPLAIN = Option(
    "explain",
    "print the plan (which rules share one pass over the events, which run alone and why, "
    "Spark jobs per batch) and stop, without starting Spark",
)
NO_FUSE = Option(
    "no_fuse",
    "run every rule alone, exactly as written (the reference path, for comparisons and bug "
    "reports; slower)",
)
STRICT = Option(
    "strict",
    "stop when a rule fails at runtime (default: report it with its file, leave it out and go "
    "on with the other rules)",
)

# Log delivery gaps
NO_COVERAGE = Option(
    "no_coverage", "do not judge log delivery gaps (default: alert on them, kind coverage)"
)
MIN_GAP = Option("min_gap", "a silence shorter than this is never a gap", metavar="DURATION")
GAP_FACTOR = Option(
    "gap_factor",
    "a gap is longer than N times the series' usual interval (its p99)",
    metavar="N",
)


def spark_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Spark")
    MASTER.add(group)
    group.add_argument("--conf", action="append", metavar="KEY=VALUE", help=CONF.help)


def enrichment_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Enrichment (GeoIP and Tor functions)")
    for option in (GEOIP_CITY_DB, GEOIP_COUNTRY_DB, GEOIP_ASN_DB, TOR_EXIT_LIST, TOR_REFRESH):
        option.add(group)


def engine_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Rule engine")
    for option in (EXPLAIN, NO_FUSE, STRICT):
        option.add(group)


def coverage_options(parser: argparse.ArgumentParser, switch: bool = True) -> None:
    group = parser.add_argument_group("Log delivery gaps (rule log_delivery_gap)")
    if switch:
        NO_COVERAGE.add(group)
    MIN_GAP.add(group)
    GAP_FACTOR.add(group)


def common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="PATH", help="TOML settings file, local path or s3://bucket/key"
    )
    parser.add_argument("--debug", action="store_true", default=None, help="show tracebacks")


def command(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    handler: Any,
    help: str,
    description: str,
    spark: bool = True,
    enrichment: bool = False,
) -> argparse.ArgumentParser:
    """A subcommand; HANDLER(settings) runs it. The options every command has (config,
    debug; Spark's when it starts Spark, enrichment's when it evaluates SQL) are added after
    its own by :func:`finish`, so its --help lists its own first."""
    parser = commands.add_parser(name, help=help, description=description)
    parser.set_defaults(handler=handler)
    SHARED[name] = (spark, enrichment)
    return parser


SHARED: dict[str, tuple[bool, bool]] = {}  # command -> (Spark options, enrichment options)


def finish(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add every command's shared option groups."""
    for name, parser in commands.choices.items():
        spark, enrichment = SHARED[name]
        if enrichment:
            enrichment_options(parser)
        if spark:
            spark_options(parser)
        common_options(parser)
