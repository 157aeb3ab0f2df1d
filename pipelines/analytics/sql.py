"""SQL building blocks the named queries share: grouped aggregates over a grid of keys, counts
that are 0 (never NULL) over no rows, rates that are NULL over nothing, funnels and histograms.

Counts by outcome come from rows pre-aggregated by (key, outcome) rather than one string
comparison per row per count: a few hundred ms a query over 10 M rows on two cores."""

from __future__ import annotations

import re
from typing import Any, Mapping

import duckdb
import numpy as np
import pandas as pd

from .ranges import Dim

OUTCOMES = ("found", "multiple", "not_found", "timeout", "http_error", "bad_response")
HIT = "('found', 'multiple')"
ERRORS = "('http_error', 'bad_response')"

def grouped(dim: Dim, source: str, aggregates: list[tuple[str, str]], counts: tuple[str, ...],
            beside: tuple[str, list[str]] | None = None) -> str:
    """SELECT key, aggregates (name, SQL over ``src``) FROM source grouped by key. With a grid,
    keys without rows are kept, their ``counts`` as 0 and everything else NULL (the grid joins
    the few aggregated rows, not the millions of source rows). ``beside`` = (SQL giving ``key``
    and more columns, their names): a second aggregate joined on the key."""
    columns = ", ".join(f"{sql} AS {name}" for name, sql in aggregates)
    names = [name for name, _ in aggregates] + (beside[1] if beside else [])
    agg = f"SELECT key, {columns} FROM src GROUP BY key"
    if beside:
        more = ", ".join(f"b.{name}" for name in beside[1])
        agg = f"SELECT a.*, {more} FROM ({agg}) a LEFT JOIN ({beside[0]}) b USING (key)"
    if dim.grid is None:
        return (f"WITH src AS ({source}) SELECT {dim.show.format(k='key')} AS \"{dim.name}\", {', '.join(names)} "
                f"FROM ({agg}) ORDER BY key")
    shown = ", ".join(f"coalesce(agg.{c}, 0) AS {c}" if c in counts else f"agg.{c}" for c in names)
    return (f"WITH src AS ({source}), agg AS ({agg}), grid AS ({dim.grid}) "
            f"SELECT {dim.show.format(k='grid.key')} AS \"{dim.name}\", {shown} "
            "FROM grid LEFT JOIN agg ON agg.key = grid.key ORDER BY grid.key")


def df(con: duckdb.DuckDBPyConnection, sql: str, binds: Mapping[str, Any]) -> pd.DataFrame:
    used = {k: v for k, v in binds.items() if re.search(rf"\${k}\b", sql)}
    return con.execute(sql, used).df()


def n(condition: str) -> str:
    """Rows meeting ``condition``: a BIGINT, 0 (never NULL) over no rows."""
    return f"count(*) FILTER ({condition})"


def total(condition: str = "true", column: str = "src.n") -> str:
    """Pre-aggregated rows (``n`` each) meeting ``condition``, as a BIGINT, 0 over none."""
    return f"CAST(coalesce(sum({column}) FILTER ({condition}), 0) AS BIGINT)"


def rate(part: str, whole: str) -> str:
    return f"{part} / nullif({whole}, 0)"


def is_in(column: str, *values: str) -> str:
    """``column`` equals one of ``values`` (constants of the queries, never user input)."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def funnel(row: pd.Series, stages: tuple[str, ...], count: str, share: str) -> pd.DataFrame:
    """One row per stage: its count and its share of the first stage."""
    first = int(row[stages[0]])
    return pd.DataFrame({"stage": pd.array(stages, dtype="str"),
                         count: np.array([int(row[s]) for s in stages], dtype="int64"),
                         share: [int(row[s]) / first if first else np.nan for s in stages]})


def histogram(frame: pd.DataFrame, count: str) -> pd.DataFrame:
    whole = frame[count].sum()
    frame["share"] = frame[count] / whole if whole else np.nan
    frame["cumulative_share"] = frame[count].cumsum() / whole if whole else np.nan
    return frame

