"""Named analytics queries over the hub's DuckDB file: the one place numbers are defined.

The console (through ``GET /api/analytics/{name}``), the notebooks (through
``pipelines.readers.open_analytics``) and the tests call the same functions, so they cannot
disagree. Each query is a function ``f(con, start, end, **params) -> pandas.DataFrame`` and is
registered in ``QUERIES`` with its parameters, so callers that only have text (an HTTP query
string) are validated by the same rules as Python callers.

Definitions (written once; every query below uses them)
-------------------------------------------------------
- **Range**: ``[start, end)`` in UTC, applied to the moment each thing began: ``lookups.started_at``,
  ``pops.sent_at``, ``dials.requested_at``, ``calls.started_at``. A naive time is UTC; an aware
  one is converted. Output times (buckets, first/last seen) are wall-clock times in ``tz``
  (default UTC), and so are hour of day and weekday (ISO: 1 = Monday … 7 = Sunday).
- **Lookup**: one row of ``lookups`` (one per call with a caller number; cache hits included,
  because the agent saw their result).
- **Hit**: outcome ``found`` or ``multiple``: the CRM named the caller before the deadline.
  **Hit rate** = hits / lookups. Timeouts and errors stay in the denominator: the agent did
  not get a name in time. **Known rate** adds the timeouts whose late answer was found or
  multiple: how often the CRM knows the caller at all.
- **Timeout**: the CRM missed the deadline. The hub records outcome ``timeout`` with
  ``latency_ms`` = the deadline, sends a provisional pop, and fills ``late_outcome`` /
  ``late_latency_ms`` when the CRM answers later (``late_outcome`` = ``timeout`` when it never
  answered within ``crm_late_timeout_ms``).
- **Error**: outcome ``http_error`` or ``bad_response``. An **error kind** is the outcome plus
  the recorded reason up to its first parenthesis ("cannot connect to the CRM (…)" →
  "cannot connect to the CRM"), so one kind does not split by detail.
- **Latency**: ``latency_ms`` as recorded: from the lookup's start to its answer, or to the
  deadline for a timeout. It is the agent's wait, so it never exceeds the deadline in force
  (a p99 equal to the deadline means more than 1 % of lookups timed out). Cache hits count
  (``cache="miss"`` on ``lookup_latency`` keeps only the lookups that asked the CRM).
  **pXX** is exact: ``quantile_cont`` (linear interpolation between the two nearest ranks, the
  same as numpy's default) over the lookups of the group.
- **CRM answer time**: the CRM's own time, ``late_latency_ms`` for a timeout that was answered
  later, else ``latency_ms`` (used by the deadline what-if).
- **Pop sent**: a row of ``pops`` with ``sessions > 0`` (it reached at least one browser).
  A row with ``sessions = 0`` is **unreached** (the agent was not signed in anywhere).
  **Shown / clicked / closed**: sent pops with that acknowledgement. **Show rate** = shown /
  sent; **click-through** = clicked / shown.
- **Provisional**: a sent pop that needed the provisional bubble because the call's lookup
  timed out: the agent first saw the number alone and the name later. Read on the pop itself
  (its first version went out ``pending``: ``status`` is still ``pending`` or ``updated_at`` is
  set), which is the same as "its lookup has outcome ``timeout``" except for a ring-group
  extension that began ringing after the late answer had come (that pop went out complete).
  **Replaced** = the provisional pop was updated with the answer before the ring ended.
- **Dial requested**: a row of ``dials`` that was not refused (the hub handed it to the
  provider). **Refused**: outcome ``refused`` (never dialled: bad number, blocked prefix, rate
  limit…), counted apart. **Leg A answered**: ``leg_a_answered_at`` set. **Bridged**: outcome
  ``bridged``. **Failed**: outcome ``failed``, by its reason code (``error``). **In progress**:
  outcome still NULL. **Time to bridge**: ``bridged_at - requested_at`` in seconds, over bridged
  dials. Answer rate = leg A answered / requested; bridge rate = bridged / requested.
- Rates are fractions in [0, 1]; a rate over nothing is NULL (NaN), never 0.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import math
import re
import threading
import zoneinfo
from typing import Any, Callable, Mapping

import duckdb
import numpy as np
import pandas as pd

UTC = dt.timezone.utc
OUTCOMES = ("found", "multiple", "not_found", "timeout", "http_error", "bad_response")
HIT = "('found', 'multiple')"
ERRORS = "('http_error', 'bad_response')"
# Buckets: URL-friendly name -> width (also bounds the number of buckets a range makes).
BUCKETS: dict[str, dt.timedelta] = {
    "minute": dt.timedelta(minutes=1), "5min": dt.timedelta(minutes=5), "15min": dt.timedelta(minutes=15),
    "hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1), "week": dt.timedelta(days=7),  # weeks from Monday
}
MAX_BUCKETS = 10_000  # a bucket series longer than this is a mistake (and a big answer)
DEFAULT_SPAN = dt.timedelta(days=7)  # the range when a text caller gives neither start nor end


class InvalidParameter(ValueError):
    """A parameter a caller gave is wrong; ``str(e)`` says which and why (shown to people)."""

    def __init__(self, name: str, why: str):
        super().__init__(f"{name}: {why}")
        self.name, self.why = name, why


# --- parameters ---------------------------------------------------------------------------------

@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


def parse_time(name: str, value: Any) -> dt.datetime:
    """ISO 8601 text, a date, a datetime or a pandas Timestamp -> naive UTC datetime."""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, str):
        text = value.strip()
        try:
            value = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise InvalidParameter(name, f"{value[:40]!r} is not an ISO 8601 date or time "
                                         "(e.g. 2026-11-25 or 2026-11-25T10:00:00Z)") from None
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, dt.datetime):
        raise InvalidParameter(name, "must be a date or time")
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    if not dt.datetime(1970, 1, 5) <= value < dt.datetime(2200, 1, 1):
        raise InvalidParameter(name, "must be between 1970-01-05 and 2200")
    return value


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter of a named query: how text (or a Python value) becomes a valid value."""
    name: str
    kind: str  # time | choice | int | ints | tz
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    low: int | None = None
    high: int | None = None
    most: int = 20  # ints: how many values at most

    def convert(self, value: Any) -> Any:
        if self.kind == "time":
            return parse_time(self.name, value)
        if self.kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                raise InvalidParameter(self.name, f"must be one of {', '.join(self.choices)}, not {str(value)[:40]!r}")
            return value
        if self.kind == "tz":
            if not isinstance(value, str) or value not in _zones():
                raise InvalidParameter(self.name,
                                       f"{str(value)[:40]!r} is not an IANA time zone (e.g. UTC, Asia/Jerusalem)")
            return value
        if self.kind == "int":
            return self._int(value)
        if self.kind == "ints":
            items = value.split(",") if isinstance(value, str) else value
            try:
                values = sorted({self._int(v) for v in items if not (isinstance(v, str) and not v.strip())})
            except TypeError:
                raise InvalidParameter(self.name, "must be a comma-separated list of whole numbers") from None
            if not values or len(values) > self.most:
                raise InvalidParameter(self.name, f"give 1 to {self.most} whole numbers, comma-separated")
            return values
        raise AssertionError(self.kind)

    def _int(self, value: Any) -> int:
        if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
            raise InvalidParameter(self.name, f"must be a whole number, not {value!r}")
        try:
            number = int(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            raise InvalidParameter(self.name, f"must be a whole number, not {str(value)[:40]!r}") from None
        if (self.low is not None and number < self.low) or (self.high is not None and number > self.high):
            raise InvalidParameter(self.name, f"must be between {self.low} and {self.high}, not {number}")
        return number

    def describe(self) -> dict[str, Any]:
        out = {"name": self.name, "kind": self.kind, "default": self.default, "help": self.help}
        if self.choices:
            out["choices"] = list(self.choices)
        if self.low is not None:
            out["min"], out["max"] = self.low, self.high
        return out


START = Param("start", "time", None, "Start of the range, inclusive (ISO 8601; naive = UTC).")
END = Param("end", "time", None, "End of the range, exclusive (ISO 8601; naive = UTC).")
TZ = Param("tz", "tz", "UTC", "Time zone for buckets, hour of day, weekday and the times shown.")
BUCKET = Param("bucket", "choice", "hour", "Width of a time bucket.", tuple(BUCKETS))


@dataclasses.dataclass
class NamedQuery:
    name: str
    title: str
    func: Callable[..., pd.DataFrame]
    params: tuple[Param, ...]

    @property
    def description(self) -> str:
        doc = (self.func.__doc__ or "").strip()
        return " ".join(doc.split("\n\n")[0].split())

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "description": self.description,
                "params": [p.describe() for p in self.params]}

    def parse(self, given: Mapping[str, Any], now: dt.datetime | None = None) -> dict[str, Any]:
        """Validated keyword arguments from ``given`` (text or Python values); InvalidParameter
        for an unknown, missing or wrong one. With ``now``, a missing range is the last 7 days."""
        by_name = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(by_name))
        if unknown:
            raise InvalidParameter(unknown[0], f"unknown parameter for {self.name}; known: {', '.join(by_name)}")
        args: dict[str, Any] = {}
        for p in self.params:
            value = given.get(p.name)
            if value is None or (isinstance(value, str) and not value.strip()):
                if p.kind == "time":
                    continue
                args[p.name] = p.convert(p.default)
            else:
                args[p.name] = p.convert(value)
        if "start" not in args or "end" not in args:
            if now is None:
                missing = "start" if "start" not in args else "end"
                raise InvalidParameter(missing, "is required")
            end = args.get("end") or parse_time("now", now)
            args["end"] = end
            args.setdefault("start", end - DEFAULT_SPAN)
        if args["start"] >= args["end"]:
            raise InvalidParameter("end", "must be after start")
        if "bucket" in args and (args.get("by", "bucket") == "bucket"):
            count = (args["end"] - args["start"]) / BUCKETS[args["bucket"]]
            if count > MAX_BUCKETS:
                raise InvalidParameter("bucket", f"{args['bucket']} buckets over this range make "
                                                 f"{math.ceil(count)} rows (at most {MAX_BUCKETS}): pick a wider "
                                                 "bucket or a shorter range")
        return args

    def run(self, con: duckdb.DuckDBPyConnection, **given: Any) -> pd.DataFrame:
        """Validate the parameters (text or values) and run the query on ``con``."""
        return self.func(con, **self.parse(given))

    def __call__(self, con: duckdb.DuckDBPyConnection, start: Any, end: Any, **params: Any) -> pd.DataFrame:
        return self.run(con, start=start, end=end, **params)

    def __reduce__(self):
        # Queries run in the store's process. A registered one is a module-level name (``named``
        # put it there in place of its function): pickled as that name.
        if "__qualname__" in self.__dict__:
            return self.__qualname__
        return NamedQuery, (self.name, self.title, self.func, self.params)


QUERIES: dict[str, NamedQuery] = {}


def named(title: str, *params: Param) -> Callable[[Callable[..., pd.DataFrame]], NamedQuery]:
    """Register a query under its function's name, with the range, its own parameters and tz."""
    def register(func: Callable[..., pd.DataFrame]) -> NamedQuery:
        query = NamedQuery(func.__name__, title, func, (START, END, *params, TZ))
        functools.update_wrapper(query, func)
        QUERIES[query.name] = query
        return query
    return register


def catalog() -> list[dict[str, Any]]:
    """Every named query with its title, description and parameters (for the API and the console)."""
    return [q.describe() for q in QUERIES.values()]


def run(con: duckdb.DuckDBPyConnection, name: str, **given: Any) -> pd.DataFrame:
    """Run a named query by name (``given`` as text or Python values, validated)."""
    query = QUERIES.get(name)
    if query is None:
        raise KeyError(f"no analytics query named {name!r}; known: {', '.join(QUERIES)}")
    return query.run(con, **given)


# --- SQL building blocks ------------------------------------------------------------------------
# Speed over 10 M rows (a few hundred ms a query on two cores): group keys are integer arithmetic on
# epoch microseconds (time_bucket on a shifted timestamp costs three times more), local time is
# an offset picked from a few pieces (not ICU per row), and counts by outcome come from rows
# pre-aggregated by (key, outcome) rather than one string comparison per row per count.

EPOCH = dt.datetime(1970, 1, 1)
US_HOUR, US_DAY = 3_600_000_000, 86_400_000_000
MONDAY_US = 4 * US_DAY  # 1970-01-05, a Monday: weeks start on Mondays (as ISO weeks do)


@functools.lru_cache(maxsize=256)
def _offsets(tz: str, start: dt.datetime, end: dt.datetime) -> tuple[tuple[dt.datetime, int], ...]:
    """``tz``'s UTC offset (µs) over [start, end) as (from, offset) pieces, from UTC instants:
    one piece per daylight-saving period in the range."""
    zone = zoneinfo.ZoneInfo(tz)

    def offset(second: int) -> int:
        moment = dt.datetime.fromtimestamp(second, UTC).astimezone(zone)
        return int((moment.utcoffset() or dt.timedelta(0)) / dt.timedelta(microseconds=1))

    first, last = int((start - EPOCH).total_seconds()), int((end - EPOCH).total_seconds()) + 1
    pieces = [(start, offset(first))]
    t = first
    while t < last:  # zones change offset at most a few times a year: step by days, then bisect
        step = min(t + 86_400, last)
        if offset(step) != pieces[-1][1]:
            lo, hi = t, step
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset(mid) == pieces[-1][1] else (lo, mid)
            pieces.append((EPOCH + dt.timedelta(seconds=hi), offset(hi)))
            t = hi
        else:
            t = step
    return tuple(pieces)


def _us(moment: dt.datetime) -> int:
    return (moment - EPOCH) // dt.timedelta(microseconds=1)


@dataclasses.dataclass(frozen=True)
class _Range:
    """A query's time range and time zone: the SQL that filters on it and shows local time."""
    start: dt.datetime
    end: dt.datetime
    tz: str = "UTC"

    def within(self, column: str) -> str:
        # On the raw UTC column, so DuckDB's zone maps skip row groups outside the range.
        return f"{column} >= $start AND {column} < $end"

    def _offset(self, column: str) -> str:
        """SQL for the UTC offset (µs) of ``tz`` at a UTC TIMESTAMP in the range ('' for UTC)."""
        if self.tz == "UTC":
            return ""
        pieces = _offsets(self.tz, self.start, self.end)
        if len(pieces) == 1:
            return str(pieces[0][1])
        cases = " ".join(f"WHEN {column} < TIMESTAMP '{until.isoformat()}' THEN {off}"
                         for (_, off), (until, _) in zip(pieces, pieces[1:]))
        return f"CASE {cases} ELSE {pieces[-1][1]} END"

    def local_us(self, column: str) -> str:
        """SQL: a UTC TIMESTAMP column as wall-clock microseconds since 1970 in tz."""
        offset = self._offset(column)
        return f"(epoch_us({column}) + {offset})" if offset else f"epoch_us({column})"

    def _whole_hours(self) -> bool:
        """Offsets in whole hours that change on whole UTC hours: every row of one UTC hour has
        the same local hour, so rows can be grouped by UTC hour and shifted afterwards."""
        pieces = _offsets(self.tz, self.start, self.end) if self.tz != "UTC" else ()
        return all(off % US_HOUR == 0 for _, off in pieces) and all(
            (since.minute, since.second, since.microsecond) == (0, 0, 0) for since, _ in pieces[1:])

    def hour_index(self, column: str) -> str:
        """SQL per row: its hour since 1970, in UTC when ``local_hour`` shifts it later, else local."""
        return f"({'epoch_us(' + column + ')' if self._whole_hours() else self.local_us(column)} // {US_HOUR})"

    def local_hour(self, h: str) -> str:
        """SQL over a grouped ``hour_index`` value: the local hour since 1970."""
        if self.tz == "UTC" or not self._whole_hours():
            return h
        pieces = _offsets(self.tz, self.start, self.end)
        if len(pieces) == 1:
            return f"({h} + {pieces[0][1] // US_HOUR})"
        cases = " ".join(f"WHEN {h} < {_us(until) // US_HOUR} THEN {off // US_HOUR}"
                         for (_, off), (until, _) in zip(pieces, pieces[1:]))
        return f"({h} + CASE {cases} ELSE {pieces[-1][1] // US_HOUR} END)"

    def local(self, column: str) -> str:
        """SQL: a UTC TIMESTAMP expression as a wall-clock TIMESTAMP in tz."""
        offset = self._offset(column)
        return f"({column} + to_microseconds({offset}))" if offset else column

    def to_local(self, moment: dt.datetime) -> dt.datetime:
        if self.tz == "UTC":
            return moment
        return moment.replace(tzinfo=UTC).astimezone(zoneinfo.ZoneInfo(self.tz)).replace(tzinfo=None)

    def binds(self, **more: Any) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, **more}


@dataclasses.dataclass(frozen=True)
class _Dim:
    key: str            # output column name
    expr: str           # SQL of the group key (an integer for time groups)
    grid: str | None    # SQL of every key value, so empty buckets / hours show as zero rows
    show: str = "{k}"   # SQL turning the key {k} into the value shown


def _dim(by: str, time_col: str, r: _Range, bucket: str = "hour", columns: Mapping[str, str] | None = None) -> _Dim:
    local = r.local_us(time_col)
    if by == "bucket":
        width = BUCKETS[bucket] // dt.timedelta(microseconds=1)
        origin = MONDAY_US if bucket == "week" else 0
        first = (_us(r.to_local(r.start)) - origin) // width
        last = -(-(_us(r.to_local(r.end)) - origin) // width)  # ceiling: buckets that start before the end
        return _Dim("bucket", f"({local} - {origin}) // {width}",
                    f"SELECT range AS key FROM range({first}, {last})", f"make_timestamp({{k}} * {width} + {origin})")
    if by == "hour":
        return _Dim("hour", f"({local} // {US_HOUR}) % 24", "SELECT range AS key FROM range(0, 24)")
    if by == "weekday":  # 1970-01-01 was a Thursday (ISO 4)
        return _Dim("weekday", f"(({local} // {US_DAY}) + 3) % 7 + 1", "SELECT range AS key FROM range(1, 8)")
    column = (columns or {})[by]
    return _Dim(column, f"coalesce({column}, '(none)')", None)


def _grouped(dim: _Dim, source: str, aggregates: list[tuple[str, str]], counts: tuple[str, ...],
             beside: tuple[str, list[str]] | None = None) -> str:
    """SELECT key, aggregates (name, SQL over ``src``) FROM source grouped by key. With a grid,
    keys without rows are kept, their ``counts`` as 0 and everything else NULL (the grid joins
    the few aggregated rows, not the millions of source rows). ``beside`` = (SQL giving ``key``
    and more columns, their names): a second aggregate joined on the key."""
    columns = ", ".join(f"{sql} AS {name}" for name, sql in aggregates)
    names = [name for name, _ in aggregates] + (beside[1] if beside else [])
    agg = f"SELECT key, {columns} FROM src GROUP BY key"
    if beside:
        more = ", ".join(f"b.{n}" for n in beside[1])
        agg = f"SELECT a.*, {more} FROM ({agg}) a LEFT JOIN ({beside[0]}) b USING (key)"
    if dim.grid is None:
        return (f"WITH src AS ({source}) SELECT {dim.show.format(k='key')} AS \"{dim.key}\", {', '.join(names)} "
                f"FROM ({agg}) ORDER BY key")
    shown = ", ".join(f"coalesce(agg.{n}, 0) AS {n}" if n in counts else f"agg.{n}" for n in names)
    return (f"WITH src AS ({source}), agg AS ({agg}), grid AS ({dim.grid}) "
            f"SELECT {dim.show.format(k='grid.key')} AS \"{dim.key}\", {shown} "
            "FROM grid LEFT JOIN agg ON agg.key = grid.key ORDER BY grid.key")


def _df(con: duckdb.DuckDBPyConnection, sql: str, binds: Mapping[str, Any]) -> pd.DataFrame:
    used = {k: v for k, v in binds.items() if re.search(rf"\${k}\b", sql)}
    return con.execute(sql, used).df()


def _n(condition: str) -> str:
    """Rows meeting ``condition``: a BIGINT, 0 (never NULL) over no rows."""
    return f"count(*) FILTER ({condition})"


def _sum(condition: str = "true", column: str = "src.n") -> str:
    """Pre-aggregated rows (``n`` each) meeting ``condition``, as a BIGINT, 0 over none."""
    return f"CAST(coalesce(sum({column}) FILTER ({condition}), 0) AS BIGINT)"


def _rate(part: str, whole: str) -> str:
    return f"{part} / nullif({whole}, 0)"


def _is(column: str, *values: str) -> str:
    """``column`` equals one of ``values`` (constants of this module, never user input)."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


LOOKUP_BY = ("bucket", "hour", "weekday", "did", "extension")
LOOKUP_COLUMNS = {"did": "did", "extension": "extension"}
BY_HELP = "Group by time bucket, hour of day, weekday, DID or extension."


# --- lookups ------------------------------------------------------------------------------------

@named("Lookup outcomes and hit rate", Param("by", "choice", "bucket", BY_HELP, LOOKUP_BY), BUCKET)
def lookup_outcomes(con, *, start, end, by="bucket", bucket="hour", tz="UTC") -> pd.DataFrame:
    """Lookups by outcome, with hit rate and known rate, grouped by time bucket, hour of day,
    weekday, DID or extension.

    Columns: the group key (``bucket``, ``hour``, ``weekday``, ``did`` or ``extension``),
    ``lookups``, one count per outcome (``found``, ``multiple``, ``not_found``, ``timeout``,
    ``http_error``, ``bad_response``), ``hit_rate`` = (found + multiple) / lookups and
    ``known_rate`` = hit rate plus timeouts answered late with found or multiple. Time groups
    list every bucket / hour / weekday of the range, empty ones with 0 lookups.
    """
    r = _Range(start, end, tz)
    dim = _dim(by, "started_at", r, bucket, LOOKUP_COLUMNS)
    source = (f"SELECT {dim.expr} AS key, outcome, count(*) AS n FROM lookups WHERE {r.within('started_at')} "
              "GROUP BY ALL")
    aggregates = [("lookups", _sum()), *((o, _sum(f"src.outcome = {o!r}")) for o in OUTCOMES)]
    df = _df(con, _grouped(dim, source, aggregates, ("lookups", *OUTCOMES), _late_hits(dim, r)), r.binds())
    return _with_rates(df).drop(columns="late_hits")


def _late_hits(dim: _Dim, r: _Range) -> tuple[str, list[str]]:
    # Timeouts answered late with a name, per key: a scan of the timeouts only (the filter on
    # outcome is pushed into the scan), cheaper than carrying late_outcome through every row.
    return (f"SELECT {dim.expr} AS key, count(*) AS late_hits FROM lookups WHERE {r.within('started_at')} "
            f"AND outcome = 'timeout' AND late_outcome IN {HIT} GROUP BY key", ["late_hits"])


def _with_rates(df: pd.DataFrame) -> pd.DataFrame:
    """hit_rate and known_rate from the counts (NaN where there were no lookups)."""
    lookups = df["lookups"].where(df["lookups"] > 0)
    hits = df["found"] + df["multiple"]
    df["hit_rate"] = hits / lookups
    df["known_rate"] = (hits + df["late_hits"].fillna(0).astype("int64")) / lookups
    return df


@named("Lookup latency percentiles", Param("by", "choice", "bucket", BY_HELP, LOOKUP_BY), BUCKET,
       Param("cache", "choice", "all", "all lookups (the agent's wait) or miss (only those that asked the CRM).",
             ("all", "miss")))
def lookup_latency(con, *, start, end, by="bucket", bucket="hour", cache="all", tz="UTC") -> pd.DataFrame:
    """Lookup latency p50 / p95 / p99 (exact), mean and max in ms, grouped by time bucket, hour
    of day, weekday, DID or extension.

    Latency is ``latency_ms`` as recorded (timeouts count at their deadline: it is the agent's
    wait). ``cache="miss"`` keeps only lookups that went to the CRM. Time groups list every
    bucket of the range; empty ones have 0 lookups and NULL percentiles.
    """
    r = _Range(start, end, tz)
    dim = _dim(by, "started_at", r, bucket, LOOKUP_COLUMNS)
    only_miss = " AND cache = 'miss'" if cache == "miss" else ""
    source = f"SELECT {dim.expr} AS key, latency_ms FROM lookups WHERE {r.within('started_at')}{only_miss}"
    q = "quantile_cont(src.latency_ms, [0.5, 0.95, 0.99])"
    aggregates = [("lookups", "count(src.latency_ms)"), ("p50_ms", f"{q}[1]"), ("p95_ms", f"{q}[2]"),
                  ("p99_ms", f"{q}[3]"), ("mean_ms", "avg(src.latency_ms)"), ("max_ms", "max(src.latency_ms)")]
    return _df(con, _grouped(dim, source, aggregates, ("lookups",)), r.binds())


@named("Lookup latency distribution",
       Param("bin_ms", "int", 50, "Width of a histogram bin in ms.", low=5, high=10_000))
def latency_histogram(con, *, start, end, bin_ms=50, tz="UTC") -> pd.DataFrame:
    """How many lookups answered within each latency bin (``bin_ms`` wide).

    Columns: ``bin_ms`` (the bin's lower edge), ``lookups``, ``share`` of all lookups in the
    range, ``cumulative_share``. Timeouts sit in the bin of their deadline.
    """
    r = _Range(start, end, tz)
    sql = (f"SELECT floor(latency_ms / $bin) * $bin AS bin_ms, count(*) AS lookups FROM lookups "
           f"WHERE {r.within('started_at')} AND latency_ms IS NOT NULL GROUP BY 1 ORDER BY 1")
    return _histogram(_df(con, sql, r.binds(bin=bin_ms)), "lookups")


def _histogram(df: pd.DataFrame, count: str) -> pd.DataFrame:
    total = df[count].sum()
    df["share"] = df[count] / total if total else np.nan
    df["cumulative_share"] = df[count].cumsum() / total if total else np.nan
    return df


@named("Timeouts and late answers", BUCKET)
def lookup_timeouts(con, *, start, end, bucket="hour", tz="UTC") -> pd.DataFrame:
    """Timeouts per time bucket and what the CRM answered after the deadline.

    Columns: ``bucket``, ``lookups``, ``timeouts``, ``timeout_share``, ``late_found`` (late
    answer found or multiple), ``late_not_found``, ``late_failed`` (the late answer was an
    error, or the CRM never answered within the late timeout), ``unrecorded`` (no late answer
    recorded, e.g. the hub stopped), ``late_p50_ms`` / ``late_p95_ms`` (the CRM answer time of
    the timeouts it answered with found, multiple or not found).
    """
    r = _Range(start, end, tz)
    dim = _dim("bucket", "started_at", r, bucket)
    source = (f"SELECT {dim.expr} AS key, outcome = 'timeout' AS timeout, late_outcome, count(*) AS n "
              f"FROM lookups WHERE {r.within('started_at')} GROUP BY ALL")
    # Late answers are few: their percentiles come from a scan of their own (a quantile over a
    # mostly-NULL column of every lookup costs several times more).
    late = (f"SELECT {dim.expr} AS key, quantile_cont(late_latency_ms, [0.5, 0.95])[1] AS late_p50_ms, "
            "quantile_cont(late_latency_ms, [0.5, 0.95])[2] AS late_p95_ms FROM lookups "
            f"WHERE {r.within('started_at')} AND outcome = 'timeout' "
            "AND late_outcome IN ('found', 'multiple', 'not_found') GROUP BY key")
    t = "src.timeout"
    aggregates = [
        ("lookups", _sum()), ("timeouts", _sum(t)), ("timeout_share", f"{_sum(t)} / {_sum()}"),
        ("late_found", _sum(f"{t} AND src.late_outcome IN {HIT}")),
        ("late_not_found", _sum(f"{t} AND " + _is("src.late_outcome", "not_found"))),
        ("late_failed", _sum(f"{t} AND " + _is("src.late_outcome", "timeout", "http_error", "bad_response"))),
        ("unrecorded", _sum(f"{t} AND src.late_outcome IS NULL"))]
    counts = ("lookups", "timeouts", "late_found", "late_not_found", "late_failed", "unrecorded")
    return _df(con, _grouped(dim, source, aggregates, counts, (late, ["late_p50_ms", "late_p95_ms"])), r.binds())


@named("Lookup error kinds")
def lookup_errors(con, *, start, end, tz="UTC") -> pd.DataFrame:
    """Timeouts and errors by kind: outcome plus the reason up to its first parenthesis.

    Columns: ``outcome`` (timeout, http_error, bad_response), ``kind``, ``lookups``, ``share``
    of all lookups in the range, ``first_at`` / ``last_at`` (in ``tz``). Most frequent first.
    """
    r = _Range(start, end, tz)
    sql = (f"WITH e AS (SELECT outcome, error, min(started_at) AS first_at, max(started_at) AS last_at, "
           f"count(*) AS n FROM lookups WHERE {r.within('started_at')} "
           f"AND (outcome = 'timeout' OR outcome IN {ERRORS}) GROUP BY outcome, error) "
           "SELECT outcome, regexp_replace(coalesce(error, '(no reason recorded)'), '\\s*\\(.*$', '') AS kind, "
           "CAST(sum(n) AS BIGINT) AS lookups, sum(n) / (SELECT count(*) FROM lookups WHERE "
           f"{r.within('started_at')}) AS share, "
           f"{r.local('min(first_at)')} AS first_at, {r.local('max(last_at)')} AS last_at "
           "FROM e GROUP BY outcome, kind ORDER BY lookups DESC, outcome, kind")
    return _df(con, sql, r.binds())


@named("Numbers whose lookups fail most",
       Param("limit", "int", 20, "How many numbers to list.", low=1, high=1000),
       Param("min_lookups", "int", 2, "Only numbers looked up at least this often.", low=1, high=1_000_000))
def failing_numbers(con, *, start, end, limit=20, min_lookups=2, tz="UTC") -> pd.DataFrame:
    """Caller numbers whose lookups most often gave the agent no name: candidates for cleaning
    the CRM (missing records, duplicates, records that break the answer).

    A lookup fails when it is not a hit (not found, timeout or error). Columns: ``number``
    (E.164 when valid, else as sent), ``lookups``, ``failed``, ``fail_rate``, ``found``,
    ``multiple`` (duplicates in the CRM), ``not_found``, ``timeouts``, ``errors``, ``last_at``.
    Ordered by failed lookups, then lookups, then number.
    """
    r = _Range(start, end, tz)
    failed = _sum(f"src.outcome NOT IN {HIT}")
    sql = ("WITH src AS (SELECT coalesce(phone_e164, phone) AS number, outcome, count(*) AS n, "
           f"max(started_at) AS last_at FROM lookups WHERE {r.within('started_at')} "
           "AND coalesce(phone_e164, phone) IS NOT NULL GROUP BY ALL) "
           f"SELECT number, {_sum()} AS lookups, {failed} AS failed, {failed} / {_sum()} AS fail_rate, "
           f"{_sum(_is('src.outcome', 'found'))} AS found, {_sum(_is('src.outcome', 'multiple'))} AS multiple, "
           f"{_sum(_is('src.outcome', 'not_found'))} AS not_found, {_sum(_is('src.outcome', 'timeout'))} AS timeouts, "
           f"{_sum(f'src.outcome IN {ERRORS}')} AS errors, {r.local('max(src.last_at)')} AS last_at "
           f"FROM src GROUP BY number HAVING {_sum()} >= $min_lookups AND {failed} > 0 "
           "ORDER BY failed DESC, lookups DESC, number LIMIT $limit")
    return _df(con, sql, r.binds(limit=limit, min_lookups=min_lookups))


@named("Deadline what-if",
       Param("deadlines", "ints", "500,1000,1500,2000,3000,5000", "Deadlines to try, in ms, comma-separated.",
             low=1, high=60_000))
def deadline_what_if(con, *, start, end, deadlines=(500, 1000, 1500, 2000, 3000, 5000), tz="UTC") -> pd.DataFrame:
    """What each deadline setting would have given on the recorded CRM answer times.

    A lookup is in time under deadline D when the CRM answered within D (its answer time: the
    late latency for a timeout answered later, else the recorded latency); a timeout the CRM
    never answered is late under every D. Columns: ``deadline_ms``, ``lookups``, ``in_time``,
    ``provisional_share`` (lookups that would have needed the provisional bubble),
    ``hit_rate`` (hits answered in time / lookups), ``mean_wait_ms`` (the agent's mean wait:
    min(answer time, D)), ``current`` (D is the deadline most lookups were recorded with).
    Answers are replayed as recorded: a different deadline does not change what the CRM said.
    """
    r = _Range(start, end, tz)
    deadlines = [int(d) for d in deadlines]  # validated whole numbers, sorted: safe to write into SQL
    # One pass: each lookup falls in the band of the first deadline it meets (or none); the
    # figures for deadline i are sums over bands 0..i.
    band = " ".join(f"WHEN answer_ms <= {d} THEN {i}" for i, d in enumerate(deadlines))
    sql = ("WITH l AS (SELECT "
           "CASE WHEN outcome <> 'timeout' THEN latency_ms WHEN late_outcome <> 'timeout' THEN late_latency_ms "
           "END AS answer_ms, CASE WHEN outcome = 'timeout' THEN late_outcome ELSE outcome END AS answer "
           f"FROM lookups WHERE {r.within('started_at')}) "
           f"SELECT CASE {band} ELSE {len(deadlines)} END AS band, count(*) AS lookups, "
           f"{_n(f'answer IN {HIT}')} AS hits, sum(answer_ms) AS answer_ms FROM l GROUP BY band")
    bands = _df(con, sql, r.binds()).set_index("band").reindex(range(len(deadlines) + 1), fill_value=0)
    current = con.execute(f"SELECT mode(deadline_ms) FROM lookups WHERE {r.within('started_at')}",
                          r.binds()).fetchone()[0]
    lookups = int(bands["lookups"].sum())
    in_time = bands["lookups"].cumsum().to_numpy()[:-1]
    hits = bands["hits"].cumsum().to_numpy()[:-1]
    answered_ms = bands["answer_ms"].fillna(0).cumsum().to_numpy()[:-1]
    d = np.array(deadlines, dtype="int64")
    nothing = np.full(len(d), np.nan)
    return pd.DataFrame({
        "deadline_ms": d, "lookups": np.full(len(d), lookups, dtype="int64"), "in_time": in_time.astype("int64"),
        "provisional_share": 1 - in_time / lookups if lookups else nothing,
        "hit_rate": hits / lookups if lookups else nothing,
        "mean_wait_ms": (answered_ms + d * (lookups - in_time)) / lookups if lookups else nothing,
        "current": d == (current if current is not None else -1)})


# --- pops ---------------------------------------------------------------------------------------

POP_STAGES = ("sent", "shown", "clicked", "closed")
SENT = "sessions > 0"
# A pop needed the provisional bubble when its first version went out as 'pending': it is
# still pending (never replaced) or it was replaced (updated_at set).
PROVISIONAL = "(status = 'pending' OR updated_at IS NOT NULL)"


def _funnel(row: pd.Series, stages: tuple[str, ...], count: str, share: str) -> pd.DataFrame:
    """One row per stage: its count and its share of the first stage."""
    first = int(row[stages[0]])
    return pd.DataFrame({"stage": pd.array(stages, dtype="str"),
                         count: np.array([int(row[s]) for s in stages], dtype="int64"),
                         share: [int(row[s]) / first if first else np.nan for s in stages]})


@named("Pop funnel")
def pop_funnel(con, *, start, end, tz="UTC") -> pd.DataFrame:
    """Pops sent, shown, clicked and closed.

    One row per stage (``stage``, ``pops``, ``share_of_sent``). Sent = reached at least one
    browser (``sessions > 0``); shown / clicked / closed = sent pops with that acknowledgement.
    """
    r = _Range(start, end, tz)
    sql = ("SELECT count(*) AS sent, count(shown_at) AS shown, count(clicked_at) AS clicked, "
           f"count(closed_at) AS closed FROM pops WHERE {r.within('sent_at')} AND {SENT}")
    return _funnel(_df(con, sql, r.binds()).iloc[0], POP_STAGES, "pops", "share_of_sent")


@named("Pops and click-through by agent")
def pops_by_agent(con, *, start, end, tz="UTC") -> pd.DataFrame:
    """Per agent: pops recorded, unreached, sent, shown, clicked, closed, show rate,
    click-through (clicked / shown), provisional pops (sent pops that first went out as
    'pending') and the median seconds from sent to click.
    """
    r = _Range(start, end, tz)
    sql = (f"WITH everyone AS (SELECT agent_id, count(*) AS recorded FROM pops WHERE {r.within('sent_at')} "
           "GROUP BY agent_id), "
           "sent AS (SELECT agent_id, count(*) AS sent, count(shown_at) AS shown, count(clicked_at) AS clicked, "
           f"count(closed_at) AS closed, {_n(PROVISIONAL)} AS provisional FROM pops "
           f"WHERE {r.within('sent_at')} AND {SENT} GROUP BY agent_id), "
           "clicks AS (SELECT agent_id, median(epoch(clicked_at - sent_at)) AS median_s_to_click FROM pops "
           f"WHERE {r.within('sent_at')} AND {SENT} AND clicked_at IS NOT NULL GROUP BY agent_id) "
           "SELECT agent_id, recorded, recorded - coalesce(sent, 0) AS unreached, "
           + ", ".join(f"coalesce({c}, 0) AS {c}" for c in ("sent", "shown", "clicked", "closed")) + ", "
           f"{_rate('shown', 'sent')} AS show_rate, {_rate('clicked', 'shown')} AS click_through, "
           "coalesce(provisional, 0) AS provisional, median_s_to_click "
           "FROM everyone LEFT JOIN sent USING (agent_id) LEFT JOIN clicks USING (agent_id) "
           "ORDER BY sent DESC, agent_id")
    return _df(con, sql, r.binds())


@named("Pops that needed the provisional bubble", BUCKET)
def provisional_pops(con, *, start, end, bucket="hour", tz="UTC") -> pd.DataFrame:
    """Share of sent pops that needed the provisional bubble, per time bucket: the CRM missed
    the deadline (lookup outcome ``timeout``), so the agent saw the number first and the name
    later.

    Counted on the pop itself (its first version went out as ``pending``: it is still pending
    or was replaced), which is the call's timed-out lookup except for a ring-group extension
    that started ringing after the late answer had come. Columns: ``bucket``, ``pops_sent``,
    ``provisional``, ``provisional_share``, ``replaced`` (provisional pops updated with the
    CRM's late answer before the ring ended).
    """
    r = _Range(start, end, tz)
    dim = _dim("bucket", "sent_at", r, bucket)
    source = (f"SELECT {dim.expr} AS key, {_n(PROVISIONAL)} AS provisional, count(updated_at) AS replaced, "
              f"count(*) AS n FROM pops WHERE {r.within('sent_at')} AND {SENT} GROUP BY key")
    aggregates = [("pops_sent", _sum()), ("provisional", _sum("true", "src.provisional")),
                  ("provisional_share", f"{_sum('true', 'src.provisional')} / {_sum()}"),
                  ("replaced", _sum("true", "src.replaced"))]
    return _df(con, _grouped(dim, source, aggregates, ("pops_sent", "provisional", "replaced")), r.binds())


# --- click-to-call ------------------------------------------------------------------------------

DIAL_BY = ("agent", "source", "leg_a_kind", "bucket", "hour", "weekday")
DIAL_COLUMNS = {"agent": "agent_id", "source": "source", "leg_a_kind": "leg_a_kind"}
DIAL_STAGES = ("requested", "leg_a_answered", "bridged")
REQUESTED = "outcome IS DISTINCT FROM 'refused'"


@named("Click-to-call funnel")
def dial_funnel(con, *, start, end, tz="UTC") -> pd.DataFrame:
    """Dials requested, leg A answered and bridged (refused dials are not in the funnel: see
    ``dial_failures``).

    One row per stage (``stage``, ``dials``, ``share_of_requested``).
    """
    r = _Range(start, end, tz)
    sql = ("SELECT count(*) AS requested, count(leg_a_answered_at) AS leg_a_answered, "
           f"{_n(_is('outcome', 'bridged'))} AS bridged FROM dials WHERE {r.within('requested_at')} AND {REQUESTED}")
    return _funnel(_df(con, sql, r.binds()).iloc[0], DIAL_STAGES, "dials", "share_of_requested")


@named("Click-to-call failures and refusals by reason")
def dial_failures(con, *, start, end, tz="UTC") -> pd.DataFrame:
    """Failed dials by reason, and refused dials by reason, counted apart.

    Columns: ``outcome`` (failed or refused), ``reason`` (the recorded code), ``dials``,
    ``share`` (of the dials with that outcome). Failed first, most frequent first.
    """
    r = _Range(start, end, tz)
    sql = ("SELECT outcome, coalesce(error, '(no reason recorded)') AS reason, count(*) AS dials, "
           "count(*) / sum(count(*)) OVER (PARTITION BY outcome) AS share FROM dials "
           f"WHERE {r.within('requested_at')} AND outcome IN ('failed', 'refused') "
           "GROUP BY outcome, reason ORDER BY outcome, dials DESC, reason")
    return _df(con, sql, r.binds()).astype({"dials": "int64", "share": "float64"})


@named("Click-to-call by agent, source or time",
       Param("by", "choice", "agent", "Group by agent, source, leg A kind, time bucket, hour of day or weekday.",
             DIAL_BY),
       BUCKET)
def dials_by(con, *, start, end, by="agent", bucket="hour", tz="UTC") -> pd.DataFrame:
    """The click-to-call funnel and time to bridge per agent, source (extension / console /
    api), leg A kind, time bucket, hour of day or weekday.

    Columns: the key (``agent_id``, ``source``, ``leg_a_kind``, ``bucket``, ``hour`` or
    ``weekday``), ``attempts`` (all rows), ``refused``, ``requested``, ``leg_a_answered``,
    ``bridged``, ``failed``, ``in_progress``, ``answer_rate``, ``bridge_rate``,
    ``ttb_p50_s`` / ``ttb_p95_s`` (time to bridge, exact percentiles).
    """
    r = _Range(start, end, tz)
    dim = _dim(by, "requested_at", r, bucket, DIAL_COLUMNS)
    source = (f"SELECT {dim.expr} AS key, dial_id, outcome, {REQUESTED} AS requested, "
              "leg_a_answered_at IS NOT NULL AS answered, "
              f"CASE WHEN outcome = 'bridged' THEN epoch(bridged_at - requested_at) END AS ttb "
              f"FROM dials WHERE {r.within('requested_at')}")
    req = _n("src.requested")
    answered = _n("src.requested AND src.answered")
    bridged = _n("src.outcome = 'bridged'")
    q = "quantile_cont(src.ttb, [0.5, 0.95])"
    aggregates = [
        ("attempts", "count(*)"), ("refused", _n(_is("src.outcome", "refused"))), ("requested", req),
        ("leg_a_answered", answered), ("bridged", bridged), ("failed", _n(_is("src.outcome", "failed"))),
        ("in_progress", _n("src.outcome IS NULL")), ("answer_rate", _rate(answered, req)),
        ("bridge_rate", _rate(bridged, req)), ("ttb_p50_s", f"{q}[1]"), ("ttb_p95_s", f"{q}[2]")]
    counts = ("attempts", "refused", "requested", "leg_a_answered", "bridged", "failed", "in_progress")
    return _df(con, _grouped(dim, source, aggregates, counts), r.binds())


@named("Time to bridge distribution",
       Param("bin_s", "int", 1, "Width of a histogram bin in seconds.", low=1, high=600))
def time_to_bridge(con, *, start, end, bin_s=1, tz="UTC") -> pd.DataFrame:
    """How long bridged dials took from request to bridge, as a histogram.

    Columns: ``bin_s`` (lower edge, seconds), ``dials``, ``share``, ``cumulative_share``.
    """
    r = _Range(start, end, tz)
    sql = (f"SELECT floor(epoch(bridged_at - requested_at) / $bin) * $bin AS bin_s, count(*) AS dials "
           f"FROM dials WHERE {r.within('requested_at')} AND outcome = 'bridged' AND bridged_at IS NOT NULL "
           "GROUP BY 1 ORDER BY 1")
    return _histogram(_df(con, sql, r.binds(bin=bin_s)), "dials")


# --- across tables ------------------------------------------------------------------------------

@named("Busiest hours (hour of day x weekday)")
def busiest_hours(con, *, start, end, tz="UTC") -> pd.DataFrame:
    """Calls, lookups, hit rate and dials for each weekday × hour of day in ``tz``.

    All 168 cells, empty ones as 0 (hit rate NULL). Columns: ``weekday`` (1 = Monday), ``hour``,
    ``calls`` (calls that started), ``lookups``, ``hit_rate``, ``dials`` (attempts, refused
    included). Latency by hour of day is ``lookup_latency`` with ``by="hour"``.
    """
    r = _Range(start, end, tz)

    def cell(h: str) -> str:  # local hours since 1970 -> weekday * 100 + hour (1970-01-01 was a Thursday)
        return f"((({h}) // 24 + 3) % 7 + 1) * 100 + ({h}) % 24"
    # Rows are counted per hour since 1970 (a few thousand groups), then the groups are put in
    # their weekday x hour cell: far cheaper than working out each row's cell.
    per_hour = {name: f"SELECT {r.hour_index(col)} AS h, {more}count(*) AS n FROM {table} "
                      f"WHERE {r.within(col)} GROUP BY ALL"
                for name, table, col, more in (("c", "calls", "started_at", ""), ("d", "dials", "requested_at", ""),
                                               ("l", "lookups", "started_at", "outcome, "))}
    sql = ("WITH grid AS (SELECT d.range * 100 + h.range AS cell FROM range(1, 8) d, range(0, 24) h), "
           + ", ".join(f"{name}h AS ({q})" for name, q in per_hour.items()) + ", "
           f"c AS (SELECT {cell(r.local_hour('h'))} AS cell, sum(n) AS calls FROM ch GROUP BY cell), "
           f"l AS (SELECT {cell(r.local_hour('h'))} AS cell, sum(n) AS lookups, "
           f"sum(n) FILTER (outcome IN {HIT}) AS hits FROM lh GROUP BY cell), "
           f"d AS (SELECT {cell(r.local_hour('h'))} AS cell, sum(n) AS dials FROM dh GROUP BY cell) "
           "SELECT grid.cell // 100 AS weekday, grid.cell % 100 AS hour, "
           "CAST(coalesce(c.calls, 0) AS BIGINT) AS calls, CAST(coalesce(l.lookups, 0) AS BIGINT) AS lookups, "
           "coalesce(l.hits, 0) / l.lookups AS hit_rate, "
           "CAST(coalesce(d.dials, 0) AS BIGINT) AS dials FROM grid "
           "LEFT JOIN c USING (cell) LEFT JOIN l USING (cell) LEFT JOIN d USING (cell) ORDER BY grid.cell")
    return _df(con, sql, r.binds())


@named("Key figures (console tiles)")
def kpis(con, *, start, end, tz="UTC") -> pd.DataFrame:
    """One row of key figures for the range, each as defined above.

    ``calls``, ``lookups``, ``hit_rate``, ``known_rate``, ``p50_ms`` / ``p95_ms`` / ``p99_ms``,
    ``timeout_share``, ``error_share``, ``pops_sent``, ``pops_unreached``, ``show_rate``,
    ``click_through``, ``provisional_share``, ``dials_requested``, ``dials_refused``,
    ``dials_bridged``, ``bridge_rate``, ``ttb_p50_s``.
    """
    r = _Range(start, end, tz)
    sql = (
        f"WITH c AS (SELECT count(*) AS calls FROM calls WHERE {r.within('started_at')}), "
        f"src AS (SELECT outcome, count(*) AS n FROM lookups WHERE {r.within('started_at')} GROUP BY ALL), "
        f"late AS (SELECT count(*) AS late_hits FROM lookups WHERE {r.within('started_at')} "
        f"AND outcome = 'timeout' AND late_outcome IN {HIT}), "
        f"l AS (SELECT {_sum()} AS lookups, {_sum(f'src.outcome IN {HIT}')} AS hits, "
        f"{_sum(f'src.outcome IN {HIT}')} + (SELECT late_hits FROM late) AS known, "
        f"{_sum(_is('src.outcome', 'timeout'))} AS timeouts, {_sum(f'src.outcome IN {ERRORS}')} AS errors FROM src), "
        "q AS (SELECT quantile_cont(latency_ms, [0.5, 0.95, 0.99]) AS q FROM lookups "
        f"WHERE {r.within('started_at')}), "
        f"p AS (SELECT count(*) AS recorded, {_n(SENT)} AS sent, count(shown_at) FILTER ({SENT}) AS shown, "
        f"count(clicked_at) FILTER ({SENT}) AS clicked, {_n(f'{SENT} AND {PROVISIONAL}')} AS provisional "
        f"FROM pops WHERE {r.within('sent_at')}), "
        f"dsrc AS (SELECT outcome, count(*) AS n FROM dials WHERE {r.within('requested_at')} GROUP BY ALL), "
        f"d AS (SELECT {_sum(REQUESTED, 'n')} AS requested, {_sum(_is('outcome', 'refused'), 'n')} AS refused, "
        f"{_sum(_is('outcome', 'bridged'), 'n')} AS bridged, (SELECT median(epoch(bridged_at - requested_at)) "
        f"FROM dials WHERE {r.within('requested_at')} AND outcome = 'bridged') AS ttb_p50_s FROM dsrc) "
        f"SELECT c.calls, l.lookups, {_rate('l.hits', 'l.lookups')} AS hit_rate, "
        f"{_rate('l.known', 'l.lookups')} AS known_rate, q.q[1] AS p50_ms, q.q[2] AS p95_ms, q.q[3] AS p99_ms, "
        f"{_rate('l.timeouts', 'l.lookups')} AS timeout_share, {_rate('l.errors', 'l.lookups')} AS error_share, "
        "p.sent AS pops_sent, p.recorded - p.sent AS pops_unreached, "
        f"{_rate('p.shown', 'p.sent')} AS show_rate, {_rate('p.clicked', 'p.shown')} AS click_through, "
        f"{_rate('p.provisional', 'p.sent')} AS provisional_share, "
        "d.requested AS dials_requested, d.refused AS dials_refused, d.bridged AS dials_bridged, "
        f"{_rate('d.bridged', 'd.requested')} AS bridge_rate, d.ttb_p50_s FROM c, l, q, p, d")
    return _df(con, sql, r.binds())


COVERED = (("calls", "started_at"), ("lookups", "started_at"), ("pops", "sent_at"), ("dials", "requested_at"),
           ("events", "received_at"), ("rejects", "logged_at"))


@named("Rows and time span per table")
def coverage(con, *, start, end, tz="UTC") -> pd.DataFrame:
    """For each table, the rows in the range and the first and last of them (in ``tz``): what
    data there is to look at."""
    r = _Range(start, end, tz)
    parts = [f"SELECT '{table}' AS \"table\", count(*) AS \"rows\", {r.local(f'min({col})')} AS first_at, "
             f"{r.local(f'max({col})')} AS last_at FROM {table} WHERE {r.within(col)}" for table, col in COVERED]
    return _df(con, " UNION ALL ".join(parts), r.binds())


# --- answers as JSON (the hub's route and the reader's way back) --------------------------------

# An agent's own rows, table by table: their calls are those they were popped for or answered.
_OWN_CALLS = "SELECT call_id FROM {db}.main.pops WHERE agent_id = {a} UNION SELECT call_id FROM {db}.main.calls " \
             "WHERE agent_id = {a}"
AGENT_SCOPE = {
    "pops": "agent_id = {a}", "dials": "agent_id = {a}", "calls": "call_id IN (" + _OWN_CALLS + ")",
    "lookups": "call_id IN (" + _OWN_CALLS + ")", "events": "call_id IN (" + _OWN_CALLS + ")",
    "rejects": "false",
}


def scope_to_agent(con: duckdb.DuckDBPyConnection, agent_id: str) -> None:
    """Make every query on this cursor see only one agent's rows: temporary views of the same
    names shadow the tables for this cursor alone, so each named query stays one SQL text."""
    db = '"' + con.execute("SELECT current_database()").fetchone()[0].replace('"', '""') + '"'
    a = "'" + agent_id.replace("'", "''") + "'"
    for table, where in AGENT_SCOPE.items():
        con.execute(f"CREATE TEMP VIEW {table} AS SELECT * FROM {db}.main.{table} WHERE "
                    + where.format(db=db, a=a))


def answer(con: duckdb.DuckDBPyConnection, query: NamedQuery, args: Mapping[str, Any],
           timeout_s: float = 30.0, agent_id: str | None = None) -> bytes:
    """Run a validated query on a cursor of its own and return its JSON answer, encoded: the hub
    has the store run this in its process, so neither the query nor the encoding holds the hub's
    GIL. A query running past ``timeout_s`` is interrupted (``duckdb.InterruptException``).
    With ``agent_id``, the query sees only that agent's calls, pops and dials."""
    if agent_id is not None:
        scope_to_agent(con, agent_id)
    timer = threading.Timer(timeout_s, con.interrupt)
    timer.start()
    try:
        frame = query.func(con, **args)
    finally:
        timer.cancel()
    body = {"name": query.name, "params": {k: _plain(v) for k, v in args.items()}, **to_payload(frame)}
    return json.dumps(body, ensure_ascii=False, allow_nan=False).encode()


def to_payload(df: pd.DataFrame) -> dict[str, Any]:
    """A DataFrame as ``{"columns": [{"name", "dtype"}], "records": [...]}`` that
    ``from_payload`` turns back into an equal DataFrame (floats exact, NaN/NaT as null, times
    as ISO 8601 without zone)."""
    columns = [{"name": str(c), "dtype": str(df[c].dtype)} for c in df.columns]
    values = [_plain_column(df[c]) for c in df.columns]  # column by column: 1 M values a second
    names = [c["name"] for c in columns]
    return {"columns": columns, "records": [dict(zip(names, row)) for row in zip(*values)]}


def _plain_column(column: pd.Series) -> list[Any]:
    if column.dtype.kind in "iub":
        return column.tolist()  # Python ints and bools
    if column.dtype.kind == "f":
        return [v if math.isfinite(v) else None for v in column.tolist()]
    if column.dtype.kind == "M":
        return [None if v is pd.NaT else v.isoformat() for v in column]
    return [_plain(v) for v in column.tolist()]


def _plain(value: Any) -> Any:
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    return value


def from_payload(payload: Mapping[str, Any]) -> pd.DataFrame:
    columns = payload["columns"]
    names = [c["name"] for c in columns]
    df = pd.DataFrame.from_records([[r.get(n) for n in names] for r in payload["records"]], columns=names)
    for c in columns:
        name, dtype = c["name"], c["dtype"]
        if dtype.startswith("datetime64"):
            df[name] = pd.to_datetime(df[name]).astype(dtype)
        elif dtype in ("int64", "int32", "bool") and df[name].notna().all():
            df[name] = df[name].astype(dtype)
        elif dtype in ("float64", "float32"):
            df[name] = df[name].astype(dtype)
        elif dtype == "str":
            df[name] = df[name].astype("str")
    return df
