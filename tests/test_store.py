"""The DuckDB owner: group commit, a write's future resolves once committed, one bad row never
loses the others, events unique by id, and a full disk (a real one) holds writes until space
returns instead of losing them."""

import time
from datetime import datetime

import duckdb
import pytest

from pipelines.store import Store, StoreUnavailable, is_duplicate, wait_all
from tests.support import wait_until
from tests.support.disk import small_disk

T = datetime(2026, 11, 25, 10, 0, 0)


def event(i, call="c"):
    return {"event_id": f"e{i}", "call_id": call, "type": "ringing", "received_at": T}


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


def test_a_resolved_write_is_in_the_file(tmp_path):
    path = tmp_path / "d.duckdb"
    s = Store(path, commit_window_ms=50).open()
    try:
        s.insert("events", event(1)).result(5)
        # Committed means durable: another connection to the file (its write-ahead log) sees it.
        assert s.query("SELECT event_id FROM events").event_id.tolist() == ["e1"]
    finally:
        s.close()


def test_writes_made_together_share_one_transaction(store):
    with store.together():
        first = store.insert("events", event(1))
        second = store.insert("calls", {"call_id": "c", "started_at": T})
    first.result(5)
    assert second.done()  # resolved by the same commit
    assert store.query("SELECT count(*) AS n FROM calls").n[0] == 1


def test_an_event_already_stored_is_refused_with_its_rows_and_the_rest_commits(store):
    wait_all([store.insert("events", event(1))])
    with store.together():  # a copy of e1 and the row it would make
        again = store.insert("events", {**event(1), "call_id": "other"})
        its_row = store.insert("calls", {"call_id": "other", "started_at": T})
    other = store.insert("events", event(2))
    for refused in (again, its_row):
        with pytest.raises(duckdb.ConstraintException) as e:
            refused.result(5)
        assert is_duplicate(e.value)
    wait_all([other])
    rows = store.query("SELECT event_id, call_id FROM events ORDER BY event_id")
    assert rows.values.tolist() == [["e1", "c"], ["e2", "c"]]  # the first copy is kept
    assert store.query("SELECT count(*) AS n FROM calls").n[0] == 0  # and nothing made from the copy


def test_a_bad_row_fails_alone(store):
    good1 = store.insert("calls", {"call_id": "a", "started_at": T})
    bad = store.insert("calls", {"call_id": "b", "started_at": "not a time"})
    good2 = store.insert("calls", {"call_id": "c", "started_at": T})
    wait_all([good1, good2])
    with pytest.raises(duckdb.Error):
        bad.result(5)
    assert sorted(store.query("SELECT call_id FROM calls").call_id) == ["a", "c"]
    assert store.state == "ok"  # the data's fault, not the disk's


def test_unknown_tables_and_columns_are_refused_before_queueing(store):
    with pytest.raises(ValueError, match="unknown table"):
        store.insert("nope", {})
    with pytest.raises(ValueError, match="unknown columns"):
        store.insert("calls", {"call_id": "x", "started_at": T, "colour": "red"})


def test_close_checkpoints_and_the_file_reopens_read_only(tmp_path):
    path = tmp_path / "t.duckdb"
    s = Store(path).open()
    wait_all([s.insert("events", event(1))])
    s.close()
    assert not (tmp_path / "t.duckdb.wal").exists()
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT event_id FROM events").fetchall() == [("e1",)]


def test_a_database_from_an_older_release_gets_the_new_columns_and_the_unique_key(tmp_path):
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:  # early tables, an event recorded twice by the old journal
        con.execute("CREATE TABLE calls (call_id VARCHAR NOT NULL, started_at TIMESTAMP NOT NULL, status VARCHAR)")
        con.execute("INSERT INTO calls VALUES ('old', TIMESTAMP '2026-01-01 10:00:00', 'ended')")
        con.execute("CREATE TABLE events (event_id VARCHAR NOT NULL, call_id VARCHAR NOT NULL, type VARCHAR NOT NULL,"
                    " received_at TIMESTAMP NOT NULL)")
        con.execute("INSERT INTO events VALUES ('e1', 'c', 'ringing', TIMESTAMP '2026-01-01 10:00:00'), "
                    "('e1', 'c', 'ringing', TIMESTAMP '2026-01-01 10:00:01')")
    s = Store(path).open()
    try:
        wait_all([s.insert("calls", {"call_id": "new", "started_at": T, "status": "ringing", "answered_by": "201"}),
                  s.insert("events", event(2))])
        rows = s.query("SELECT call_id, answered_by FROM calls ORDER BY call_id")
        assert rows.call_id.tolist() == ["new", "old"] and rows.answered_by[0] == "201"
        assert s.query("SELECT event_id FROM events ORDER BY event_id").event_id.tolist() == ["e1", "e2"]
    finally:
        s.close()


def test_a_full_disk_holds_the_writes_and_they_land_once_space_returns(tmp_path):
    disk = small_disk(tmp_path / "disk")
    s = Store(disk.path / "f.duckdb", queue_max=150).open()
    try:
        wait_all([s.insert("events", event(0))])
        disk.fill()
        held = [s.insert("events", event(i)) for i in range(1, 100)]
        assert wait_until(lambda: s.state == "degraded")
        assert "No space left" in s.problem and s.accepting() == ""  # held, not refused: memory has room
        held += [s.insert("events", event(i)) for i in range(100, 200)]
        assert "writes waiting for the disk (" in s.accepting()  # now too many: new events are refused
        time.sleep(0.5)  # retried meanwhile (with backoff), never given up
        assert not any(f.done() for f in held)
        assert s.query("SELECT count(*) AS n FROM events").n[0] == 1  # readers still answer
        disk.free()
        wait_all(held, timeout=20)  # by itself: nobody restarts anything
        assert s.state == "ok" and s.accepting() == ""
        assert s.query("SELECT count(*) AS n FROM events").n[0] == 200
        wait_all([s.insert("events", event(500))])  # and it goes on writing
    finally:
        s.close()
        disk.unmount()


def test_a_checkpoint_that_fails_on_a_full_disk_loses_no_committed_row(tmp_path):
    disk = small_disk(tmp_path / "disk", size_mb=8)
    path = disk.path / "c.duckdb"
    s = Store(path, checkpoint_bytes=64 << 10).open()  # fold the log often: a checkpoint will hit the full disk
    committed: list[int] = []
    try:
        big = "x" * 2000
        i = 0
        disk.fill(leave=400 << 10)
        while disk.free_bytes() > 0 or not s.problem:
            batch = [s.insert("events", {**event(i + k), "caller": big}) for k in range(50)]
            try:
                wait_all(batch, timeout=3)
            except TimeoutError:
                break  # the disk refuses: these stay held
            committed += range(i, i + 50)
            i += 50
        assert wait_until(lambda: s.state == "degraded")
        disk.free()
        assert wait_until(lambda: s.state == "ok", timeout=20)  # also with no write after the disk came back
        wait_all(batch, timeout=20)
        s.close()
        with duckdb.connect(str(path), read_only=True) as con:
            stored = {r[0] for r in con.execute("SELECT event_id FROM events").fetchall()}
    finally:
        s.close()
        disk.unmount()
    assert {f"e{n}" for n in committed} <= stored and len(stored) == i + 50


def test_a_store_that_cannot_open_its_file_says_why(tmp_path):
    (tmp_path / "dir.duckdb").mkdir()
    with pytest.raises(duckdb.Error):
        Store(tmp_path / "dir.duckdb").open()


def test_reads_of_a_closed_store_are_unavailable_not_a_crash(tmp_path):
    s = Store(tmp_path / "r.duckdb").open()
    s.close()
    with pytest.raises(StoreUnavailable):
        s.query("SELECT 1")
