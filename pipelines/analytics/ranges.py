"""A query's range and time zone: the SQL that filters on the range and the SQL of local time
(buckets, hour of day, weekday, times shown), through DuckDB's time zone functions.

Stored times are naive UTC ``TIMESTAMP``s. ``timezone('UTC', ts)`` makes the instant (a
``TIMESTAMPTZ``) and ``timezone(tz, instant)`` its wall-clock ``TIMESTAMP`` in ``tz``; neither
reads the connection's ``TimeZone`` setting, so nothing is set on a shared connection.

Speed over 10 M rows: converting every row costs about 15 times the integer arithmetic on epoch
microseconds that a UTC key needs. So rows are grouped by UTC hour (by UTC quarter hour in
zones with offsets like +05:45; by minute or 5 minutes for narrower buckets) with integer
arithmetic, and only each hour's start is converted: every row of one UTC hour has the same
local bucket, hour and weekday as long as the zone's offset stays the same during it and is a
whole number of hours, which ``_aligned`` checks over the range (quarter hours hold in every
zone since 2023; before, a few changed at one minute past the hour). Counts are made per UTC
hour and then put under their key; queries that need the key on every row (percentiles) join
the rows to a small table of the range's hours and their keys. Where no grain holds, every row
is converted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Callable, Mapping

import duckdb

from .params import BUCKETS

US_MINUTE, US_HOUR, US_DAY = 60_000_000, 3_600_000_000, 86_400_000_000
QUARTER_HOUR = 15 * US_MINUTE
MONDAY_US = 4 * US_DAY  # 1970-01-05, a Monday: weeks start on Mondays (as ISO weeks do)
EPOCH = dt.datetime(1970, 1, 1)


def us(moment: dt.datetime) -> int:
    return (moment - EPOCH) // dt.timedelta(microseconds=1)


def _zone_sql(tz: str) -> str:
    return "'" + tz.replace("'", "''") + "'"


_ALIGNED: dict[tuple[str, int, int, int], bool] = {}  # the zone database does not change while we run


def _aligned(con: duckdb.DuckDBPyConnection, tz: str, first: int, last: int, grain: int) -> bool:
    """Whether ``tz``'s offset is the same at both ends of every UTC ``grain`` (µs) from
    ``first`` to ``last`` (grain indexes) and a whole number of grains: then one conversion
    per grain gives every row of it its local key. (No zone changes twice within an hour.)"""
    known = _ALIGNED.get((tz, first, last, grain))
    if known is not None:
        return known
    off = "epoch_us(timezone({z}, make_timestamptz({t}))) - {t}"
    a, b = (off.format(z=_zone_sql(tz), t=t) for t in (f"range * {grain}", f"(range * {grain} + {grain - 1})"))
    sql = f"SELECT coalesce(bool_and({a} = {b} AND ({a}) % {grain} = 0), true) FROM range({first}, {last} + 1)"
    if len(_ALIGNED) > 1000:
        _ALIGNED.clear()
    _ALIGNED[tz, first, last, grain] = answer = bool(con.execute(sql).fetchone()[0])
    return answer


@dataclasses.dataclass(frozen=True)
class Range:
    """A query's time range ``[start, end)`` (naive UTC) and the time zone it shows time in."""
    start: dt.datetime
    end: dt.datetime
    tz: str = "UTC"

    def within(self, column: str) -> str:
        # On the raw UTC column, so DuckDB's zone maps skip row groups outside the range.
        return f"{column} >= $start AND {column} < $end"

    def local(self, column: str) -> str:
        """SQL: a UTC TIMESTAMP expression as a wall-clock TIMESTAMP in tz."""
        return column if self.tz == "UTC" else f"timezone({_zone_sql(self.tz)}, timezone('UTC', {column}))"

    def local_us(self, column: str) -> str:
        """SQL: a UTC TIMESTAMP expression as wall-clock microseconds since 1970 in tz."""
        return f"epoch_us({self.local(column)})"

    def to_local(self, con: duckdb.DuckDBPyConnection, moment: dt.datetime) -> dt.datetime:
        return moment if self.tz == "UTC" else con.execute(f"SELECT {self.local('$t')}", {"t": moment}).fetchone()[0]

    def key(self, con: duckdb.DuckDBPyConnection, column: str, of_local_us: Callable[[str], str],
            resolution: int) -> Key:
        """How rows of ``column`` get the key ``of_local_us`` (SQL over local microseconds, the
        same for every row of one local ``resolution``, in µs)."""
        if self.tz == "UTC":  # integer arithmetic on every row: cheaper than any grouping
            every_row = of_local_us(f"epoch_us({column})")
            return Key(every_row, "{g}", every_row)
        grain = next((g for g in sorted({min(resolution, US_HOUR), min(resolution, QUARTER_HOUR)}, reverse=True)
                      if _aligned(con, self.tz, us(self.start) // g, us(self.end) // g, g)), None)
        if grain is None:
            every_row = of_local_us(self.local_us(column))
            return Key(every_row, "{g}", every_row)
        local_start = f"epoch_us(timezone({_zone_sql(self.tz)}, make_timestamptz({{g}} * {grain})))"
        # Per row: the key of its UTC grain, from a table of the range's grains (a join costs a
        # fraction of converting each row).
        zone = (f" JOIN (SELECT range AS g, {of_local_us(local_start.format(g='range'))} AS key FROM "
                f"range(epoch_us($start) // {grain}, epoch_us($end) // {grain} + 1)) zone "
                f"ON zone.g = epoch_us({column}) // {grain}")
        return Key(f"epoch_us({column}) // {grain}", of_local_us(local_start), "zone.key", zone)

    def binds(self, **more: Any) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, **more}


@dataclasses.dataclass(frozen=True)
class Key:
    """SQL of a row's group key (a time key, or a column's value). ``group`` is an integer per row; ``of`` (over ``{g}``) turns a
    group into the key, once per group rather than per row; ``per_row`` is the key of each row
    (with ``join`` added to the FROM clause) where a query needs the key on every row."""
    group: str
    of: str = "{g}"
    per_row: str | None = None
    join: str = ""


@dataclasses.dataclass(frozen=True)
class Dim:
    """A grouping: the output column, how rows get their key, and (for time) every key of the
    range, so empty buckets / hours show as zero rows."""
    name: str                 # output column name
    key: Key                  # SQL of the group key (an integer for time groups)
    grid: str | None = None   # SQL of every key value
    show: str = "{k}"         # SQL turning the key {k} into the value shown

    def rows(self, select: str, table: str, where: str) -> str:
        """``SELECT key, {select} FROM table WHERE where``: each row with its key."""
        return f"SELECT {self.key.per_row} AS key, {select} FROM {table}{self.key.join} WHERE {where}"

    def counted(self, select: str, table: str, where: str, count: str = "count(*) AS n") -> str:
        """Rows counted per key and ``select`` columns (``GROUP BY ALL``): grouped per UTC
        grain first, then each grain's counts put under its key."""
        if self.key.of == "{g}":
            return f"SELECT {self.key.group} AS key, {select}{count} FROM {table} WHERE {where} GROUP BY ALL"
        return (f"SELECT {self.key.of.format(g='g')} AS key, * EXCLUDE (g) FROM (SELECT {self.key.group} AS g, "
                f"{select}{count} FROM {table} WHERE {where} GROUP BY ALL)")


def bucket_key(bucket: str) -> tuple[int, int]:
    """(width, origin) in µs of a bucket: keys count widths since the origin."""
    return BUCKETS[bucket] // dt.timedelta(microseconds=1), MONDAY_US if bucket == "week" else 0


def hour_of_day(local_us: str) -> str:
    return f"((({local_us}) // {US_HOUR}) % 24)"


def weekday(local_us: str) -> str:  # 1970-01-01 was a Thursday (ISO 4)
    return f"(((({local_us}) // {US_DAY}) + 3) % 7 + 1)"


def dim(con: duckdb.DuckDBPyConnection, by: str, time_col: str, r: Range, bucket: str = "hour",
        columns: Mapping[str, str] | None = None) -> Dim:
    if by == "bucket":
        width, origin = bucket_key(bucket)
        first = (us(r.to_local(con, r.start)) - origin) // width
        last = -(-(us(r.to_local(con, r.end)) - origin) // width)  # ceiling: buckets that start before the end
        return Dim("bucket", r.key(con, time_col, lambda t: f"(({t}) - {origin}) // {width}", width),
                   f"SELECT range AS key FROM range({first}, {last})", f"make_timestamp({{k}} * {width} + {origin})")
    if by == "hour":
        return Dim("hour", r.key(con, time_col, hour_of_day, US_HOUR), "SELECT range AS key FROM range(0, 24)")
    if by == "weekday":
        return Dim("weekday", r.key(con, time_col, weekday, US_HOUR), "SELECT range AS key FROM range(1, 8)")
    column = (columns or {})[by]
    return Dim(column, Key(f"coalesce({column}, '(none)')", per_row=f"coalesce({column}, '(none)')"))
