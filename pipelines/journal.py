"""The journal: rows that must be on disk before the hub answers, as fsynced lines in a file.

A DuckDB statement costs 1-3 ms of CPU however small, so committing each event on its own (what
a PBX posting one event at a time needs for its 202) spent most of the hub's CPU at low rates, at
the very moment the pop was being made. A line appended to a file and ``fdatasync``-ed costs
~0.15 ms. So a durable row is written here first (its future resolves once the line is synced),
then joins DuckDB's next group commit like any other row. At start the store replays the lines
of a run that did not close cleanly and removes them; while running, a segment is removed once
every row in it is committed to DuckDB.

Lines are JSON: ``{"t": table, "r": row}``, datetimes as ISO text. A line cut short by a crash
was never synced, so never acknowledged: it is ignored.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import queue
import threading
from datetime import date, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("callpop.journal")
SEGMENT_BYTES = 4 << 20  # a new file after this much; the old one goes once DuckDB holds its rows


class Segment:
    def __init__(self, path: Path):
        self.path = path
        self.pending = 0  # rows written here and not yet committed to DuckDB
        self.sealed = False  # no more rows will be written here


def _encode(value: Any) -> str:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} cannot go into the journal")


def read(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every complete line in the directory's segments, oldest first: (table, row)."""
    out = []
    for path in sorted(directory.glob("*.jsonl")):
        data = path.read_bytes()
        lines = data.split(b"\n")
        if lines[-1]:
            log.warning("%s ends with a line cut short (never acknowledged): ignored", path.name)
        for n, line in enumerate(lines[:-1], 1):
            try:
                record = json.loads(line)
                out.append((record["t"], record["r"]))
            except (ValueError, KeyError, TypeError):
                log.error("%s line %d is not a journal record: ignored", path.name, n)
    return out


class Journal:
    def __init__(self, directory: Path, segment_bytes: int = SEGMENT_BYTES):
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._segments: list[Segment] = []
        self._thread: threading.Thread | None = None
        self._fd = -1
        self._size = 0

    def start(self) -> None:
        """Begin a new segment after any left in the directory (call ``remove_old`` once those
        are replayed)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._open_segment()
        self._thread = threading.Thread(target=self._run, name="callpop-journal", daemon=True)
        self._thread.start()

    def remove_old(self) -> None:
        """Segments of earlier runs: their rows are in DuckDB now."""
        current = {s.path for s in self._segments}
        for path in self.directory.glob("*.jsonl"):
            if path not in current:
                path.unlink()

    def append(self, table: str, row: dict[str, Any]) -> concurrent.futures.Future:
        """Queue a line; the future resolves, once the line is synced, to the segment that holds
        it (hand it to ``release`` when DuckDB has committed the row)."""
        line = json.dumps({"t": table, "r": row}, default=_encode, separators=(",", ":")).encode() + b"\n"
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((line, future))
        return future

    def release(self, segment: Segment) -> None:
        """One row of the segment is committed to DuckDB."""
        with self._lock:
            segment.pending -= 1
            done = segment.sealed and segment.pending == 0
        if done:
            self._remove(segment)

    def close(self) -> None:
        """Write what is queued and stop. Segments whose rows are all in DuckDB are removed; the
        others stay for the next start to replay."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join()
        self._thread = None
        with self._lock:
            self._seal()
            finished = [s for s in self._segments if s.pending == 0]  # the rest: replayed at next start
        for segment in finished:
            self._remove(segment)

    # --- the journal's thread
    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while batch[-1] is not None:  # take whatever queued meanwhile: one write, one sync
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stopping = batch[-1] is None
            batch = [b for b in batch if b is not None]
            if batch:
                self._write(batch)
            if stopping:
                return

    def _write(self, batch: list[tuple[bytes, concurrent.futures.Future]]) -> None:
        data = b"".join(line for line, _ in batch)
        finished = segment = None
        try:
            with self._lock:
                if self._size and self._size + len(data) > self.segment_bytes:
                    finished = self._seal()
                    self._open_segment()
                segment = self._segments[-1]
                segment.pending += len(batch)
            if finished is not None:
                self._remove(finished)
            os.write(self._fd, data)  # O_APPEND: one write, whole lines
            os.fdatasync(self._fd)
            self._size += len(data)
        except Exception as e:  # noqa: BLE001 - a failed write fails its callers, never leaves them waiting
            log.error("journal write failed: %s", e)
            if segment is not None:
                with self._lock:
                    segment.pending -= len(batch)
            for _, future in batch:
                future.set_exception(e)
            return
        for _, future in batch:
            future.set_result(segment)

    def _open_segment(self) -> None:
        numbers = [int(p.stem) for p in self.directory.glob("*.jsonl") if p.stem.isdigit()]
        path = self.directory / f"{max(numbers, default=0) + 1:08d}.jsonl"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = 0
        self._segments.append(Segment(path))
        dir_fd = os.open(self.directory, os.O_RDONLY)  # the new file's name must survive a crash too
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _seal(self) -> Segment | None:
        """(Lock held.) No more lines go to the current segment; returns it if it can go now."""
        segment = self._segments[-1]
        if not segment.sealed:
            segment.sealed = True
            os.close(self._fd)
            self._fd = -1
        return segment if segment.pending == 0 else None

    def _remove(self, segment: Segment) -> None:
        with self._lock:
            if segment in self._segments:
                self._segments.remove(segment)
        try:
            segment.path.unlink()
        except FileNotFoundError:
            pass
