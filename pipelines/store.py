"""The DuckDB file: its schema, its one writer, and reads beside the writer.

Only the hub opens the file (DuckDB allows one writing process and no readers beside it; see
``pipelines/readers.py`` for how other processes read). All writes go through one thread that
commits in groups: whatever queued while the last commit ran (or within the commit window) is
written in one transaction, so the event loop never waits on disk and throughput grows with
load. A write's future resolves once its transaction is committed, and DuckDB's commit is
durable (its write-ahead log is synced): that is what an event's 202 waits for.

Writes made in ``together()`` share one transaction: an event and the rows made from it are
committed all or none. Events have a unique key on ``event_id``: a unit whose event is already
stored, whatever its age, is refused whole (``is_duplicate``) and the rest of its group committed.

When a commit fails for a reason outside the data (a full disk, an I/O error), nothing is lost
and nothing dies: the writer keeps the group, says why (``problem``), and tries again with
backoff, reopening the file if DuckDB invalidated it; writes queue meanwhile up to ``queue_max``
(``accepting`` then tells the hub to refuse new events), and the hub tells the PBX that its
events are not committed yet (503) until the disk takes them again.
DuckDB checkpoints only when the writer asks (never inside a commit), so a checkpoint that fails
can never make a commit's outcome uncertain: the committed rows are in the log and the file is
reopened from it.

The schema (and who holds the file) is ``store_schema.py``'s, upgrades ``migrations.py``'s; what one
group writes, ``store_rows.py``'s.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import duckdb
import pandas as pd

from . import migrations
from .store_rows import Op, apply, check_row
from .store_schema import CONFIG, SCHEMA

log = logging.getLogger("callpop.store")
MAX_GROUP = 5000  # operations per transaction at most
WAL_CHECKPOINT_BYTES = 16 << 20  # fold the write-ahead log into the file past this size (DuckDB's own default)
RETRY_MAX_S = 2.0  # longest wait between two attempts at a failed commit


class StoreUnavailable(Exception):
    """The store cannot take writes (or answer) now: a full disk, an I/O error. Retry later."""


_STOP = object()


class Store:
    def __init__(self, path: str | Path, schema: Path = SCHEMA, commit_window_ms: float = 0,
                 queue_max: int = 50_000, checkpoint_bytes: int = WAL_CHECKPOINT_BYTES):
        self.path = Path(path)
        self.checkpoint_bytes = checkpoint_bytes
        self.commit_window_s = commit_window_ms / 1000
        self.queue_max = queue_max
        self.schema = schema
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._thread: threading.Thread | None = None
        self._columns: dict[str, list[str]] = {}
        self._together: list[Op] | None = None
        self._memory = str(self.path) == ":memory:"
        self.commits = 0
        self.rows_written = 0
        self.problem = ""  # why writes are not being committed now; "" when they are
        self._stop_by: float | None = None  # closing: when to give up on a disk that refuses writes
        self._held = 0  # writes in a group whose commit is being retried
        self.last_error = ""  # the last write that failed for its own data (and was dropped)

    # --- life cycle
    def open(self) -> "Store":
        if not self._memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = self._connect()
        try:
            migrations.upgrade(self._con, self.schema.read_text(encoding="utf-8"))
        except BaseException:
            self._drop_connection()  # the file is left as it was: a failed step rolled back
            raise
        self._columns = {t: [c for c, _ in cols] for t, cols in migrations.columns(self._con).items()}
        self._thread = threading.Thread(target=self._writer, name="callpop-store-writer", daemon=True)
        self._thread.start()
        return self

    def _connect(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect(str(self.path), config=CONFIG)

    def close(self, grace_s: float = 10.0) -> None:
        """Write what is queued, checkpoint (the log folds into the file) and close. A disk that
        still refuses writes after ``grace_s`` loses what was queued (its events were never
        acknowledged): logged."""
        if self._thread is None:
            return
        self._stop_by = time.monotonic() + grace_s
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None
        try:
            if self._con is not None and not self._memory:
                self._con.execute("CHECKPOINT")
        except duckdb.Error as e:
            log.error("checkpoint at close failed (the log stays beside the file): %s", e)
        finally:
            if self._con is not None:
                self._con.close()
            self._con = None

    # --- writing (any thread; returns a future resolved after commit)
    def insert(self, table: str, row: Mapping[str, Any]) -> concurrent.futures.Future:
        return self._put(Op("insert", table, dict(row)))

    def update(self, table: str, key: Mapping[str, Any], values: Mapping[str, Any]) -> concurrent.futures.Future:
        return self._put(Op("update", table, dict(values), dict(key)))

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """The writes made inside (on this thread, without awaiting) go in one transaction."""
        if self._together is not None:  # already inside: one unit
            yield
            return
        self._together = ops = []
        try:
            yield
        finally:
            self._together = None
            if ops:
                self._queue.put(ops)

    def _put(self, op: Op) -> concurrent.futures.Future:
        if self._thread is None:
            raise RuntimeError("store is not open")
        check_row(self._columns, op.table, op.row)
        if self._together is not None:
            self._together.append(op)
        else:
            self._queue.put(op)
        return op.future

    def accepting(self) -> str:
        """"" while new writes may still be held in memory; else why not (the hub answers 503
        before acting on an event). A failing disk alone does not refuse them: they wait."""
        if (waiting := self.pending()) >= self.queue_max:
            return f"{waiting} writes waiting for the disk" + (f" ({self.problem})" if self.problem else "")
        return ""

    @property
    def state(self) -> str:
        return "degraded" if self.problem else "ok"

    @property
    def columns(self) -> dict[str, list[str]]:
        """Table -> its column names, in order."""
        return self._columns

    # --- reading (any thread; sees what is committed)
    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(cursor, *args, **kwargs)`` on a cursor of its own (closed after): reads beside the writer."""
        con = self._con
        if con is None:
            raise StoreUnavailable(self.problem or "the store is not open")
        try:
            cur = con.cursor()
        except duckdb.Error as e:  # the file is being reopened after a failure
            raise StoreUnavailable(self.problem or str(e)) from None
        try:
            return fn(cur, *args, **kwargs)
        except (duckdb.FatalException, duckdb.ConnectionException) as e:  # invalidated, or being reopened
            raise StoreUnavailable(self._why(e)) from None
        finally:
            with contextlib.suppress(duckdb.Error):
                cur.close()

    def query(self, sql: str, params: Iterable[Any] | Mapping[str, Any] | None = None) -> pd.DataFrame:
        return self.run(query, sql, params)

    def pending(self) -> int:
        """Writes not committed yet: queued, and held by a commit being retried."""
        return self._queue.qsize() + self._held

    # --- the writer thread
    def _writer(self) -> None:
        """Group commit: a DuckDB statement costs ~1 ms whatever its size, so what queued while
        the last commit ran shares the next one, and a write that comes within ``commit_window_s``
        of the last commit waits for the window's end with whatever else comes. After a quiet
        spell the first write commits at once."""
        last = 0.0
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            group = [_unit(first)]
            due = last + self.commit_window_s
            while sum(len(u) for u in group) < MAX_GROUP:
                try:
                    wait = due - time.monotonic()
                    item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                group.append(_unit(item))
            self._commit_until_done(group)
            last = time.monotonic()
        if self.problem and self.pending():
            log.error("the store closes with %d writes it could not commit (%s)", self.pending(), self.problem)

    def _commit_until_done(self, group: list[list[Op]]) -> None:
        """Commit the group, retrying while the disk refuses; at close, only until the grace ends."""
        wait = 0.1
        while True:
            try:
                self._commit(group)
            except _Environment as e:
                self._held = sum(len(u) for u in group)
                if not self.problem:
                    log.error("the database cannot commit (%s): %d writes held, retrying", e, self._held)
                self.problem = str(e)
                if self._stop_by is not None and time.monotonic() > self._stop_by:
                    self._held = 0
                    for op in (op for unit in group for op in unit):
                        op.future.set_exception(StoreUnavailable(self.problem))
                    return
                time.sleep(wait)
                wait = min(wait * 2, RETRY_MAX_S)
                continue
            self._held = 0
            self._checkpoint_if_due()
            return

    def _commit(self, group: list[list[Op]]) -> None:
        """One transaction for the group's units. An environmental failure raises
        ``_Environment`` (the caller retries); a unit DuckDB refuses (a bad row, an event id
        already stored) is found and failed whole, the other units committed."""
        con = self._usable()
        ops = [op for unit in group for op in unit]
        try:
            con.execute("BEGIN")
            apply(con, self._columns, ops)
            con.execute("COMMIT")
        except Exception as e:  # noqa: BLE001 - the writer never dies: a row DuckDB (or Arrow) refuses fails alone
            _rollback(con)
            if _environmental(e):
                if isinstance(e, duckdb.FatalException):
                    self._drop_connection()
                raise _Environment(self._why(e)) from None
            if len(group) == 1:
                if not is_duplicate(e):
                    self.last_error = f"{type(e).__name__}: {_first_line(e)}"
                    log.error("write to %s failed: %s", ops[0].table, self.last_error)
                for op in ops:
                    op.future.set_exception(e)
                return
            for unit in group:  # find the bad unit, keep the rest
                self._commit([unit])
            return
        if self.problem:  # before the futures resolve: whoever sees one done sees the store well
            log.warning("the database commits again after: %s", self.problem)
            self.problem = ""
        self.commits += 1
        self.rows_written += len(ops)
        for op in ops:
            if not op.future.done():
                op.future.set_result(None)

    def _usable(self) -> duckdb.DuckDBPyConnection:
        """The connection, reopened if a fatal error invalidated the database."""
        if self._con is None:
            try:
                self._con = self._connect()
            except duckdb.Error as e:
                raise _Environment(f"cannot reopen {self.path.name}: {self._why(e)}") from None
            log.warning("reopened %s after: %s", self.path.name, self.problem)
        return self._con

    def _why(self, e: Exception) -> str:
        """The error's first line, without the database's folder (it is shown on /healthz)."""
        return _first_line(e).replace(f"{self.path.parent}{os.sep}", "")

    def _drop_connection(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            with contextlib.suppress(duckdb.Error):
                con.close()

    def _checkpoint_if_due(self) -> None:
        if self._memory:
            return
        try:
            size = os.stat(f"{self.path}.wal").st_size
        except OSError:
            return
        if size < self.checkpoint_bytes:
            return
        # Retried while the disk refuses it, like a commit: the rows are safe in the log, but the
        # store is degraded until the file takes them (a fatal failure means reopening from the
        # log first). Writes that come meanwhile wait in the queue.
        wait = 0.1
        while True:
            try:
                self._usable().execute("CHECKPOINT")
            except (duckdb.Error, _Environment) as e:
                if isinstance(e, duckdb.Error) and not _environmental(e):
                    log.error("checkpoint failed: %s", self._why(e))  # not the disk: the next one may do
                    return
                if isinstance(e, duckdb.FatalException):
                    self._drop_connection()
                why = self._why(e) if isinstance(e, duckdb.Error) else str(e)
                if not self.problem:
                    log.error("checkpoint failed: %s; retrying", why)
                self.problem = why
                if self._stop_by is not None and time.monotonic() > self._stop_by:
                    return
                time.sleep(wait)
                wait = min(wait * 2, RETRY_MAX_S)
                continue
            if self.problem:
                log.warning("the database checkpoints again after: %s", self.problem)
                self.problem = ""
            return

class _Environment(Exception):
    """A commit failed for a reason outside the data: retry the same group later."""


def _environmental(e: Exception) -> bool:
    # A full disk or an I/O error surfaces as IOException, as a TransactionException whose
    # message is the I/O error ("Failed to commit: Could not write file ..."), or as a
    # FatalException that invalidated the database. Everything else is about the rows.
    if isinstance(e, (duckdb.IOException, duckdb.FatalException)):
        return True
    text = str(e).lower()
    return isinstance(e, duckdb.TransactionException) and ("could not write" in text or "no space" in text
                                                           or "i/o" in text or "io error" in text)


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    # A failed COMMIT has already rolled back (a second ROLLBACK raises "no transaction is active").
    with contextlib.suppress(duckdb.Error):
        con.execute("ROLLBACK")


def _first_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:300]


def _unit(item: Any) -> list[Op]:
    """What the queue holds: one write, or the writes of ``together()``, committed all or none."""
    return item if isinstance(item, list) else [item]


def is_duplicate(e: BaseException | None) -> bool:
    """A write refused because its event id is already stored (the unique key)."""
    return isinstance(e, duckdb.ConstraintException) and "Duplicate key" in str(e) and "event_id" in str(e)


def query(con: duckdb.DuckDBPyConnection, sql: str, params: Iterable[Any] | Mapping[str, Any] | None = None
          ) -> pd.DataFrame:
    return con.execute(sql, params).df() if params is not None else con.execute(sql).df()


def wait_all(futures: Iterable[concurrent.futures.Future], timeout: float = 30.0) -> None:
    """Block until every write committed (for scripts and tests)."""
    deadline = time.monotonic() + timeout
    for f in futures:
        f.result(timeout=max(0.0, deadline - time.monotonic()))
