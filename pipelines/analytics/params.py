"""Named queries and their parameters: how text (an HTTP query string) or Python values become
validated arguments, the ``QUERIES`` registry, and ``run`` by name."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import zoneinfo
from typing import Any, Callable, Mapping

import duckdb
import pandas as pd

UTC = dt.timezone.utc
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


@functools.cache
def _zones() -> frozenset[str]:
    # "localtime" is a file of the system's zone database, not a zone DuckDB knows.
    return frozenset(zoneinfo.available_timezones() - {"localtime"}) | {"UTC"}


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
