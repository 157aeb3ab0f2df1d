"""Running the hub: backups taken while events pour in, /metrics in Prometheus' format, and
JSON log lines — against the real hub, a real DuckDB file and the real `callpop` command."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import duckdb
import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support import INGEST, METRICS, ROOT
from tests.support.hub import TOKENS, Agent, api, post_event, wait_rows

SUPERVISOR, AGENT = TOKENS["dana"], TOKENS["noa"]


class Posting(threading.Thread):
    """Events posted without pause; the ids answered 202, in order, with when each answer came."""

    def __init__(self, hub):
        super().__init__(daemon=True)
        self.hub, self.acked, self.stop = hub, [], threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.hub.url, headers={"Authorization": f"Bearer {INGEST}"}, timeout=10) as c:
            i = 0
            while not self.stop.is_set():
                i += 1
                r = c.post("/api/events", json={"id": f"load-{i}", "call_id": f"load-{i}", "type": "hangup"})
                if r.status_code == 202:
                    self.acked.append((f"load-{i}", time.monotonic()))


def test_a_backup_taken_under_load_opens_and_holds_every_event_acknowledged_before_it(start_hub, tmp_path):
    hub = start_hub(backup_dir=str(tmp_path / "backups"))
    load = Posting(hub)
    load.start()
    try:
        deadline = time.monotonic() + 30
        while len(load.acked) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        r = api(hub, "POST", "/api/backup", SUPERVISOR)
        after = len(load.acked)
        while len(load.acked) < after + 50 and time.monotonic() < deadline + 30:  # still taking events after it
            time.sleep(0.01)
    finally:
        load.stop.set()
        load.join()
    assert r.status_code == 201, r.text
    made = r.json()
    before = {event_id for event_id, at in load.acked if at < started}
    path = tmp_path / "backups" / made["file"]
    with duckdb.connect(str(path), read_only=True) as con:
        copied = {row[0] for row in con.execute("SELECT event_id FROM events").fetchall()}
        assert con.execute("SELECT count(*) FROM duckdb_indexes() WHERE index_name = 'events_event_id'").fetchone()[0]
    assert before <= copied and made["events"] == len(copied) and len(before) >= 200
    assert not list((tmp_path / "backups").glob("*.partial"))
    assert api(hub, "GET", "/api/backups", SUPERVISOR).json()["backups"] == [{"file": made["file"],
                                                                              "bytes": path.stat().st_size}]
    got = api(hub, "GET", f"/api/backups/{made['file']}", SUPERVISOR)
    assert got.status_code == 200 and got.content == path.read_bytes()
    assert post_event(hub, call_id="after", type="hangup").status_code == 202  # the hub goes on


def test_a_backup_the_disk_refuses_is_a_503_and_the_hub_goes_on(start_hub, tmp_path):
    (tmp_path / "not-a-folder").write_text("a file where the backups should go")
    hub = start_hub(backup_dir=str(tmp_path / "not-a-folder"))
    r = api(hub, "POST", "/api/backup", SUPERVISOR)
    assert r.status_code == 503 and r.json()["error"] == "backup_failed", r.text
    assert str(tmp_path) not in r.text
    assert post_event(hub, call_id="c1", type="hangup").status_code == 202
    for name in ("../callpop.duckdb", "callpop.duckdb", "callpop-20261202T120000Z.duckdb"):
        r = api(hub, "GET", f"/api/backups/{name}", SUPERVISOR)
        assert r.status_code == 404 and r.json()["error"] in ("not_found", "http_404"), (name, r.text)


def _metrics(hub, token=METRICS) -> dict:
    r = api(hub, "GET", "/metrics", token)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version="), r.text
    assert "0722776772" not in r.text and "John" not in r.text  # no caller in a label
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def test_metrics_count_lookups_pops_and_show_sockets_and_the_store(hub):
    noa = Agent(hub, AGENT)
    assert post_event(hub, call_id="m1", type="ringing", caller="0722776772", extension="201").status_code == 202
    assert noa.recv("pop")["name"]
    wait_rows(hub, "SELECT 1 FROM lookups WHERE call_id = 'm1'")
    m = _metrics(hub)
    assert m[("callpop_lookups_total", (("cache", "miss"), ("outcome", "found")))] == 1
    assert m[("callpop_lookup_latency_seconds_count", (("cache", "miss"),))] == 1
    assert m[("callpop_lookup_latency_seconds_bucket", (("cache", "miss"), ("le", "+Inf")))] == 1
    assert m[("callpop_pops_total", (("reached", "true"),))] == 1
    assert m[("callpop_sockets", ())] == 1 and m[("callpop_agents_online", ())] == 1
    assert m[("callpop_calls_ringing", ())] == 1
    assert m[("callpop_events_total", (("result", "accepted"),))] == 1
    assert m[("callpop_store_up", ())] == 1 and m[("callpop_store_queue", ())] == 0
    noa.close()
    assert post_event(hub, call_id="m2", type="ringing", caller="0722776772", extension="201").status_code == 202
    wait_rows(hub, "SELECT 1 FROM pops WHERE call_id = 'm2'")
    m = _metrics(hub, SUPERVISOR)
    assert m[("callpop_pops_total", (("reached", "false"),))] == 1  # nobody signed in: counted apart
    assert m[("callpop_lookups_total", (("cache", "hit"), ("outcome", "found")))] == 1


def test_serve_logs_json_lines_and_callpop_backup_copies_the_running_hub(tmp_path):
    env = {**os.environ, "CALLPOP_PORT": "0", "CALLPOP_DB_PATH": str(tmp_path / "hub.duckdb"),
           "CALLPOP_INGEST_TOKEN": INGEST, "CALLPOP_SIM_CALLS_PER_MINUTE": "0", "CALLPOP_LOG_FORMAT": "json",
           "CALLPOP_SAMPLE_CRM": "true",
           "CALLPOP_AGENTS_CSV": str(ROOT / "data" / "agents.csv")}
    proc = subprocess.Popen([sys.executable, "-m", "pipelines", "serve"], cwd=tmp_path, env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        url, lines = None, []
        for line in proc.stderr:
            lines.append(json.loads(line))  # every line is one JSON object
            if m := re.search(r"listening on (http://\S+)", lines[-1]["message"]):
                url = m.group(1)
                break
        assert url and {"at", "level", "logger", "message"} <= set(lines[0])
        for i in range(5):
            assert httpx.post(f"{url}/api/events", headers={"Authorization": f"Bearer {INGEST}"}, timeout=5,
                              json={"call_id": f"b{i}", "type": "hangup"}).status_code == 202
        out = tmp_path / "copy.duckdb"
        run = subprocess.run([sys.executable, "-m", "pipelines", "backup", "--hub", url, "--out", str(out)],
                             cwd=tmp_path, env={**env, "CALLPOP_TOKEN": SUPERVISOR}, capture_output=True, text=True,
                             timeout=60)
        assert run.returncode == 0, run.stderr
        assert "5 events" in run.stdout
        with duckdb.connect(str(out), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 5
        refused = subprocess.run([sys.executable, "-m", "pipelines", "backup", "--hub", url], cwd=tmp_path,
                                 env={**env, "CALLPOP_TOKEN": AGENT}, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and "403" in refused.stderr and AGENT not in refused.stderr
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=20)[1]
        assert all(json.loads(line)["level"] for line in rest.splitlines())
        assert SUPERVISOR not in rest and INGEST not in rest
    finally:
        if proc.poll() is None:
            proc.kill()
