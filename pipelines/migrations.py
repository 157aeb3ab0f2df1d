"""Upgrading a database made by an older release to this release's schema (``data/schema.sql``).

Two kinds of change, applied in this order each time the store opens a file:

1. **Growth**, found by comparing the file with the schema: a column the schema has and the file
   lacks is added (with its default, so older rows get it). Tables only grow, so most releases
   need nothing else, and a new table comes from the schema's ``CREATE TABLE IF NOT EXISTS``.
2. **Numbered steps** (``STEPS``) for what growth cannot say: folding data, reshaping rows.
   Each runs once per file, in order, in one transaction with its row in ``schema_migrations``
   (version, name, when), so a step interrupted by a crash runs again whole. A new file gets the
   schema as it is now and every step recorded as done: the schema already says what they did.

Never edit a released step; add the next number. ``tests/test_migrations.py`` upgrades a file
made from each released schema (kept in ``tests/fixtures/schemas/``) and compares it with a new one.
"""

from __future__ import annotations

import logging
from typing import Callable

import duckdb

log = logging.getLogger("callpop.store")

LEDGER = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER NOT NULL PRIMARY KEY,
    name       VARCHAR NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
)"""


def _fold_duplicate_events(con: duckdb.DuckDBPyConnection) -> None:
    """Releases before the unique key on events.event_id could record an event twice: keep the
    first of each, so the key (created by the schema right after) can be built."""
    if "events" not in columns(con) or con.execute(
            "SELECT 1 FROM duckdb_indexes() WHERE index_name = 'events_event_id'").fetchone():
        return
    doubled = con.execute("SELECT count(*) - count(DISTINCT event_id) FROM events").fetchone()[0]
    if doubled:
        log.warning("%d events were recorded twice by an older release: keeping the first of each", doubled)
        con.execute("DELETE FROM events WHERE rowid NOT IN (SELECT min(rowid) FROM events GROUP BY event_id)")


# (version, what it does, the step): run on files whose ledger lacks the version.
STEPS: tuple[tuple[int, str, Callable[[duckdb.DuckDBPyConnection], None]], ...] = (
    (1, "events: fold duplicates before the unique key on event_id", _fold_duplicate_events),
)
LATEST = STEPS[-1][0]


def upgrade(con: duckdb.DuckDBPyConnection, ddl: str) -> list[int]:
    """Bring the file behind ``con`` to the schema ``ddl``; the step versions that ran."""
    fresh = not _tables(con)
    if not fresh:  # a new file gets the schema whole below
        _grow(con, ddl)
    con.execute(LEDGER)
    done = {v for (v,) in con.execute("SELECT version FROM schema_migrations").fetchall()}
    ran = []
    for version, name, step in STEPS:
        if version in done:
            continue
        con.execute("BEGIN")
        try:
            if not fresh:
                log.info("upgrading the database: step %d, %s", version, name)
                step(con)
            con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        if not fresh:
            ran.append(version)
    con.execute(ddl)
    return ran


def _grow(con: duckdb.DuckDBPyConnection, ddl: str) -> None:
    """Add the columns the schema has and the file's tables lack (older rows get the default)."""
    wanted = duckdb.connect(":memory:")
    try:
        wanted.execute(ddl)
        want = columns(wanted)
        defaults = {(t, c): d for t, c, d in wanted.execute(
            "SELECT table_name, column_name, column_default FROM duckdb_columns() WHERE column_default "
            "IS NOT NULL").fetchall()}
    finally:
        wanted.close()
    have = columns(con)
    for table, cols in want.items():
        if table not in have:
            continue  # a new table: the schema's CREATE TABLE IF NOT EXISTS makes it
        for name, kind in cols:
            if name not in dict(have[table]):
                log.info("adding column %s.%s to an older database", table, name)
                default = defaults.get((table, name))  # older rows get it (rejects.count = 1)
                con.execute(f'ALTER TABLE "{table}" ADD COLUMN "{name}" {kind}'
                            + (f" DEFAULT {default}" if default is not None else ""))


def columns(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str]]]:
    """Table -> [(column, type)] in order, for the tables of the connection's own database."""
    found: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' AND table_catalog = current_database() "
            "ORDER BY table_name, ordinal_position").fetchall():
        found.setdefault(table, []).append((column, kind))
    return found


def _tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    return list(columns(con))
