"""The database file: who holds it, and its schema on a new file or on one an older release made."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import duckdb

from .resources import data_file

log = logging.getLogger("callpop.store")
SCHEMA = data_file("schema.sql")
CONFIG = {"checkpoint_threshold": "1TB"}  # no checkpoint inside a COMMIT: the writer runs them


def in_use(path: Path) -> str:
    """'' when this process may open the file for writing, else who holds it (DuckDB's lock)."""
    if str(path) == ":memory:" or not Path(path).exists():
        return ""
    try:
        duckdb.connect(str(path), config=CONFIG).close()
    except duckdb.IOException as e:
        if "lock" not in str(e).lower():
            raise
        holder = re.search(r"PID (\d+)", str(e))
        return (f"the database {path} is in use by PID {holder.group(1) if holder else '?'} (another hub?): stop it, "
                f"or give this one another file with CALLPOP_DB_PATH")
    return ""


def migrate(con: duckdb.DuckDBPyConnection, ddl: str) -> None:
    """The schema, on a new file or one made by an older release: tables only grow, and the
    unique key on events.event_id arrives once older duplicates are folded into one row."""
    wanted = duckdb.connect(":memory:")
    try:
        wanted.execute(ddl)
        want = table_columns(wanted, types=True)
        defaults = {(t, c): d for t, c, d in wanted.execute(
            "SELECT table_name, column_name, column_default FROM duckdb_columns() WHERE column_default "
            "IS NOT NULL").fetchall()}
    finally:
        wanted.close()
    have = table_columns(con, types=True)
    for table, columns in want.items():
        if table not in have:
            continue
        for name, kind in columns:
            if name not in dict(have[table]):
                log.info("adding column %s.%s to an older database", table, name)
                default = defaults.get((table, name))  # older rows get it (rejects.count = 1)
                con.execute(f'ALTER TABLE "{table}" ADD COLUMN "{name}" {kind}'
                            + (f" DEFAULT {default}" if default is not None else ""))
    if "events" in have and not con.execute("SELECT 1 FROM duckdb_indexes() WHERE index_name = "
                                             "'events_event_id'").fetchone():
        doubled = con.execute("SELECT count(*) - count(DISTINCT event_id) FROM events").fetchone()[0]
        if doubled:
            log.warning("%d events were recorded twice by an older release: keeping the first of each", doubled)
            con.execute("DELETE FROM events WHERE rowid NOT IN (SELECT min(rowid) FROM events GROUP BY event_id)")
    con.execute(ddl)


def table_columns(con: duckdb.DuckDBPyConnection, types: bool = False) -> dict[str, list]:
    """Table -> its column names (or (name, type) pairs), in order."""
    out: dict[str, list] = {}
    for table, name, kind in con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position").fetchall():
        out.setdefault(table, []).append((name, kind) if types else name)
    return out
