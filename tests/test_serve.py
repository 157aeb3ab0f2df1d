"""`python -m pipelines serve` as a real process: starts on the settings, stops cleanly on SIGTERM."""

import os
import re
import signal
import subprocess
import sys

import duckdb
import httpx

from tests.support import INGEST, ROOT


def test_serve_on_a_free_port_then_sigterm_checkpoints(tmp_path):
    db = tmp_path / "hub.duckdb"
    env = {**os.environ, "CALLPOP_PORT": "0", "CALLPOP_DB_PATH": str(db), "CALLPOP_INGEST_TOKEN": INGEST,
           "CALLPOP_SIM_CALLS_PER_MINUTE": "0", "CALLPOP_SAMPLE_CRM": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "pipelines", "serve"], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        url, head = None, []
        for line in proc.stderr:
            head.append(line)
            if m := re.search(r"listening on (http://\S+)", line):
                url = m.group(1)
                break
        assert url, "the hub never said where it listens"
        assert any(str(db) in line and str(ROOT / ".env") in line for line in head), head  # where it reads from
        assert httpx.get(f"{url}/healthz", timeout=5).json() == {"status": "ok", "store": "ok"}
        r = httpx.post(f"{url}/api/events", headers={"Authorization": f"Bearer {INGEST}"}, timeout=5,
                       json={"call_id": "p1", "type": "ringing", "caller": "0722776772", "extension": "201"})
        assert r.status_code == 202
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=20)[1]
        assert proc.returncode == 0, rest
        assert "hub stopped" in rest
        log = "".join(head) + rest
        assert INGEST not in log and "demo-token" not in log and "demo-ingest-token" not in log  # no token, ever
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (tmp_path / "hub.duckdb.wal").exists()
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT call_id, status FROM calls").fetchall() == [("p1", "ringing")]
        assert con.execute("SELECT call_id FROM events").fetchall() == [("p1",)]
