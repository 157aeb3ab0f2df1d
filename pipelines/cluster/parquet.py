"""The history as daily Parquet files (``CALLPOP_PARQUET_DIR``), written by the recorder.

One file per table and finished UTC day, ``<folder>/<table>/<YYYY-MM-DD>.parquet``, which
DuckDB (``read_parquet('<folder>/calls/*.parquet')``), pandas (``pd.read_parquet``) or MotherDuck
read from anywhere, without the hub or its database file. docs/PARQUET.md says how to read them.

How a file is made, following ``backup.py``: DuckDB's own ``COPY (SELECT ...) TO ... (FORMAT
parquet)`` on a read cursor of the store (``Store.run``), so the writer goes on committing
meanwhile; a day's tables are read in one transaction (one consistent moment). Each file is
written under a temporary name in its folder, synced, then renamed over the final name: a
reader never finds half a file under a ``.parquet`` name, even when the recorder is killed half-way.

A day is written once it is finished (before ``today``, UTC) and has rows in some table; then
every history table gets its file that day, an empty one (with the columns) for a table with
no rows, so a reader's glob finds every exported day and the columns even of an idle table.

Rows change after their day: a call that rang at 23:59 ends after midnight, a call record
(CDR) or a late CRM answer arrives minutes later, a missed call is handled days later, a call
log entry is retried for hours. So each file carries, in its Parquet metadata, a fingerprint of
the rows it holds (their count and the sum of DuckDB's ``hash`` of each row), and ``export_due``
rewrites a day's file when its rows' fingerprint in the database is no longer the file's. A
schema change (a new column) changes every fingerprint: the files are rewritten once with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import threading
from pathlib import Path
from typing import Iterable

import duckdb

from ..store import Store

log = logging.getLogger("callpop.parquet")

# The UTC day a row belongs to: the column set when the row was made (never updated). Events go
# by when the hub received them (NOT NULL, the hub's clock), not by the PBX's ``occurred_at``.
DAY_COLUMN = {
    "events": "received_at",
    "calls": "started_at",
    "lookups": "started_at",
    "pops": "sent_at",
    "contact_choices": "chosen_at",
    "dials": "requested_at",
    "rejects": "logged_at",
    "call_logs": "created_at",
    "call_notes": "saved_at",
    "agent_changes": "changed_at",
    "missed_calls": "missed_at",
}
NOT_HISTORY = frozenset({"journal_marks", "schema_migrations"})  # state (the recorder's, the schema's), not history
CATCH_UP_DAYS = 400  # how far back export_due looks (a recorder that was down catches up this far)
EVERY_S = 3600.0  # how often the recorder runs export_due (keep_exported)
KEY = "callpop_fingerprint"  # the file's Parquet key-value metadata entry
EMPTY = "0:0"  # the fingerprint of no rows
PARTIAL = ".partial"
_FINGERPRINT = "count(*)::VARCHAR || ':' || coalesce(sum(hash(t)), 0)::VARCHAR"
_one_at_a_time = threading.Lock()  # one export per process: the folder has one writer


def day_file(folder: Path, table: str, day: dt.date) -> Path:
    return Path(folder) / table / f"{day:%Y-%m-%d}.parquet"


def tables(store: Store) -> list[str]:
    """The store's history tables, in the schema's order."""
    return [t for t in store.columns if t in DAY_COLUMN]


def export_day(store: Store, folder: Path, day: dt.date) -> list[Path]:
    """Write every history table's rows of UTC ``day`` to ``folder`` (replacing its files)."""
    with _one_at_a_time:
        return _write(store, Path(folder), day, tables(store))


def export_due(store: Store, folder: Path, today: dt.date) -> list[Path]:
    """Write each finished day (from ``CATCH_UP_DAYS`` before ``today`` to yesterday) that has rows
    and whose files are missing or no longer hold its rows; nothing else. The files written."""
    folder = Path(folder)
    with _one_at_a_time:
        names = tables(store)
        _remove_partials(folder, names)
        first = today - dt.timedelta(days=CATCH_UP_DAYS)
        now = store.run(_fingerprints, names, first, today)
        held = fingerprints(folder, names)
        written: list[Path] = []
        for day in sorted({d for _, d in now}):
            stale = [t for t in names if held.get((t, day)) != now.get((t, day), EMPTY)]
            if stale:
                written += _write(store, folder, day, stale)
        return written


async def keep_exported(store: Store, folder: Path, every_s: float = EVERY_S) -> None:
    """``export_due`` now and every ``every_s`` until cancelled (the recorder runs it beside its
    recording). A failure (a full disk, the store reopening) is logged and tried again next time. A
    cancel waits for an export under way, so the store is not closed under its cursor."""
    while True:
        today = dt.datetime.now(dt.timezone.utc).date()
        work = asyncio.ensure_future(asyncio.to_thread(export_due, store, folder, today))
        try:
            written = await asyncio.shield(work)
            if written:
                days = sorted({p.stem for p in written})
                log.info("parquet: %d files written to %s (%s)", len(written), folder,
                         days[0] if len(days) == 1 else f"{len(days)} days, {days[0]} to {days[-1]}")
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await work
            raise
        except Exception as e:  # noqa: BLE001 - a full disk or a bug here must not end the recording beside it
            log.error("parquet: export to %s failed (tried again in %.0f s): %s: %s", folder, every_s,
                      type(e).__name__, (str(e).splitlines() or [""])[0])
        await asyncio.sleep(every_s)


def fingerprints(folder: Path, names: Iterable[str]) -> dict[tuple[str, dt.date], str]:
    """(table, day) -> the fingerprint the file holds; a file without one (or unreadable) is absent."""
    files = {}
    for table in names:
        for path in (Path(folder) / table).glob("*.parquet"):
            with contextlib.suppress(ValueError):  # not a file of ours
                files[str(path)] = (table, dt.date.fromisoformat(path.stem))
    if not files:
        return {}
    with duckdb.connect() as con:
        try:
            rows = _kv(con, list(files))
        except duckdb.Error:  # a damaged file: read one by one, the damaged ones are rewritten
            rows = []
            for name in files:
                with contextlib.suppress(duckdb.Error):
                    rows += _kv(con, [name])
    return {files[name]: value.decode() for name, value in rows if name in files}


def _kv(con: duckdb.DuckDBPyConnection, names: list[str]) -> list[tuple[str, bytes]]:
    return con.execute("SELECT file_name, value FROM parquet_kv_metadata(?) WHERE key = ?",
                       [names, KEY.encode()]).fetchall()


def _fingerprints(cur: duckdb.DuckDBPyConnection, names: list[str], first: dt.date, stop: dt.date
                  ) -> dict[tuple[str, dt.date], str]:
    """(table, day) -> the fingerprint of the day's rows now, for the days in [first, stop) with rows."""
    out: dict[tuple[str, dt.date], str] = {}
    for table in names:
        rows = cur.execute(f'SELECT CAST({_col(table)} AS DATE), {_FINGERPRINT} FROM "{table}" AS t '
                           f"WHERE {_between(table, first, stop)} GROUP BY 1").fetchall()
        out.update({(table, day): fp for day, fp in rows})
    return out


def _write(store: Store, folder: Path, day: dt.date, names: list[str]) -> list[Path]:
    finals = [day_file(folder, t, day) for t in names]
    partials = [p.with_name(p.name + PARTIAL) for p in finals]
    for p in partials:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.unlink(missing_ok=True)

    def copy(cur: duckdb.DuckDBPyConnection) -> None:
        cur.execute("BEGIN TRANSACTION")  # every table of the day as of one moment
        try:
            for table, partial in zip(names, partials):
                where = _between(table, day, day + dt.timedelta(days=1))
                fp = cur.execute(f'SELECT {_FINGERPRINT} FROM "{table}" AS t WHERE {where}').fetchone()[0]
                cur.execute(f'COPY (SELECT * FROM "{table}" WHERE {where} ORDER BY {_col(table)}) '
                            f"TO '{_quoted(partial)}' "
                            f"(FORMAT parquet, COMPRESSION zstd, KV_METADATA {{{KEY}: '{fp}'}})")
        finally:
            with contextlib.suppress(duckdb.Error):  # it only read; a failed statement's error is the one to see
                cur.execute("ROLLBACK")

    try:
        store.run(copy)
        for p in partials:
            _sync(p)
    except BaseException:
        for p in partials:
            p.unlink(missing_ok=True)
        raise
    for partial, final in zip(partials, finals):
        os.replace(partial, final)
    for folder_ in {p.parent for p in finals}:
        _sync(folder_)  # the renames themselves survive a crash
    return finals


def _remove_partials(folder: Path, names: Iterable[str]) -> None:
    """What an export killed half-way left (never under a final name)."""
    for table in names:
        for p in (folder / table).glob("*" + PARTIAL):
            p.unlink(missing_ok=True)


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _col(table: str) -> str:
    return f'"{DAY_COLUMN[table]}"'


def _between(table: str, first: dt.date, stop: dt.date) -> str:
    # Dates made here (never text from outside): a range on the raw column, so zone maps prune.
    return f"{_col(table)} >= TIMESTAMP '{first.isoformat()}' AND {_col(table)} < TIMESTAMP '{stop.isoformat()}'"


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")

