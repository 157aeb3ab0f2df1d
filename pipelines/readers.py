"""Reading the analytics from outside the hub: one function, whichever way the data is reachable.

The hub holds its DuckDB file open read-write, and while it does no other process may open the
file, not even read-only. So a notebook (or a script) reads:
- **through the hub** (``GET /api/analytics/{name}``) while the hub runs — the hub runs the same
  named query on its own connection;
- **from the file, read-only**, when the hub is stopped (a hub that was killed rather than
  stopped leaves DuckDB's write-ahead log beside the file: a read-only open reads it too).

``open_analytics(db_path=..., hub_url=..., token=...)`` picks the way (the hub if it answers,
else the file) and keeps picking per query: if the hub stops between two cells the next query
reads the file, and if the hub starts (and takes the file) the next query goes through it. The
file is opened per query and closed at once, so a notebook left open never keeps the hub from
starting. Either way the answer is the DataFrame ``pipelines.analytics`` returns.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pandas as pd

from . import analytics


class AnalyticsUnavailable(RuntimeError):
    """Neither way works; the message says what to start or pass."""


class HubHoldsFile(AnalyticsUnavailable):
    """The database file is open in a running hub, and the hub cannot be asked."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _as_text(value: Any) -> str:
    if isinstance(value, (dt.datetime, dt.date, pd.Timestamp)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _is_locked(error: Exception) -> bool:
    # Another process: IOException "Could not set lock on file"; this process (a hub running in
    # a thread, as in tests): ConnectionException about a different configuration.
    return isinstance(error, duckdb.ConnectionException) or (
        isinstance(error, duckdb.IOException) and "lock" in str(error).lower())


class Analytics:
    """Named analytics queries over a hub or a database file (see ``open_analytics``)."""

    def __init__(self, mode: str, *, db_path: str | Path | None, hub_url: str | None, token: str | None,
                 timeout: float = 60.0):
        self.mode = mode  # "hub" or "file": the way the last query went
        self.db_path = Path(db_path) if db_path else None
        self.hub_url = hub_url.rstrip("/") if hub_url else None
        self.token = token
        self._http = httpx.Client(timeout=timeout)

    def __repr__(self) -> str:
        where = self.hub_url if self.mode == "hub" else self.db_path
        return f"<Analytics via {self.mode}: {where}>"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Analytics":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- what there is
    def queries(self) -> pd.DataFrame:
        """The named queries: name, title, description, parameters."""
        return pd.DataFrame(analytics.catalog())

    def query(self, name: str, start: Any = None, end: Any = None, **params: Any) -> pd.DataFrame:
        """Run a named query. ``start``/``end``: ISO text, dates or datetimes (naive = UTC); both
        omitted = the last 7 days. Other parameters as in ``analytics.QUERIES[name]``."""
        if name not in analytics.QUERIES:
            raise KeyError(f"no analytics query named {name!r}; known: {', '.join(analytics.QUERIES)}")
        given = {k: v for k, v in {"start": start, "end": end, **params}.items() if v is not None}
        if self.mode == "hub":
            try:
                return self._from_hub(name, given)
            except httpx.TransportError:
                if not self._file_usable():
                    raise AnalyticsUnavailable(f"the hub at {self.hub_url} stopped answering and there is "
                                               "no database file to read instead") from None
                self.mode = "file"
        try:
            return self._from_file(name, given)
        except duckdb.Error as e:
            if not _is_locked(e):
                raise
            if not self._hub_usable():
                raise HubHoldsFile(f"{self.db_path} is held by a running hub; pass hub_url= and token= to read "
                                   "through it") from None
            self.mode = "hub"
            return self._from_hub(name, given)

    def data_range(self) -> tuple[dt.datetime, dt.datetime] | None:
        """First and last recorded call or lookup (UTC), or None for an empty database."""
        cov = self.query("coverage", start="2000-01-01", end="2100-01-01")
        cov = cov[cov["table"].isin(["calls", "lookups", "dials"]) & (cov["rows"] > 0)]
        if cov.empty:
            return None
        return cov["first_at"].min().to_pydatetime(), cov["last_at"].max().to_pydatetime()

    def last_days(self, days: float, end: Any = None) -> tuple[dt.datetime, dt.datetime]:
        """The range ``[end - days, end)`` (UTC). Without ``end``: midnight after the last
        recorded row, so a history or a live hub both show their latest days; now if empty."""
        if end:
            stop = analytics.parse_time("end", end)
        else:
            span = self.data_range()
            stop = pd.Timestamp(span[1]).floor("D").to_pydatetime() + dt.timedelta(days=1) if span else _now()
        return stop - dt.timedelta(days=days), stop

    # --- the two ways
    def _from_hub(self, name: str, given: dict[str, Any]) -> pd.DataFrame:
        if not self.token:
            raise AnalyticsUnavailable("reading through the hub needs an agent token (token=...)")
        r = self._http.get(f"{self.hub_url}/api/analytics/{name}", params={k: _as_text(v) for k, v in given.items()},
                           headers={"Authorization": f"Bearer {self.token}"})
        if r.status_code == 422:  # the same validation as the file path: "<parameter>: <why>"
            parameter, _, why = str(r.json().get("message", r.text)).partition(": ")
            raise analytics.InvalidParameter(parameter, why)
        if r.status_code >= 400:
            raise AnalyticsUnavailable(f"the hub answered {r.status_code}: {r.text[:300]}")
        return analytics.from_payload(r.json())

    def _from_file(self, name: str, given: dict[str, Any]) -> pd.DataFrame:
        if self.db_path is None:
            raise AnalyticsUnavailable("no database file given (db_path=...) and the hub is not reachable")
        if not self.db_path.is_file():
            raise FileNotFoundError(f"no database at {self.db_path} (callpop seed creates one)")
        query = analytics.QUERIES[name]
        args = query.parse(given, now=_now())
        con = duckdb.connect(str(self.db_path), read_only=True)
        try:
            return query.func(con, **args)
        finally:
            con.close()

    def _hub_usable(self) -> bool:
        return bool(self.token) and self._hub_answers()

    def _hub_answers(self) -> bool:
        if not self.hub_url:
            return False
        try:
            return self._http.get(f"{self.hub_url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _file_usable(self) -> bool:
        return bool(self.db_path and self.db_path.is_file())


def open_analytics(db_path: str | Path | None = None, hub_url: str | None = None, token: str | None = None, *,
                   timeout: float = 60.0) -> Analytics:
    """Named analytics over the hub while it runs, over the file when it is stopped.

    ``db_path``: the hub's database (default ``CALLPOP_DB_PATH``); ``hub_url``: the hub (default
    ``CALLPOP_HUB_URL``); ``token``: an agent token for the hub. The hub is used when it answers
    ``/healthz``; otherwise the file is opened read-only. A file held by a running hub that was
    not given (or does not answer) raises ``HubHoldsFile`` with what to pass."""
    db_path = db_path if db_path is not None else os.environ.get("CALLPOP_DB_PATH") or None
    hub_url = hub_url if hub_url is not None else os.environ.get("CALLPOP_HUB_URL") or None
    reader = Analytics("file", db_path=db_path, hub_url=hub_url, token=token, timeout=timeout)
    if reader._hub_usable():
        reader.mode = "hub"
        return reader
    if hub_url and not token and reader._hub_answers():
        reader.close()
        raise AnalyticsUnavailable(f"the hub at {hub_url} runs: pass an agent token (token=...) to read through it")
    if not reader._file_usable():
        reader.close()
        raise AnalyticsUnavailable(
            (f"the hub at {hub_url} does not answer" if hub_url else "no hub_url given")
            + (f" and there is no database at {db_path}" if db_path else " and no db_path given"))
    try:
        duckdb.connect(str(reader.db_path), read_only=True).close()
    except duckdb.Error as e:
        reader.close()
        if _is_locked(e):
            raise HubHoldsFile(f"{db_path} is held by a running hub; pass hub_url= and token= to read through "
                               "it") from None
        raise
    return reader
