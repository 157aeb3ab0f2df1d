"""The DuckDB file's writer in a process of its own, so its work never holds the hub's GIL.

Why: a DuckDB commit of Arrow batches takes the GIL back many times while it runs (DuckDB
converts and scans the batches through Python objects), and each time the event loop waits for
it: at 20 events/s those waits were most of the hub's p99 overhead over a bare server. In its
own process the writer has its own GIL; the hub only pickles rows into a socket.

``StoreProcess`` is what the hub holds: the ``Store`` calls it makes (``insert``, ``update``,
``query``, ``run``) with the same futures and answers. The child (``python -m
pipelines.store_process``) runs a real ``Store`` (schema, group commits, journal) and nothing
else; every read goes to it too, since DuckDB lets one process open the file. One socket pair
carries pickled tuples, the message type first:

    hub -> child   (path, schema, commit_window_ms, log_level)              once, first
                   ("write", [(id, kind, table, row, key, durable), ...])   queued writes, in order
                   ("call", id, pickled (fn, args, kwargs))  fn(cursor, *args, **kwargs) on a cursor
                   ("close",)                write what is queued, checkpoint, answer "closed"
    child -> hub   ("ready", columns) | ("failed", reason)                  once, after opening
                   ("done", [(id, exception or None), ...], stats)  writes committed (durable: journalled)
                   ("return", id, ok, value or exception)
                   ("closed", stats)

If the hub dies, the child reads the end of the socket, commits what it received and exits; a hub
started meanwhile on the same file waits for it (DuckDB's lock) instead of failing.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import itertools
import logging
import multiprocessing.connection
import os
import pickle
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import duckdb
import pandas as pd

from .store import SCHEMA, Store, check_row, query

log = logging.getLogger("callpop.store")
CALL_WAIT_S = 300.0  # a read's answer, at the latest (analytics interrupt their own queries sooner)
OPEN_WAIT_S = 30.0  # how long a new writer waits for the file's lock (a writer that outlived its hub)
# The writer yields the CPU to the hub: on a busy machine the event loop, woken by an event, gets
# a core before a commit does (interleaved at 20 events/s, twice: pop p99 9.7 -> 6.7 ms and
# 11.2 -> 8.4 ms). Commits and the journal's syncs (which a PBX's 202 waits for) may wait a little.
WRITER_NICE = 10
_CLOSE = object()
ROOT = Path(__file__).resolve().parent.parent  # where ``pipelines`` is imported from


class StoreProcess:
    """The hub's side of the writer process; the same calls as ``Store``."""

    def __init__(self, path: str | Path, schema: Path = SCHEMA, commit_window_ms: float = 0,
                 log_level: str = "INFO", send_linger_ms: float = 0):
        self.path = Path(path) if str(path) == ":memory:" else Path(path).resolve()
        self.schema, self.commit_window_ms, self.log_level = schema, commit_window_ms, log_level
        self.send_linger_s = send_linger_ms / 1000
        self.commits = 0
        self.rows_written = 0
        self.last_error = ""
        self._columns: dict[str, list[str]] = {}
        self._futures: dict[int, concurrent.futures.Future] = {}
        self._ids = itertools.count(1)
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._proc: subprocess.Popen | None = None
        self._conn = None
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()  # futures are added by the hub's threads, settled by the receiver
        self._gone = ""  # why the writer cannot take more work (it ended)

    # --- life cycle
    def open(self) -> "StoreProcess":
        # A program of its own (python -m pipelines.store_process), not a multiprocessing child:
        # those re-import the parent's __main__, which is not always a module that may run twice.
        ours, theirs = socket.socketpair()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self._proc = subprocess.Popen([sys.executable, "-m", "pipelines.store_process", str(theirs.fileno())],
                                      pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=env)
        theirs.close()
        self._conn = conn = multiprocessing.connection.Connection(ours.detach())
        conn.send((str(self.path), self.schema, self.commit_window_ms, self.log_level))
        try:
            kind, value = conn.recv() if conn.poll(OPEN_WAIT_S + 60) else ("failed", "no answer from the writer")
        except EOFError:
            kind, value = "failed", f"the writer process ended (exit code {self._proc.wait()})"
        if kind != "ready":
            conn.close()
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None
            raise RuntimeError(f"cannot open {self.path}: {value}")
        self._columns = value
        self._threads = [threading.Thread(target=self._send, name="callpop-store-send", daemon=True),
                         threading.Thread(target=self._receive, name="callpop-store-receive", daemon=True)]
        for t in self._threads:
            t.start()
        atexit.register(self.close)  # a hub that never stopped still gets its rows written
        return self

    def close(self) -> None:
        """Write what is queued, checkpoint and close (in the writer), then wait for it to exit."""
        if self._proc is None:
            return
        atexit.unregister(self.close)
        self._outbox.put(_CLOSE)
        for t in self._threads:
            t.join()
        try:
            self._proc.wait(60)
        except subprocess.TimeoutExpired:
            log.error("the store writer did not exit: killed")
            self._proc.kill()
            self._proc.wait()
        self._conn.close()
        self._proc = None

    # --- writing (any thread; a future resolved after commit, or once journalled when durable)
    def insert(self, table: str, row: Mapping[str, Any], durable: bool = False) -> concurrent.futures.Future:
        return self._write("insert", table, dict(row), None, durable)

    def update(self, table: str, key: Mapping[str, Any], values: Mapping[str, Any]) -> concurrent.futures.Future:
        return self._write("update", table, dict(values), dict(key), False)

    def _write(self, kind: str, table: str, row: dict, key: dict | None, durable: bool) -> concurrent.futures.Future:
        if self._proc is None:
            raise RuntimeError("store is not open")
        check_row(self._columns, table, row, durable)
        try:
            op_id, future = self._track()
        except RuntimeError as e:  # the writer is gone: this write fails, as a future
            future = concurrent.futures.Future()
            future.set_exception(e)
            return future
        self._outbox.put((op_id, kind, table, row, key, durable))
        return future

    def _track(self) -> tuple[int, concurrent.futures.Future]:
        """A new id and the future its answer settles; RuntimeError once the writer is gone."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            if self._gone:
                raise RuntimeError(self._gone)
            op_id = next(self._ids)
            self._futures[op_id] = future
        return op_id, future

    def pending(self) -> int:
        """Writes not yet committed (or, when durable, journalled)."""
        return len(self._futures)

    # --- reading (any thread; sees what is committed)
    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(cursor, *args, **kwargs)`` in the writer process, on a cursor of its own; its answer
        (or its exception). ``fn`` and what it returns cross the socket: a module-level function, data."""
        if self._proc is None:
            raise RuntimeError("store is not open")
        call_id, future = self._track()
        # Pickled here, so what cannot cross the socket fails this call, in the caller's thread.
        self._outbox.put(("call", call_id, pickle.dumps((fn, args, kwargs))))
        return future.result(CALL_WAIT_S)

    def query(self, sql: str, params: Iterable[Any] | Mapping[str, Any] | None = None) -> pd.DataFrame:
        return self.run(query, sql, params)

    # --- the socket
    def _send(self) -> None:
        """Whatever queued since the last send goes as one message: one pickle, one write. The
        first item waits ``send_linger_s`` for the others: an event's rows then leave after its
        pop (whose CRM answer takes ~1.5 ms), and the writer's process wakes while the event loop
        is idle instead of competing with it for the two cores. Interleaved at 20 events/s, twice,
        a 3 or 10 ms linger moved the pops' p50 from 3.1-3.5 to 2.7-2.9 ms and p95 from 8-12 to
        5-9 ms (the bare baseline's: 3.1-3.4 and 8-12)."""
        closing = False
        while not closing:
            writes: list[tuple] = []
            try:
                for item in _take_all(self._outbox, self.send_linger_s):
                    if item is _CLOSE:
                        closing = True
                        break
                    if item[0] == "call":
                        self._send_writes(writes)
                        writes = []
                        self._conn.send(item)
                    else:
                        writes.append(item)
                self._send_writes(writes)
                if closing:
                    self._conn.send(("close",))
            except OSError as e:  # the receiver sees the end too and fails what waits
                log.error("cannot reach the store writer: %s", e)
                return

    def _send_writes(self, writes: list[tuple]) -> None:
        if not writes:
            return
        try:
            self._conn.send(("write", writes))
        except (pickle.PicklingError, TypeError, AttributeError):
            # A value that cannot be pickled fails its own write; the rest go one by one.
            for w in writes:
                try:
                    self._conn.send(("write", [w]))
                except (pickle.PicklingError, TypeError, AttributeError) as e:
                    self._settle(w[0], False, ValueError(f"a value of this row cannot be stored: {e}"))

    def _receive(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                self._end(f"the store writer ended (exit code {self._proc.poll() if self._proc else '?'})")
                return
            kind = message[0]
            if kind == "done":
                for op_id, error in message[1]:
                    self._settle(op_id, error is None, error)
                self._stats(message[2])
            elif kind == "return":
                self._settle(*message[1:])
            elif kind == "closed":
                self._stats(message[1])
                self._end("store is closed")
                return

    def _settle(self, op_id: int, ok: bool, value: Any) -> None:
        future = self._futures.pop(op_id, None)
        if future is None:
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def _stats(self, stats: dict) -> None:
        self.commits, self.rows_written, self.last_error = stats["commits"], stats["rows"], stats["last_error"]

    def _end(self, why: str) -> None:
        with self._lock:
            self._gone = why
            left, self._futures = self._futures, {}
        for future in left.values():
            future.set_exception(RuntimeError(why))


# --- the writer process
def main(argv: list[str]) -> int:
    os.nice(WRITER_NICE)
    conn = multiprocessing.connection.Connection(int(argv[0]))
    try:
        path, schema, commit_window_ms, log_level = conn.recv()
    except EOFError:
        return 1
    _serve(conn, path, schema, commit_window_ms, log_level)
    return 0


def _serve(conn, path: str, schema: Path, commit_window_ms: float, log_level: str) -> None:
    # Ctrl-C or a service manager's SIGTERM reaches the whole process group: the hub drains
    # first (writing as it goes) and then closes us; if it dies instead, the socket ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    store = Store(path, schema, commit_window_ms)
    try:
        _open(store)
    except Exception as e:  # noqa: BLE001 - told to the hub, which refuses to start
        conn.send(("failed", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", store.columns))
    replies = _Replies(conn, store)
    calls = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="callpop-store-read")
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                log.warning("the hub went away: writing what it sent, then stopping")
                break
            if message[0] == "write":
                for op_id, kind, table, row, key, durable in message[1]:
                    try:
                        f = store.insert(table, row, durable) if kind == "insert" else store.update(table, key, row)
                    except Exception as e:  # noqa: BLE001 - this write fails, the others go on
                        replies.written(op_id, e)
                        continue
                    f.add_done_callback(lambda f, op_id=op_id: replies.written(op_id, f.exception()))
            elif message[0] == "call":
                calls.submit(_call, replies, store, *message[1:])
            elif message[0] == "close":
                break
    finally:
        calls.shutdown(wait=True)
        store.close()
        replies.close()


def _open(store: Store) -> None:
    """Open, waiting a while for the lock a writer that outlived its hub still holds."""
    deadline = time.monotonic() + OPEN_WAIT_S
    while True:
        try:
            store.open()
            return
        except duckdb.IOException as e:
            if "lock" not in str(e).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _call(replies: "_Replies", store: Store, call_id: int, payload: bytes) -> None:
    try:
        fn, args, kwargs = pickle.loads(payload)
        replies.returned(call_id, True, store.run(fn, *args, **kwargs))
    except Exception as e:  # noqa: BLE001 - the caller gets it
        replies.returned(call_id, False, e)


class _Replies:
    """Everything the child says after "ready" goes through one thread: a socket is not for many writers,
    and the commits that finish together go back as one message."""

    def __init__(self, conn, store: Store):
        self.conn, self.store = conn, store
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="callpop-store-replies", daemon=True)
        self._thread.start()

    def written(self, op_id: int, error: BaseException | None) -> None:
        self._queue.put((op_id, None if error is None else _portable(error)))

    def returned(self, call_id: int, ok: bool, value: Any) -> None:
        self._queue.put(("return", call_id, ok, value if ok else _portable(value)))

    def close(self) -> None:
        self._queue.put(_CLOSE)
        self._thread.join()

    def _stats(self) -> dict:
        return {"commits": self.store.commits, "rows": self.store.rows_written, "last_error": self.store.last_error}

    def _run(self) -> None:
        closing = False
        while not closing:
            done = []
            for item in _take_all(self._queue):
                if item is _CLOSE:
                    closing = True
                elif item[0] == "return":
                    self._send(item)
                else:
                    done.append(item)
            if done:
                self._send(("done", done, self._stats()))
        self._send(("closed", self._stats()))

    def _send(self, message: tuple) -> None:
        try:
            self.conn.send(message)
        except (pickle.PicklingError, TypeError, AttributeError) as e:  # an answer that cannot cross
            if message[0] == "return":
                self._send(("return", message[1], False, RuntimeError(f"{type(e).__name__}: {e}")))
        except OSError:
            pass  # the hub is gone; nobody to tell


def _take_all(q: queue.SimpleQueue, linger_s: float = 0.0) -> list:
    """The next item, waiting for it, and whatever else is queued ``linger_s`` later."""
    items = [q.get()]
    if linger_s:
        time.sleep(linger_s)
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            return items


def _portable(error: BaseException) -> BaseException:
    """The exception itself if it survives the socket (DuckDB's do), else one that says what it was."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - any exception type may refuse pickling
        return RuntimeError(f"{type(error).__name__}: {error}")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
