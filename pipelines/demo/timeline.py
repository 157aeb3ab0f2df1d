"""When things happen in the generated history: days, local hours (Asia/Jerusalem, its clock
changes included), the CRM's outages, and the Arrow timestamp columns the rows carry."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pyarrow as pa

from .world import DIAL_HOURS, HOURS, HOURS_FRIDAY, LOCAL_TZ, US, WEEKDAYS


def days_ending(end: dt.date, days: int) -> list[dt.date]:
    return [end - dt.timedelta(days=days - i) for i in range(days)]


def midnight_utc_us(day: dt.date) -> int:
    """Local midnight of ``day`` as UTC microseconds since the epoch, with the day's noon
    offset (Israel changes clocks at 02:00, when nobody calls)."""
    noon = dt.datetime(day.year, day.month, day.day, 12, tzinfo=zoneinfo.ZoneInfo(LOCAL_TZ))
    offset = noon.utcoffset() or dt.timedelta(0)
    naive = dt.datetime(day.year, day.month, day.day)
    return int(((naive - offset) - dt.datetime(1970, 1, 1)).total_seconds()) * US


def spread(rng: np.random.Generator, days: list[dt.date], counts: np.ndarray, profile_of) -> tuple[np.ndarray, ...]:
    """Start times (UTC µs, sorted), local hour and a load factor (0..~1) for ``counts[i]``
    events on ``days[i]``, spread over the day's hour profile."""
    parts, hours, loads = [], [], []
    peak = HOURS.max()
    for day, n in zip(days, counts.tolist()):
        if n == 0:
            continue
        profile = profile_of(day)
        h = rng.choice(24, n, p=profile / profile.sum())
        within = rng.integers(0, 3600 * US, n)
        t = midnight_utc_us(day) + h.astype(np.int64) * 3600 * US + within
        order = np.argsort(t, kind="stable")
        parts.append(t[order])
        hours.append(h[order])
        loads.append(np.full(n, WEEKDAYS[day.isoweekday()]) * HOURS[h[order]] / peak
                     if day.isoweekday() != 5 else HOURS_FRIDAY[h[order]] / peak * .6)
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(parts), np.concatenate(hours), np.concatenate(loads)


def call_profile(day: dt.date) -> np.ndarray:
    return HOURS_FRIDAY if day.isoweekday() == 5 else HOURS


def dial_profile(day: dt.date) -> np.ndarray:
    return DIAL_HOURS * (HOURS_FRIDAY > .2) if day.isoweekday() == 5 else DIAL_HOURS


def seconds_us(values: np.ndarray) -> np.ndarray:
    return (values * US).astype(np.int64)


def ts(us: np.ndarray) -> pa.Array:
    return pa.array(us.astype("datetime64[us]"))


def ts_or_null(us: np.ndarray, valid: np.ndarray) -> pa.Array:
    return pa.array(us.astype("datetime64[us]"), mask=~valid)


def outages(rng: np.random.Generator, days: list[dt.date]) -> np.ndarray:
    """CRM outages as [start, end) UTC µs rows: about one every ten working days, 10-45 min."""
    out = []
    for day in days:
        if day.isoweekday() in (5, 6) or rng.random() > .1:
            continue
        start = midnight_utc_us(day) + int(rng.uniform(8.5, 17.5) * 3600 * US)
        out.append((start, start + int(rng.uniform(10, 45) * 60 * US)))
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def during(t: np.ndarray, windows: np.ndarray) -> np.ndarray:
    if len(windows) == 0:
        return np.zeros(len(t), dtype=bool)
    i = np.searchsorted(windows[:, 0], t, side="right") - 1
    return (i >= 0) & (t < windows[np.maximum(i, 0), 1])
