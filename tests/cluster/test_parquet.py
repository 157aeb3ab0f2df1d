"""The daily Parquet files (pipelines/cluster/parquet.py), from a real DuckDB file through the Store."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time

import duckdb
import pandas as pd
import pytest

from pipelines.cluster import parquet
from pipelines.demo import history as demo_history
from pipelines.cluster.parquet import DAY_COLUMN, NOT_HISTORY, day_file, export_day, export_due
from pipelines.store import Store, wait_all

D1, D2, TODAY = dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)


def at(day: dt.date, clock: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(clock))


def call(call_id: str, started: dt.datetime, **more) -> dict:
    return {"call_id": call_id, "direction": "inbound", "caller": "0501234567", "caller_e164": "+972501234567",
            "callee": "035551234", "extension": "201", "started_at": started, "status": "ringing", "provider": "sim",
            **more}


def lookup(call_id: str, started: dt.datetime, latency_ms: float, outcome: str = "found") -> dict:
    return {"call_id": call_id, "phone": "0501234567", "phone_e164": "+972501234567", "started_at": started,
            "latency_ms": latency_ms, "outcome": outcome, "http_status": 200, "total": 1, "cache": "miss",
            "deadline_ms": 1500}


def event(event_id: str, call_id: str, received: dt.datetime, kind: str = "ringing") -> dict:
    return {"event_id": event_id, "call_id": call_id, "type": kind, "direction": "inbound", "caller": "0501234567",
            "callee": "035551234", "extension": "201", "occurred_at": received - dt.timedelta(milliseconds=40),
            "received_at": received, "provider": "sim"}


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "callpop.duckdb").open()
    yield s
    s.close()


@pytest.fixture
def history(store):
    """Rows on three days: the first's last microsecond, the second's first, and today's."""
    wait_all([
        store.insert("calls", call("c1", at(D1, "09:15:00.123456"), status="ended", answered_at=at(D1, "09:15:04"),
                                   ended_at=at(D1, "09:20:00"), duration_s=300, ring_s=4, talk_s=296)),
        store.insert("calls", call("c2", at(D1, "23:59:59.999999"))),
        store.insert("calls", call("c3", at(D2, "00:00:00"), status="missed")),
        store.insert("calls", call("c4", at(TODAY, "08:00:00"))),
        store.insert("lookups", lookup("c1", at(D1, "09:15:00.2"), 212.5)),
        store.insert("lookups", lookup("c3", at(D2, "00:00:00.1"), 1500.0, "timeout")),
        store.insert("lookups", lookup("c4", at(TODAY, "08:00:00.1"), 95.25)),
        store.insert("events", event("e1", "c1", at(D1, "09:15:00.1"))),
        store.insert("events", event("e2", "c3", at(D2, "00:00:00.05"))),
        store.insert("dials", {"dial_id": "d1", "agent_id": "noa", "source": "extension", "leg_b": "0501234567",
                               "requested_at": at(D2, "10:00:00"), "outcome": "bridged", "duration_s": 61}),
    ])
    return store


def in_db(store: Store, table: str, day: dt.date, arrow: bool = False) -> pd.DataFrame:
    """The day's rows in the database, as DuckDB gives them to pandas (or, ``arrow``, as pyarrow
    does, the way pandas.read_parquet reads a file)."""
    col = DAY_COLUMN[table]
    sql = f'SELECT * FROM "{table}" WHERE {col} >= ? AND {col} < ? ORDER BY {col}'
    result = (lambda cur: cur.sql(sql, params=[day, day + dt.timedelta(days=1)]).to_arrow_table().to_pandas())
    return store.run(result) if arrow else store.query(sql, [day, day + dt.timedelta(days=1)])


def types(con, sql: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE {sql}").fetchall()]


def test_every_table_of_the_schema_is_history_with_a_day_column_or_said_not_to_be(store):
    assert set(store.columns) == set(DAY_COLUMN) | NOT_HISTORY
    nullable = dict(store.run(lambda cur: cur.execute(
        "SELECT table_name || '.' || column_name, is_nullable FROM information_schema.columns").fetchall()))
    for table, column in DAY_COLUMN.items():  # every row has its day
        assert nullable[f"{table}.{column}"] == "NO", f"{table}.{column}"


def test_export_due_writes_the_finished_days_and_each_file_reads_back_as_the_days_rows(history, tmp_path):
    out = tmp_path / "parquet"
    written = export_due(history, out, TODAY)
    assert sorted(written) == sorted(day_file(out, t, d) for t in DAY_COLUMN for d in (D1, D2))
    assert not list(out.glob(f"*/{TODAY}.parquet*"))  # today is not finished
    with duckdb.connect() as con:
        for table in ("calls", "lookups", "events", "dials"):
            for day in (D1, D2):
                path = str(day_file(out, table, day))
                pd.testing.assert_frame_equal(con.read_parquet(path).df(), in_db(history, table, day))
                pd.testing.assert_frame_equal(pd.read_parquet(path), in_db(history, table, day, arrow=True))
                assert types(con, f"SELECT * FROM read_parquet('{path}')") == \
                    history.run(types, f'SELECT * FROM "{table}"')  # TIMESTAMP, INTEGER, DOUBLE kept
        calls = con.execute(f"SELECT call_id FROM read_parquet('{out}/calls/*.parquet') ORDER BY 1").fetchall()
    assert calls == [("c1",), ("c2",), ("c3",)]  # 23:59:59.999999 is the first day's, 00:00 the second's
    c1 = pd.read_parquet(day_file(out, "calls", D1)).set_index("call_id").loc["c1"]
    assert c1.started_at == pd.Timestamp("2026-03-01 09:15:00.123456") and c1.duration_s == 300
    assert pd.read_parquet(day_file(out, "lookups", D1)).latency_ms.tolist() == [212.5]


def test_a_table_without_rows_that_day_gets_an_empty_file_with_its_columns(history, tmp_path):
    out = tmp_path / "parquet"
    export_due(history, out, TODAY)
    empty = pd.read_parquet(day_file(out, "dials", D1))
    assert empty.empty and list(empty.columns) == history.columns["dials"]
    with duckdb.connect() as con:  # a glob over the days reads, with the rows of the day that had some
        assert con.execute(f"SELECT dial_id FROM read_parquet('{out}/dials/*.parquet')").fetchall() == [("d1",)]


def test_running_again_writes_nothing_and_a_day_whose_rows_changed_is_written_again(history, tmp_path):
    out = tmp_path / "parquet"
    export_due(history, out, TODAY)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    assert export_due(history, out, TODAY) == []
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == before

    # The call that rang at 23:59:59 ends after midnight, and a late lookup of the first day is recorded.
    wait_all([history.update("calls", {"call_id": "c2"}, {"status": "ended", "ended_at": at(D2, "00:03:00")}),
              history.insert("lookups", lookup("c2", at(D1, "23:59:59.999999"), 80.0))])
    assert sorted(export_due(history, out, TODAY)) == [day_file(out, "calls", D1), day_file(out, "lookups", D1)]
    c2 = pd.read_parquet(day_file(out, "calls", D1)).set_index("call_id").loc["c2"]
    assert c2.status == "ended" and c2.ended_at == pd.Timestamp("2026-03-02 00:03:00")
    assert len(pd.read_parquet(day_file(out, "lookups", D1))) == 2
    assert export_due(history, out, TODAY) == []


def test_a_recorder_that_was_down_catches_up_back_to_the_oldest_row_within_the_cap(store, tmp_path):
    today = dt.date(2026, 6, 1)
    oldest_kept = today - dt.timedelta(days=parquet.CATCH_UP_DAYS)
    old = oldest_kept - dt.timedelta(days=1)
    wait_all([store.insert("calls", call(f"c{i}", at(day, "12:00"))) for i, day in
              enumerate([old, oldest_kept, today - dt.timedelta(days=30), today - dt.timedelta(days=1)])])
    written = export_due(store, tmp_path / "parquet", today)
    assert sorted({p.stem for p in written}) == [str(oldest_kept), str(today - dt.timedelta(days=30)),
                                                 str(today - dt.timedelta(days=1))]


def test_export_day_writes_the_day_asked_even_unfinished(history, tmp_path):
    written = export_day(history, tmp_path / "parquet", TODAY)
    assert len(written) == len(DAY_COLUMN)
    assert pd.read_parquet(day_file(tmp_path / "parquet", "calls", TODAY)).call_id.tolist() == ["c4"]


class Interleaved:
    """The store, with ``before_copy(n)`` called on the export's thread just before its n-th COPY
    (inside the export's read transaction): to write, or fail, at that very moment."""

    def __init__(self, store: Store, before_copy):
        self.store, self.before_copy, self.copies = store, before_copy, 0

    @property
    def columns(self):
        return self.store.columns

    def run(self, fn, *args):
        return self.store.run(lambda cur, *a: fn(_Cursor(cur, self), *a), *args)


class _Cursor:
    def __init__(self, cur, owner: Interleaved):
        self._cur, self._owner = cur, owner

    def execute(self, sql, *args):
        if sql.startswith("COPY"):
            self._owner.copies += 1
            self._owner.before_copy(self._owner.copies)
        return self._cur.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._cur, name)


def test_an_export_does_not_hold_the_writer_and_reads_one_moment(history, tmp_path):
    out = tmp_path / "parquet"
    committed = []

    def write_now(n):
        if n == 1:  # the export's transaction is open: a write still commits, at once
            wait_all([history.insert("calls", call("during", at(D1, "12:00")))], timeout=10)
            committed.append(history.query("SELECT count(*) AS n FROM calls WHERE call_id = 'during'").n[0])

    export_due(Interleaved(history, write_now), out, TODAY)
    assert committed == [1]
    first = sorted(pd.read_parquet(day_file(out, "calls", D1)).call_id)
    assert "during" not in first  # the export read the day as of its start
    assert export_due(history, out, TODAY) == [day_file(out, "calls", D1)]  # and the next one takes it
    assert sorted(pd.read_parquet(day_file(out, "calls", D1)).call_id) == sorted(first + ["during"])


def test_a_killed_export_never_leaves_half_a_file_under_a_final_name(history, tmp_path):
    out = tmp_path / "parquet"
    export_due(history, out, TODAY)
    whole = day_file(out, "calls", D2).read_bytes()
    day_file(out, "calls", D2).unlink()
    # A recorder killed while writing D2's calls: half a file, under the temporary name only.
    partial = day_file(out, "calls", D2).with_name(f"{D2}.parquet{parquet.PARTIAL}")
    partial.write_bytes(whole[: len(whole) // 2])
    with duckdb.connect() as con:  # readers of the folder never see it
        read = con.execute(f"SELECT call_id FROM read_parquet('{out}/calls/*.parquet')").fetchall()
    assert read == [("c1",), ("c2",)]
    assert export_due(history, out, TODAY) == [day_file(out, "calls", D2)]
    assert not partial.exists()
    assert pd.read_parquet(day_file(out, "calls", D2)).call_id.tolist() == ["c3"]


def test_a_process_killed_while_exporting_leaves_whole_files_or_none(tmp_path):
    db, out = tmp_path / "history.duckdb", tmp_path / "parquet"
    demo_history.generate(db, days=2, calls_per_day=300, seed=3, end=TODAY)
    exporter = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import datetime as dt
        from pipelines.cluster.parquet import export_day
        from pipelines.store import Store
        store = Store({str(db)!r}).open()
        while True:  # rewrites every day's files again and again, until killed
            for day in ("2026-02-28", "{D1}", "{D2}"):
                export_day(store, {str(out)!r}, dt.date.fromisoformat(day))
        """)], env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        deadline = time.monotonic() + 30
        def caught() -> bool:  # killed while rewriting files that were written before
            return day_file(out, "calls", D2).exists() and bool(list(out.glob(f"*/*{parquet.PARTIAL}")))
        while not caught() and exporter.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
    finally:
        exporter.send_signal(signal.SIGKILL)
        exporter.wait(10)
    assert list(out.glob(f"*/*{parquet.PARTIAL}")), "the exporter was not caught writing"
    assert len(list(out.glob("*/*.parquet"))) >= 2 * len(DAY_COLUMN)
    store = Store(db).open()
    try:
        for path in sorted(out.glob("*/*.parquet")):  # each whole: the rows of its day
            day = dt.date.fromisoformat(path.stem)
            pd.testing.assert_frame_equal(pd.read_parquet(path), in_db(store, path.parent.name, day, arrow=True))
        export_due(store, out, TODAY)
    finally:
        store.close()
    assert not list(out.glob(f"*/*{parquet.PARTIAL}"))


def test_an_export_that_fails_half_way_leaves_the_files_as_they_were(history, tmp_path):
    out = tmp_path / "parquet"
    export_due(history, out, TODAY)
    wait_all([history.insert(t, row) for t, row in (("calls", call("late", at(D1, "13:00"))),
                                                  ("lookups", lookup("late", at(D1, "13:00:00.1"), 50.0)))])
    before = {p: p.read_bytes() for p in out.rglob("*.parquet")}

    def fail(n):
        if n == 2:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        export_due(Interleaved(history, fail), out, TODAY)
    # No new file, no partial one, the old ones whole.
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.stem for p in export_due(history, out, TODAY)) == [str(D1), str(D1)]


def test_a_damaged_file_is_written_again(history, tmp_path):
    out = tmp_path / "parquet"
    export_due(history, out, TODAY)
    day_file(out, "events", D1).write_bytes(b"not parquet")
    assert export_due(history, out, TODAY) == [day_file(out, "events", D1)]
    assert pd.read_parquet(day_file(out, "events", D1)).event_id.tolist() == ["e1"]


def test_keep_exported_exports_at_once_and_stops_when_cancelled(store, tmp_path):
    yesterday = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    wait_all([store.insert("calls", call("y", at(yesterday, "12:00")))])
    path = day_file(tmp_path / "parquet", "calls", yesterday)

    async def run():
        task = asyncio.get_running_loop().create_task(parquet.keep_exported(store, tmp_path / "parquet"))
        deadline = time.monotonic() + 20
        while not path.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert pd.read_parquet(path).call_id.tolist() == ["y"]
    assert not [p for p in (tmp_path / "parquet").rglob("*") if p.name.endswith(parquet.PARTIAL)]
    assert os.listdir(tmp_path / "parquet")  # written, and the store closes after (fixture) with no export running


def test_keep_exported_says_why_an_export_failed_and_goes_on(store, tmp_path, caplog):
    wait_all([store.insert("calls", call("y", at(dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1),
                                                 "12:00")))])
    not_a_folder = tmp_path / "parquet"
    not_a_folder.write_text("a file where the folder should be")

    async def run():
        task = asyncio.get_running_loop().create_task(parquet.keep_exported(store, not_a_folder, every_s=0.05))
        deadline = time.monotonic() + 20
        while len([r for r in caplog.records if "export to" in r.getMessage()]) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert not task.done()  # tried again, still running
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level("ERROR", logger="callpop.parquet"):
        asyncio.run(run())
    failed = [r.getMessage() for r in caplog.records if "export to" in r.getMessage()]
    assert len(failed) >= 2 and "NotADirectoryError" in failed[0]
