"""The DuckDB owner: group commit, one bad row never loses the others, checkpoint on close."""

import time
from datetime import datetime

import duckdb
import pytest

from pipelines.store import Store, wait_all

T = datetime(2026, 11, 25, 10, 0, 0)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "t.duckdb").open()
    yield s
    s.close()


def test_writes_commit_in_groups_and_updates_apply_in_order(store):
    futures = [store.insert("calls", {"call_id": f"c{i}", "started_at": T, "status": "ringing"}) for i in range(2000)]
    futures.append(store.update("calls", {"call_id": "c7", "started_at": T}, {"status": "answered", "answered_at": T}))
    futures.append(store.update("calls", {"call_id": "c7", "started_at": T}, {"status": "ended", "ended_at": T}))
    wait_all(futures)
    assert store.commits < 2000 / 10  # grouped, not one transaction per row
    row = store.query("SELECT status, answered_at, ended_at FROM calls WHERE call_id = 'c7'").iloc[0]
    assert row.status == "ended" and row.answered_at == T and row.ended_at == T
    assert store.query("SELECT count(*) AS n FROM calls").n[0] == 2000


def test_a_bad_row_fails_alone(store):
    good1 = store.insert("calls", {"call_id": "a", "started_at": T})
    bad = store.insert("calls", {"call_id": "b", "started_at": "not a time"})
    good2 = store.insert("calls", {"call_id": "c", "started_at": T})
    wait_all([good1, good2])
    with pytest.raises(duckdb.Error):
        bad.result(5)
    assert sorted(store.query("SELECT call_id FROM calls").call_id) == ["a", "c"]


def test_unknown_tables_and_columns_are_refused_before_queueing(store):
    with pytest.raises(ValueError, match="unknown table"):
        store.insert("nope", {})
    with pytest.raises(ValueError, match="unknown columns"):
        store.insert("calls", {"call_id": "x", "started_at": T, "colour": "red"})


def test_close_checkpoints_and_the_file_reopens_read_only(tmp_path):
    path = tmp_path / "t.duckdb"
    s = Store(path).open()
    wait_all([s.insert("events", {"event_id": "e1", "call_id": "c", "type": "ringing", "received_at": T})])
    s.close()
    assert not (tmp_path / "t.duckdb.wal").exists()
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT event_id FROM events").fetchall() == [("e1",)]


def test_a_database_from_an_older_release_gets_the_new_columns(tmp_path):
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:  # an early calls table, with a row in it
        con.execute("CREATE TABLE calls (call_id VARCHAR NOT NULL, started_at TIMESTAMP NOT NULL, status VARCHAR)")
        con.execute("INSERT INTO calls VALUES ('old', TIMESTAMP '2026-01-01 10:00:00', 'ended')")
    s = Store(path).open()
    try:
        wait_all([s.insert("calls", {"call_id": "new", "started_at": T, "status": "ringing", "answered_by": "201"})])
        rows = s.query("SELECT call_id, answered_by FROM calls ORDER BY call_id")
        assert rows.call_id.tolist() == ["new", "old"] and rows.answered_by[0] == "201"
    finally:
        s.close()


def test_rows_a_client_waits_for_commit_within_a_fifth_of_the_window_the_rest_batch(tmp_path):
    s = Store(tmp_path / "w.duckdb", commit_window_ms=1000).open()
    try:
        s.insert("calls", {"call_id": "first", "started_at": T}).result(5)  # after a quiet spell: at once
        background = [s.insert("calls", {"call_id": f"b{i}", "started_at": T}) for i in range(20)]
        started, commits = time.monotonic(), s.commits
        for i in range(5):  # a PBX posting one event at a time, each waiting for its 202
            s.insert("events", {"event_id": f"e{i}", "call_id": "c", "type": "ringing", "received_at": T},
                     awaited=True).result(5)
        assert time.monotonic() - started < 5 * 1.0 / 2  # not held to the 1 s window each time
        wait_all(background)
        assert s.commits - commits <= 5 + 1  # the 20 background rows shared one commit
        assert s.query("SELECT count(*) AS n FROM calls").n[0] == 21
    finally:
        s.close()
