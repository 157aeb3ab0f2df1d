"""The DuckDB owner: group commit, one bad row never loses the others, checkpoint on close.
The tests of ``store`` run twice: on ``Store`` itself and through ``StoreProcess`` (the hub's
default: the same store in a process of its own), which must behave alike."""

import json
import time
from datetime import datetime

import duckdb
import pytest

from pipelines.store import Store, wait_all
from pipelines.store_process import StoreProcess

T = datetime(2026, 11, 25, 10, 0, 0)


@pytest.fixture(params=[Store, StoreProcess])
def kind(request):
    return request.param


@pytest.fixture
def store(tmp_path, kind):
    s = kind(tmp_path / "t.duckdb").open()
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


def test_close_checkpoints_and_the_file_reopens_read_only(tmp_path, kind):
    path = tmp_path / "t.duckdb"
    s = kind(path).open()
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


def test_a_durable_row_is_acknowledged_once_in_the_journal_without_waiting_for_the_window(tmp_path, kind):
    s = kind(tmp_path / "w.duckdb", commit_window_ms=1000).open()
    try:
        s.insert("calls", {"call_id": "first", "started_at": T}).result(5)  # after a quiet spell: at once
        background = [s.insert("calls", {"call_id": f"b{i}", "started_at": T}) for i in range(20)]
        started, commits = time.monotonic(), s.commits
        for i in range(5):  # a PBX posting one event at a time, each waiting for its 202
            s.insert("events", {"event_id": f"e{i}", "call_id": "c", "type": "ringing", "received_at": T},
                     durable=True).result(5)
        assert time.monotonic() - started < 0.5  # not held to the 1 s window
        journal = tmp_path / "w.duckdb.journal"
        lines = b"".join(p.read_bytes() for p in journal.glob("*.jsonl")).splitlines()
        assert [json.loads(line)["r"]["event_id"] for line in lines] == [f"e{i}" for i in range(5)]
        assert s.commits == commits  # DuckDB has not committed them yet
        wait_all(background)
        assert s.commits - commits == 1  # the 20 background rows and the 5 events shared one commit
        assert s.query("SELECT count(*) AS n FROM events").n[0] == 5
    finally:
        s.close()
    assert not list(journal.glob("*.jsonl"))  # a clean close leaves nothing to replay


def wait_until(predicate, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_durable_rows_only_for_tables_with_a_key(store):
    with pytest.raises(ValueError, match="no durable inserts"):
        store.insert("calls", {"call_id": "x", "started_at": T}, durable=True)


def test_a_full_segment_is_removed_once_duckdb_holds_its_rows(tmp_path):
    s = Store(tmp_path / "r.duckdb", commit_window_ms=0)
    s._journal.segment_bytes = 400  # a few lines a segment
    s.open()
    try:
        for i in range(30):
            s.insert("events", {"event_id": f"e{i}", "call_id": "c", "type": "ringing", "received_at": T},
                     durable=True).result(5)
        journal = tmp_path / "r.duckdb.journal"
        # The acks came from the journal; DuckDB commits just after. Once it holds every row,
        # only the segment being written is left.
        assert wait_until(lambda: s.query("SELECT count(*) AS n FROM events").n[0] == 30)
        assert wait_until(lambda: len(list(journal.glob("*.jsonl"))) == 1)
    finally:
        s.close()


def test_a_killed_run_is_replayed_from_the_journal_once_and_a_cut_line_is_ignored(tmp_path):
    path = tmp_path / "k.duckdb"
    s = Store(path, commit_window_ms=0).open()
    wait_all([s.insert("events", {"event_id": "e0", "call_id": "c", "type": "ringing", "received_at": T})])
    s.close()
    # What a run killed after its 202s and before its commit leaves: lines DuckDB does not hold
    # (one it does, as when the kill fell between the commit and the segment's removal) and a
    # last line cut short by the kill.
    journal = tmp_path / "k.duckdb.journal"
    journal.mkdir(exist_ok=True)
    lines = [{"t": "events", "r": {"event_id": f"e{i}", "call_id": "c", "type": "ringing",
                                   "received_at": T.replace(second=i).isoformat(), "occurred_at": None}}
             for i in range(3)]
    (journal / "00000007.jsonl").write_bytes(b"".join(json.dumps(x).encode() + b"\n" for x in lines)
                                             + b'{"t": "events", "r": {"event_')
    s = Store(path).open()
    try:
        rows = s.query("SELECT event_id, received_at FROM events ORDER BY event_id")
        assert rows.event_id.tolist() == ["e0", "e1", "e2"]  # e0 once, e1 and e2 replayed
        assert rows.received_at[2] == T.replace(second=2)  # a timestamp again, not text
        assert [p.name for p in journal.glob("*.jsonl")] == ["00000008.jsonl"]  # the old one is gone
    finally:
        s.close()
    s = Store(path).open()  # and a second start replays nothing
    try:
        assert s.query("SELECT count(*) AS n FROM events").n[0] == 3
    finally:
        s.close()


def test_a_journal_that_cannot_write_fails_the_durable_insert_instead_of_hanging(tmp_path):
    import os

    s = Store(tmp_path / "f.duckdb", commit_window_ms=0).open()
    try:
        os.close(s._journal._fd)  # the disk goes away under the journal
        written = s.insert("events", {"event_id": "lost", "call_id": "c", "type": "ringing", "received_at": T},
                           durable=True)
        with pytest.raises(OSError):
            written.result(5)
        wait_all([s.insert("calls", {"call_id": "still-writing", "started_at": T})])
        assert s.query("SELECT count(*) AS n FROM events").n[0] == 0  # never acknowledged, never stored
    finally:
        s._journal._fd = os.open(os.devnull, os.O_WRONLY)  # let close() seal something
        s.close()
