"""The project's exceptions: one root, a few narrow subclasses.

Spark's and boto3's exceptions are wrapped once, at the edge, with ``raise ... from exc``.
"""

from __future__ import annotations


class TsaError(Exception):
    """Root of every error this project raises on purpose; the CLI prints it on one line."""


class ConfigError(TsaError):
    """A configuration file or flag is missing, unreadable or has a wrong value."""


class LoaderError(TsaError):
    """A source cannot be listed or tables cannot be created."""


class EnvironmentProblem(TsaError):
    """Something the machine must provide (Java, a Spark feature) is missing."""


class UdfError(TsaError):
    """An enrichment source (GeoIP database, Tor exit list) is missing, damaged or unusable."""


class SinkError(TsaError):
    """A sink is misconfigured, or refused or failed a delivery."""


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message (Spark's run to many lines)."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
