"""A 202 means committed: a real hub on a real full disk answers 503 instead of acknowledging
what it cannot write, keeps popping, and once space returns takes up by itself with every event
once; an event's time outside the hub's window is a 422, not a crash."""

from datetime import datetime, timedelta, timezone

import duckdb
import httpx

from tests.support.disk import small_disk
from tests.support.hub import TOKENS, Agent, post_event, wait_rows


def event(i, call="full-1", kind="ringing", **extra):
    return dict(id=f"full-e{i}", call_id=call, type=kind, caller="0722776772", extension="201", **extra)


def test_a_full_disk_is_503_never_a_lost_202_and_everything_lands_once_space_returns(start_hub, tmp_path):
    disk = small_disk(tmp_path / "disk")
    try:
        hub = start_hub(db_path=str(disk.path / "callpop.duckdb"))
        noa = Agent(hub, TOKENS["noa"])
        assert post_event(hub, **event(1, "before")).status_code == 202
        noa.recv("pop")
        disk.fill()
        # What still fits in the log's last page is committed (202); then the disk refuses.
        acknowledged, n = [], 2
        while (refused := post_event(hub, **event(n, f"full-{n}"))).status_code == 202 and n < 200:
            acknowledged.append(n)
            noa.recv("pop")
            n += 1
        held = n
        assert refused.status_code == 503 and refused.headers["retry-after"].isdigit()
        assert refused.json()["error"] == "store_unavailable" and "No space left" in refused.json()["message"]
        assert noa.recv("pop")["call_id"] == f"full-{held}"  # the agent still gets the caller: the rows wait
        health = httpx.get(f"{hub.url}/healthz", timeout=5)
        assert health.status_code == 503 and health.json()["store"] == "degraded"
        assert "No space left" in health.json()["reason"] and str(tmp_path) not in health.text
        status = httpx.get(f"{hub.url}/api/status", headers={"Authorization": f"Bearer {TOKENS['dana']}"}, timeout=5)
        assert status.json()["store"]["state"] == "degraded"
        # The PBX retries: a copy of an event not yet committed is never acknowledged as a duplicate.
        assert post_event(hub, **event(held, f"full-{held}")).status_code == 503
        assert post_event(hub, **event(held + 1, f"full-{held}", kind="hangup")).status_code == 503
        noa.nothing("pop")

        disk.free()
        health = wait_for(lambda: httpx.get(f"{hub.url}/healthz", timeout=5), lambda r: r.status_code == 200)
        assert health.json() == {"status": "ok", "store": "ok"}
        again = [post_event(hub, **event(held, f"full-{held}")),
                 post_event(hub, **event(held + 1, f"full-{held}", kind="hangup"))]
        assert [(r.status_code, r.json()["status"]) for r in again] == [(202, "duplicate"), (202, "duplicate")]
        assert post_event(hub, **event(held + 2, "after")).status_code == 202
        rows = hub.hub.store.query("SELECT event_id, count(*) AS n FROM events GROUP BY event_id")
        assert dict(rows.values.tolist()) == {f"full-e{i}": 1 for i in [1, *acknowledged, held, held + 1, held + 2]}
        call = wait_rows(hub, f"SELECT status FROM calls WHERE call_id = 'full-{held}'")
        assert call.status.tolist() == ["missed"]  # the call row made while the disk was full, completed after
    finally:
        for stop in (lambda: hub.stop(), disk.unmount):
            try:
                stop()
            except Exception:  # noqa: BLE001 - best effort: the test's own failure matters
                pass


def wait_for(get, ok, timeout=20.0):
    import time
    end = time.monotonic() + timeout
    while True:
        value = get()
        if ok(value) or time.monotonic() > end:
            return value
        time.sleep(0.1)


def test_an_event_time_outside_the_window_is_a_422_and_a_retry_is_not_a_duplicate(hub):
    now = datetime.now(timezone.utc)
    for i, at in enumerate(["0001-01-01T00:00:00+14:00", (now + timedelta(days=400)).isoformat(),
                            (now - timedelta(days=2)).isoformat()]):
        body = dict(id=f"when-{i}", call_id=f"when-{i}", type="ringing", caller="0722776772", extension="201", at=at)
        for _ in range(2):  # the same answer again: nothing was recorded the first time
            r = post_event(hub, **body)
            assert r.status_code == 422 and r.headers["content-type"] == "application/json", r.text
            assert r.json()["error"] in ("invalid_request", "at_out_of_range")
    ok = post_event(hub, id="when-ok", call_id="when-ok", type="ringing", caller="0722776772", extension="201",
                    at=(now - timedelta(minutes=5)).isoformat())
    assert ok.status_code == 202 and ok.json()["status"] == "accepted"
    assert wait_rows(hub, "SELECT event_id FROM events").event_id.tolist() == ["when-ok"]


def test_a_retry_of_an_event_from_an_earlier_run_is_a_duplicate_whatever_its_age(start_hub, tmp_path):
    db = tmp_path / "old.duckdb"
    first = start_hub(db_path=str(db))
    assert post_event(first, id="old-1", call_id="old-1", type="ringing", caller="0722776772",
                      extension="201").status_code == 202
    first.stop()
    with duckdb.connect(str(db)) as con:  # it was recorded long ago
        con.execute("UPDATE events SET received_at = received_at - INTERVAL 300 DAY")
    again = start_hub(db_path=str(db))
    noa = Agent(again, TOKENS["noa"])
    r = post_event(again, id="old-1", call_id="old-1", type="ringing", caller="0722776772", extension="201")
    assert (r.status_code, r.json()["status"]) == (202, "duplicate")
    # Its rows are refused with it: one call row. (The pop goes to this run's sockets again: the
    # earlier run's sockets went with it.)
    noa.recv("pop")
    assert again.hub.store.query("SELECT count(*) AS n FROM calls WHERE call_id = 'old-1'").n[0] == 1
    assert again.hub.store.query("SELECT count(*) AS n FROM events WHERE event_id = 'old-1'").n[0] == 1
