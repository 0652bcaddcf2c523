"""Column-at-a-time helpers for the pandas UDFs: each distinct value is looked up once per
batch, and the answers are spread back over the rows with numpy indexing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd


def map_distinct(values: pd.Series, lookup: Callable[[Any], Any]) -> pd.Series:
    """``values.map(lookup)``, calling ``lookup`` once per distinct non-null value."""
    codes, uniques = pd.factorize(values)
    answers = np.empty(len(uniques) + 1, dtype=object)
    answers[:-1] = [lookup(value) for value in uniques]
    answers[-1] = None  # code -1: a null input
    return pd.Series(answers[codes], index=values.index)


def epoch_seconds(times: pd.Series, session_zone: str) -> np.ndarray:
    """Seconds since 1970 (UTC) as floats, NaN where missing.

    Spark hands timestamps to pandas UDFs as naive values in the session time zone; strings
    (an unparsed eventTime) are read as ISO-8601, zone-less ones as UTC.
    """
    if pd.api.types.is_datetime64_any_dtype(times):
        stamps = times
        if stamps.dt.tz is None:
            stamps = stamps.dt.tz_localize(session_zone, ambiguous="NaT", nonexistent="NaT")
    else:
        stamps = pd.to_datetime(times, utc=True, errors="coerce", format="ISO8601")
    stamps = stamps.dt.tz_convert(dt.timezone.utc)
    seconds = stamps.astype("int64").to_numpy(dtype=np.float64) / 1e9
    seconds[stamps.isna().to_numpy()] = np.nan
    return seconds


def tor_exit_at(index: Any, ips: pd.Series, seconds: np.ndarray) -> pd.Series:
    """``index.is_exit_at`` for a whole batch: the snapshot window of every row with numpy, the
    per-row check only for the few rows whose address is listed at all."""
    from udfs.ip import public_ip

    codes, uniques = pd.factorize(ips)
    listed = [index.listed.get(public_ip(value) or "") for value in uniques]
    times = np.asarray(index.times, dtype=np.float64)
    lo = np.searchsorted(times, seconds - index.window, side="left")
    hi = np.searchsorted(times, seconds + index.window, side="right")
    covered = (hi > lo) & ~np.isnan(seconds) & (codes >= 0)
    answers = np.full(len(ips), None, dtype=object)
    answers[covered] = False
    has_listing = np.array([entry is not None for entry in listed] + [False])[codes]
    for row in np.flatnonzero(covered & has_listing):
        ip = public_ip(uniques[codes[row]])
        answers[row] = index.listed_between(ip, int(lo[row]), int(hi[row]))
    return pd.Series(answers, index=ips.index)
