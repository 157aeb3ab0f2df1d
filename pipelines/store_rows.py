"""What one group commit writes: each row checked against its table's columns, an update of a row
inserted in the same group folded into that insert, later updates of one row merged, and the
rows sent to DuckDB as Arrow batches (one INSERT per table, one joined UPDATE per shape)."""

from __future__ import annotations

import concurrent.futures
import dataclasses
from datetime import datetime
from typing import Any, Iterable, Mapping

import duckdb
import pyarrow as pa


@dataclasses.dataclass
class Op:
    """One write waiting for the writer; its future resolves once it is committed."""
    kind: str  # insert | update
    table: str
    row: dict[str, Any]  # insert: the row; update: the new values
    key: dict[str, Any] | None = None  # update: equality conditions
    future: concurrent.futures.Future = dataclasses.field(default_factory=concurrent.futures.Future)


def check_row(columns: Mapping[str, list[str]], table: str, row: Mapping[str, Any]) -> None:
    """ValueError unless every column of the row is one of the table's."""
    if table not in columns:
        raise ValueError(f"unknown table {table!r}")
    unknown = row.keys() - columns[table]
    if unknown:
        raise ValueError(f"unknown columns for {table}: {', '.join(sorted(unknown))}")


def apply(con: duckdb.DuckDBPyConnection, columns: Mapping[str, list[str]], group: list[Op]) -> None:
    """The group's writes on ``con``, inside the caller's transaction."""
    inserts: dict[str, list[dict]] = {}
    inserted = _RowIndex()
    updates: dict[tuple[str, tuple], tuple[dict, dict]] = {}
    for op in group:
        if op.kind == "insert":
            row = dict(op.row)
            inserts.setdefault(op.table, []).append(row)
            inserted.add(op.table, row)
            continue
        # An update of a row inserted in this same group is folded into the insert.
        pending = inserted.find(op.table, op.key)
        if pending is not None:
            pending.update(op.row)
            continue
        # Later updates of one row win, whatever columns they touch.
        k = (op.table, tuple(sorted(op.key.items())))
        if k in updates:
            updates[k][1].update(op.row)
        else:
            updates[k] = (op.key, dict(op.row))
    for table, rows in inserts.items():
        cols = [c for c in columns[table] if any(c in r for r in rows)]
        batch = _columns_of(rows, cols)  # noqa: F841 - read by name below
        names = ", ".join(f'"{c}"' for c in cols)
        con.execute(f'INSERT INTO "{table}" ({names}) SELECT * FROM batch')
    by_shape: dict[tuple, list[dict]] = {}
    for (table, _), (key, values) in updates.items():
        by_shape.setdefault((table, tuple(sorted(key)), tuple(sorted(values))), []).append({**key, **values})
    for (table, key_cols, value_cols), rows in by_shape.items():
        # One joined UPDATE per shape; a range on the timestamp keys lets zone maps skip the
        # row groups of older days instead of scanning the whole table for each batch.
        batch = _columns_of(rows, key_cols + value_cols)  # noqa: F841 - read by name below
        sets = ", ".join(f'"{c}" = batch."{c}"' for c in value_cols)
        where = [f'"{table}"."{c}" = batch."{c}"' for c in key_cols]
        params: list[Any] = []
        for c in key_cols:
            values = [r[c] for r in rows]
            if all(isinstance(v, datetime) for v in values):
                where.append(f'"{table}"."{c}" BETWEEN ? AND ?')
                params += [min(values), max(values)]
        con.execute(f'UPDATE "{table}" SET {sets} FROM batch WHERE {" AND ".join(where)}', params)


def _columns_of(rows: list[dict], cols: Iterable[str]) -> pa.Table:
    """Rows as an Arrow table, built column by column (faster than ``from_pylist`` of the row dicts)."""
    return pa.table({c: [r.get(c) for r in rows] for c in cols})


class _RowIndex:
    """Rows inserted in one group, found by any key an update uses (indexes built on demand)."""

    def __init__(self):
        self._rows: dict[str, list[dict]] = {}
        self._by: dict[tuple[str, tuple[str, ...]], dict[tuple, dict]] = {}

    def add(self, table: str, row: dict) -> None:
        self._rows.setdefault(table, []).append(row)
        for (t, cols), index in self._by.items():
            if t == table:
                index[tuple(row.get(c) for c in cols)] = row

    def find(self, table: str, key: Mapping[str, Any]) -> dict | None:
        cols = tuple(sorted(key))
        index = self._by.get((table, cols))
        if index is None:
            index = self._by[(table, cols)] = {tuple(r.get(c) for c in cols): r for r in self._rows.get(table, ())}
        return index.get(tuple(key[c] for c in cols))
