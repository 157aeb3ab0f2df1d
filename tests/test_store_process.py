"""The store in a process of its own: reads and their errors cross the pipe, what cannot cross
fails in the caller, and a writer whose hub died still writes what it was sent and frees the file.
(tests/test_store.py runs the store's own behaviour through it too.)"""

import os
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from datetime import datetime

import duckdb
import pytest

from pipelines.store import wait_all
from pipelines.store_process import WRITER_NICE, StoreProcess

T = datetime(2026, 11, 25, 10, 0, 0)


def pid_and_count(con, table):
    return os.getpid(), con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.fixture
def store(tmp_path):
    s = StoreProcess(tmp_path / "p.duckdb").open()
    yield s
    s.close()


def test_reads_run_in_the_writer_process_and_see_what_is_committed(store):
    wait_all([store.insert("calls", {"call_id": f"c{i}", "started_at": T}) for i in range(3)])
    pid, n = store.run(pid_and_count, "calls")
    assert pid != os.getpid() and pid == store._proc.pid and n == 3
    # and it yields the CPU to the hub's event loop
    assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + WRITER_NICE)
    assert store.query("SELECT call_id FROM calls WHERE call_id = ?", ["c1"]).call_id.tolist() == ["c1"]


def test_a_failed_read_raises_its_own_exception_in_the_caller_and_the_store_goes_on(store):
    with pytest.raises(duckdb.CatalogException, match="nope"):
        store.query("SELECT * FROM nope")
    with pytest.raises((AttributeError, TypeError, ValueError)):  # a local function cannot cross the pipe
        store.run(lambda con: 1)
    wait_all([store.insert("calls", {"call_id": "after", "started_at": T})])
    assert store.query("SELECT count(*) AS n FROM calls").n[0] == 1


def test_a_writer_whose_hub_died_writes_what_it_was_sent_and_frees_the_file(tmp_path):
    path = tmp_path / "orphan.duckdb"
    # A hub that queues 50 rows inside a one-minute commit window and is then killed outright.
    script = textwrap.dedent(f"""
        import os, signal
        from datetime import datetime
        from pipelines.store_process import WRITER_NICE, StoreProcess
        s = StoreProcess({str(path)!r}, commit_window_ms=60_000).open()
        s.insert("calls", {{"call_id": "first", "started_at": datetime(2026, 1, 1)}}).result(10)  # commits at once
        for i in range(50):
            s.insert("calls", {{"call_id": f"c{{i}}", "started_at": datetime(2026, 1, 1)}})
        assert s.query("SELECT count(*) AS n FROM calls").n[0] == 1  # sent after the rows: they crossed
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    hub = subprocess.run([sys.executable, "-c", script], cwd=os.getcwd(), capture_output=True, timeout=60)
    assert hub.returncode == -9, hub.stderr.decode()
    with closing(StoreProcess(path).open()) as s:  # waits for the orphan to finish with the file
        assert s.query("SELECT count(*) AS n FROM calls").n[0] == 51


def test_a_writer_that_dies_fails_what_waits_on_it_instead_of_hanging(tmp_path):
    s = StoreProcess(tmp_path / "d.duckdb", commit_window_ms=60_000).open()
    s.insert("calls", {"call_id": "first", "started_at": T}).result(10)
    waiting = s.insert("calls", {"call_id": "second", "started_at": T})
    s._proc.kill()
    with pytest.raises(RuntimeError, match="store writer ended"):
        waiting.result(10)
    with pytest.raises(RuntimeError, match="store writer ended"):
        s.insert("calls", {"call_id": "third", "started_at": T}).result(1)
    with pytest.raises(RuntimeError, match="store writer ended"):
        s.query("SELECT 1")
    s.close()


def test_a_value_that_cannot_cross_fails_its_own_write_only(store):
    good = store.insert("calls", {"call_id": "good", "started_at": T})
    bad = store.insert("calls", {"call_id": "bad", "started_at": T, "status": lambda: "ringing"})
    also_good = store.insert("calls", {"call_id": "also-good", "started_at": T})
    wait_all([good, also_good])
    with pytest.raises(ValueError, match="cannot be stored"):
        bad.result(5)
    assert sorted(store.query("SELECT call_id FROM calls").call_id) == ["also-good", "good"]


def test_writes_wait_the_send_linger_and_what_queues_meanwhile_goes_with_them(tmp_path):
    with closing(StoreProcess(tmp_path / "l.duckdb", send_linger_ms=500).open()) as s:
        settled: dict[str, float] = {}
        started = time.monotonic()
        first = s.insert("calls", {"call_id": "first", "started_at": T})
        first.add_done_callback(lambda f: settled.setdefault("first", time.monotonic()))
        time.sleep(0.2)
        assert not first.done()  # still held in the hub
        second = s.insert("calls", {"call_id": "second", "started_at": T})
        second.add_done_callback(lambda f: settled.setdefault("second", time.monotonic()))
        wait_all([first, second])
        assert settled["first"] - started >= 0.5
        # The second did not wait a linger of its own: it left with the first.
        assert settled["second"] - settled["first"] < 0.15
        assert sorted(s.query("SELECT call_id FROM calls").call_id) == ["first", "second"]
