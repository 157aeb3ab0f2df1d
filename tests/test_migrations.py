"""A database made by a released schema upgrades to this release's: the same tables, columns,
types and keys as a new file, every row kept, each numbered step run once."""

from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from pipelines import migrations
from pipelines.store import Store, wait_all
from pipelines.store_schema import SCHEMA

RELEASED = sorted((Path(__file__).parent / "fixtures" / "schemas").glob("*.sql"))
T = datetime(2026, 11, 25, 10, 0, 0)


def shape(con) -> tuple:
    indexes = sorted(con.execute("SELECT table_name, index_name, is_unique FROM duckdb_indexes() "
                                 "WHERE database_name = current_database()").fetchall())
    defaults = sorted(con.execute("SELECT table_name, column_name, column_default, is_nullable FROM duckdb_columns() "
                                  "WHERE database_name = current_database()").fetchall())
    return migrations.columns(con), indexes, defaults


@pytest.fixture
def fresh(tmp_path):
    s = Store(tmp_path / "fresh.duckdb").open()
    s.close()
    with duckdb.connect(str(tmp_path / "fresh.duckdb"), read_only=True) as con:
        return shape(con)


def test_there_is_a_released_schema_to_upgrade_from():
    assert RELEASED and all(p.read_text().strip() for p in RELEASED)


@pytest.mark.parametrize("released", RELEASED, ids=lambda p: p.stem)
def test_a_file_from_a_released_schema_upgrades_cleanly(tmp_path, fresh, released):
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(released.read_text())
        con.execute("INSERT INTO events (event_id, call_id, type, received_at) VALUES ('e1', 'c1', 'ringing', ?)", [T])
        con.execute("INSERT INTO calls (call_id, started_at, status) VALUES ('c1', ?, 'ended')", [T])
        con.execute("INSERT INTO rejects (logged_at, source, reason) VALUES (?, '/api/events', 'unauthorized')", [T])
    s = Store(path).open()
    try:
        wait_all([s.insert("events", {"event_id": "e2", "call_id": "c2", "type": "ringing", "received_at": T})])
        assert s.query("SELECT event_id FROM events ORDER BY 1").event_id.tolist() == ["e1", "e2"]
        assert s.query("SELECT status FROM calls").status.tolist() == ["ended"]
        assert s.query("SELECT sum(count) AS n FROM rejects").n[0] == 1
        ledger = s.query("SELECT version FROM schema_migrations ORDER BY 1").version.tolist()
        assert ledger == [v for v, _, _ in migrations.STEPS]
    finally:
        s.close()
    with duckdb.connect(str(path)) as con:
        assert shape(con) == fresh
        assert migrations.upgrade(con, SCHEMA.read_text()) == []


def test_a_step_runs_once_and_not_on_a_new_file(tmp_path, monkeypatch):
    ran = []
    steps = migrations.STEPS + ((migrations.LATEST + 1, "test step", lambda con: ran.append(1)),)
    monkeypatch.setattr(migrations, "STEPS", steps)
    Store(tmp_path / "new.duckdb").open().close()
    assert ran == []  # a new file is made as the schema says: nothing to reshape
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(RELEASED[0].read_text())
    for _ in range(2):
        Store(path).open().close()
    assert ran == [1]
    with duckdb.connect(str(path)) as con:
        assert con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == migrations.LATEST + 1


def test_a_step_that_fails_leaves_the_file_as_it_was_and_runs_again(tmp_path, monkeypatch):
    def broken(con):
        con.execute("DELETE FROM events")
        raise RuntimeError("half done")
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(RELEASED[0].read_text())
        con.execute("INSERT INTO events (event_id, call_id, type, received_at) VALUES ('e1', 'c1', 'ringing', ?)", [T])
    monkeypatch.setattr(migrations, "STEPS", migrations.STEPS + ((migrations.LATEST + 1, "broken", broken),))
    with pytest.raises(RuntimeError, match="half done"):
        Store(path).open()
    with duckdb.connect(str(path)) as con:
        assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 1
        assert con.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == migrations.LATEST
