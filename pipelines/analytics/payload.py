"""Answers as JSON (the hub's route and the reader's way back): a query run on a cursor of its
own with a deadline, and a DataFrame to and from ``{"columns", "records"}``."""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
from typing import Any, Mapping

import duckdb
import numpy as np
import pandas as pd

from .params import NamedQuery
from .scope import scope_to_agent


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
