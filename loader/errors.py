"""The project's exceptions: one root, a few narrow subclasses.

Spark's and boto3's exceptions are wrapped once, at the edge, with ``raise ... from exc``.
"""

from __future__ import annotations

import re


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


_PYTHON_WORKER = "An exception was thrown from the Python worker"
_PYTHON_ERROR = re.compile(r"^\w+(?:\.\w+)*(?:Error|Exception): .*")


def first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message (Spark's run to many lines). When
    that line only says a Python worker failed, the worker's own error is added, e.g.
    ``ModuleNotFoundError: No module named 'udfs'``."""
    text = str(exc).split("JVM stacktrace:")[0]  # Spark appends the JVM's after Python's
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if lines[0].startswith(_PYTHON_WORKER):
        cause = next((line for line in reversed(lines) if _PYTHON_ERROR.match(line)), None)
        if cause:
            return f"{_PYTHON_WORKER}: {cause}"
    return lines[0]
