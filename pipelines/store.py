"""The DuckDB file: its schema, its one writer, and reads beside the writer.

Only the hub's store opens the file (DuckDB allows one writing process and no readers beside
it; see ``pipelines/readers.py`` for how other processes read); by default this ``Store`` runs in
a process of its own that the hub reaches over a socket (``pipelines/store_process.py``). All writes go
through one thread that commits in groups: whatever queued within the commit window is written
in one transaction, as Arrow batches for inserts, so the event loop never blocks on disk and
throughput grows with load. A write's future resolves after its transaction committed. A
durable insert (an event, whose 202 waits for it) resolves earlier, once its line is synced in
the journal beside the file (``pipelines/journal.py``); a start after a crash replays the lines
DuckDB does not hold yet.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import queue
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import duckdb
import pandas as pd
import pyarrow as pa

from . import journal

log = logging.getLogger("callpop.store")
SCHEMA = Path(__file__).resolve().parent.parent / "data" / "schema.sql"
MAX_GROUP = 5000  # operations per transaction at most
DURABLE_KEYS = {"events": "event_id"}  # tables with durable inserts: the column that names a row


@dataclasses.dataclass
class _Op:
    kind: str  # insert | update
    table: str
    row: dict[str, Any]  # insert: the row; update: the new values
    key: dict[str, Any] | None = None  # update: equality conditions
    segment: journal.Segment | None = None  # the journal file holding a durable insert
    future: concurrent.futures.Future = dataclasses.field(default_factory=concurrent.futures.Future)


_STOP = object()


class Store:
    def __init__(self, path: str | Path, schema: Path = SCHEMA, commit_window_ms: float = 0):
        self.path = Path(path)
        self.commit_window_s = commit_window_ms / 1000
        self.schema = schema
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._thread: threading.Thread | None = None
        self._columns: dict[str, list[str]] = {}
        memory = str(self.path) == ":memory:"
        self._journal = None if memory else journal.Journal(self.path.with_name(self.path.name + ".journal"))
        self.commits = 0
        self.rows_written = 0
        self.last_error: str = ""

    # --- life cycle
    def open(self) -> "Store":
        if self.path.parent and str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(str(self.path))
        ddl = self.schema.read_text(encoding="utf-8")
        self._con.execute(ddl)
        self._add_new_columns(ddl)
        self._columns = _columns(self._con)
        if self._journal is not None:
            self._replay()
            self._journal.start()
            self._journal.remove_old()
        self._thread = threading.Thread(target=self._writer, name="callpop-store-writer", daemon=True)
        self._thread.start()
        return self

    def _add_new_columns(self, ddl: str) -> None:
        """A file made by an older release gets the columns added since (tables only grow)."""
        wanted = duckdb.connect(":memory:")
        try:
            wanted.execute(ddl)
            have, want = _columns(self._con, types=True), _columns(wanted, types=True)
        finally:
            wanted.close()
        for table, columns in want.items():
            for name, kind in columns:
                if name not in dict(have.get(table, ())):
                    log.info("adding column %s.%s to an older database", table, name)
                    self._con.execute(f'ALTER TABLE "{table}" ADD COLUMN "{name}" {kind}')

    def _replay(self) -> None:
        """Durable rows a run that was killed acknowledged but had not committed to DuckDB."""
        records = journal.read(self._journal.directory)
        if not records:
            return
        types = _columns(self._con, types=True)
        by_table: dict[str, dict[Any, dict]] = {}
        for table, row in records:
            key = DURABLE_KEYS.get(table)
            if key is None or row.get(key) is None:
                log.error("journal row for %s without its key: ignored", table)
                continue
            by_table.setdefault(table, {}).setdefault(row[key], row)
        for table, rows in by_table.items():
            key = DURABLE_KEYS[table]
            keys = pa.table({key: list(rows)})  # noqa: F841 - read by name below
            for (have,) in self._con.execute(f'SELECT DISTINCT "{key}" FROM "{table}" '
                                             f'WHERE "{key}" IN (SELECT "{key}" FROM keys)').fetchall():
                del rows[have]
            stamps = [name for name, kind in types[table] if kind.startswith("TIMESTAMP")]
            for row in rows.values():
                for c in stamps:
                    if isinstance(row.get(c), str):
                        row[c] = datetime.fromisoformat(row[c])
            if rows:
                self._commit(self._con, [_Op("insert", table, row) for row in rows.values()])
                log.warning("journal: %d rows of %s were not in DuckDB (the hub had not closed cleanly): "
                            "written now", len(rows), table)

    def close(self) -> None:
        """Write what is queued, checkpoint (the WAL folds into the file) and close."""
        if self._thread is None:
            return
        if self._journal is not None:  # its last lines reach the writer's queue first
            self._journal.close()
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None
        assert self._con is not None
        try:
            self._con.execute("CHECKPOINT")
        finally:
            self._con.close()
            self._con = None

    # --- writing (any thread; returns a future resolved after commit)
    def insert(self, table: str, row: Mapping[str, Any], durable: bool = False) -> concurrent.futures.Future:
        """Queue a row. ``durable``: the future resolves once the row is in the journal (synced),
        before DuckDB commits it; only for the tables of ``DURABLE_KEYS``."""
        op = self._check(_Op("insert", table, dict(row)), durable)
        if not durable or self._journal is None:
            self._queue.put(op)
            return op.future
        written = self._journal.append(table, op.row)

        def to_duckdb(f: concurrent.futures.Future) -> None:
            if f.exception() is None:
                op.segment = f.result()
                self._queue.put(op)
        written.add_done_callback(to_duckdb)
        return written

    def update(self, table: str, key: Mapping[str, Any], values: Mapping[str, Any]) -> concurrent.futures.Future:
        op = self._check(_Op("update", table, dict(values), dict(key)))
        self._queue.put(op)
        return op.future

    def _check(self, op: _Op, durable: bool = False) -> _Op:
        if self._thread is None:
            raise RuntimeError("store is not open")
        check_row(self._columns, op.table, op.row, durable)
        return op

    @property
    def columns(self) -> dict[str, list[str]]:
        """Table -> its column names, in order."""
        return self._columns

    # --- reading (any thread; sees what is committed)
    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(cursor, *args, **kwargs)`` on a cursor of its own (closed after): reads beside the writer."""
        if self._con is None:
            raise RuntimeError("store is not open")
        cur = self._con.cursor()
        try:
            return fn(cur, *args, **kwargs)
        finally:
            cur.close()

    def query(self, sql: str, params: Iterable[Any] | Mapping[str, Any] | None = None) -> pd.DataFrame:
        return self.run(query, sql, params)

    def pending(self) -> int:
        return self._queue.qsize()

    # --- the writer thread
    def _writer(self) -> None:
        """Group commit: a DuckDB statement costs ~1-3 ms whatever its size, so rows wait up to the
        commit window to share a transaction (a few batch statements). After a quiet spell the
        first row commits at once."""
        con = self._con.cursor()
        group: list[_Op] = []
        last = 0.0
        stopping = False
        while True:
            due = last + self.commit_window_s
            now = time.monotonic()
            if group and (stopping or now >= due or len(group) >= MAX_GROUP):
                self._commit(con, group)
                group, last = [], time.monotonic()
                continue
            if stopping:
                break
            try:
                op = self._queue.get(timeout=max(0.0, due - now) if group else None)
            except queue.Empty:
                continue
            while op is not None:  # take whatever queued meanwhile
                if op is _STOP:
                    stopping = True
                    break
                group.append(op)
                try:
                    op = self._queue.get_nowait()
                except queue.Empty:
                    op = None
        con.close()

    def _commit(self, con: duckdb.DuckDBPyConnection, group: list[_Op]) -> None:
        try:
            con.execute("BEGIN")
            self._apply(con, group)
            con.execute("COMMIT")
        except Exception as e:  # noqa: BLE001 - one bad row must not lose the others
            con.execute("ROLLBACK")
            if len(group) == 1:
                self.last_error = f"{type(e).__name__}: {e}"
                log.error("write to %s failed: %s", group[0].table, self.last_error)
                group[0].future.set_exception(e)
                return
            for op in group:  # find the bad one, keep the rest
                self._commit(con, [op])
            return
        self.commits += 1
        self.rows_written += len(group)
        for op in group:
            if not op.future.done():
                op.future.set_result(None)
            if op.segment is not None:
                self._journal.release(op.segment)

    def _apply(self, con: duckdb.DuckDBPyConnection, group: list[_Op]) -> None:
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
            cols = [c for c in self._columns[table] if any(c in r for r in rows)]
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


def query(con: duckdb.DuckDBPyConnection, sql: str, params: Iterable[Any] | Mapping[str, Any] | None = None
          ) -> pd.DataFrame:
    return con.execute(sql, params).df() if params is not None else con.execute(sql).df()


def check_row(columns: Mapping[str, list[str]], table: str, row: Mapping[str, Any], durable: bool = False) -> None:
    """ValueError unless every column of the row is one of the table's (and, for a durable
    insert, the table is one whose rows have a key to replay them by)."""
    if table not in columns:
        raise ValueError(f"unknown table {table!r}")
    unknown = row.keys() - columns[table]  # one set, not two: this runs for every row, on the event loop
    if unknown:
        raise ValueError(f"unknown columns for {table}: {', '.join(sorted(unknown))}")
    if durable and table not in DURABLE_KEYS:
        raise ValueError(f"no durable inserts into {table!r}")


def _columns_of(rows: list[dict], cols: Iterable[str]) -> pa.Table:
    """Rows as an Arrow table, built column by column (1.7x faster than ``from_pylist`` of the
    row dicts at a few hundred rows and up: the writer holds the GIL for less)."""
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


def _columns(con: duckdb.DuckDBPyConnection, types: bool = False) -> dict[str, list]:
    """Table -> its column names (or (name, type) pairs), in order."""
    out: dict[str, list] = {}
    for table, name, kind in con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position").fetchall():
        out.setdefault(table, []).append((name, kind) if types else name)
    return out


def wait_all(futures: Iterable[concurrent.futures.Future], timeout: float = 30.0) -> None:
    """Block until every write committed (for scripts and tests)."""
    deadline = time.monotonic() + timeout
    for f in futures:
        f.result(timeout=max(0.0, deadline - time.monotonic()))
