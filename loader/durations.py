"""Durations as people write them in flags, config files and rule headers: ``30s``, ``5m``,
``1h``, ``14d``, ``14 days``, ``24 hours``, ``0``."""

from __future__ import annotations

import re

from loader.errors import ConfigError

UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
    "w": 604800,
    "week": 604800,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*?)s?\s*$")


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds in ``text``; a bare number is seconds.

    Raises:
        ConfigError: not a duration; the message shows the accepted forms.
    """
    match = _DURATION.match(str(text).lower())
    unit = match.group(2) if match else None
    if not match or (unit and unit not in UNITS):
        raise ConfigError(
            f"{what} {text!r}: expected a number with a unit, e.g. 30s, 5m, 1h, 14d or '14 days'"
        )
    return float(match.group(1)) * UNITS.get(unit or "s", 1)
