"""``python -m pipelines`` as a newcomer meets it: a taken port or database said in one line, a
pop rung on demand, and the demo runner that stops everything it started on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx

from tests.support import INGEST, ROOT, free_port, procs
from tests.support.hub import TOKENS, Agent


def run(args: list[str], env: dict[str, str], cwd=ROOT, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **env})


def test_a_taken_port_is_said_in_one_line_with_the_setting_to_change(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run(["serve"], {"CALLPOP_PORT": str(port), "CALLPOP_DB_PATH": str(tmp_path / "a.duckdb")})
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert f"port {port}" in last and "CALLPOP_PORT" in last and "Traceback" not in done.stderr


def test_a_second_hub_on_the_same_database_is_refused_at_once_naming_the_first(tmp_path):
    db = tmp_path / "shared.duckdb"
    agents = tmp_path / "agents.csv"
    procs.write_agents_csv(agents, 2)
    with procs.start_hub(db, agents) as first:
        started = time.monotonic()
        done = run(["serve"], {"CALLPOP_PORT": "0", "CALLPOP_DB_PATH": str(db), "CALLPOP_AGENTS_CSV": str(agents)})
        assert time.monotonic() - started < 20
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"in use by PID {first.pid}" in done.stderr and "CALLPOP_DB_PATH" in done.stderr


def test_ring_pops_on_demand_and_hangs_up(start_hub):
    hub = start_hub()
    noa = Agent(hub, TOKENS["noa"])
    done = run(["ring", "201", "0722776772", "--seconds", "0"],
               {"CALLPOP_PORT": str(hub.settings.port), "CALLPOP_INGEST_TOKEN": INGEST})
    assert done.returncode == 0, done.stderr
    pop = noa.recv("pop")
    assert (pop["name"], pop["extension"]) == ("John Doe", "201")
    assert noa.recv("call")["state"] == "missed"
    refused = run(["ring", "201"], {"CALLPOP_PORT": str(hub.settings.port), "CALLPOP_INGEST_TOKEN": ""})
    assert refused.returncode == 2 and "--demo" in refused.stderr


def test_the_demo_runs_apart_and_sigterm_stops_all_it_started(tmp_path):
    hub_port, console_port = free_port(), free_port()
    (tmp_path / ".env").write_text("CALLPOP_INGEST_TOKEN=my-own-token\nCALLPOP_DB_PATH=mine.duckdb\n")
    runner = subprocess.Popen([sys.executable, "-m", "pipelines", "demo", "--dir", str(tmp_path / "demo")],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "CALLPOP_PORT": str(hub_port),
                                   "CALLPOP_CONSOLE_PORT": str(console_port)})
    lines: list[str] = []
    try:
        for line in runner.stdout:
            lines.append(line)
            if "then in its options" in line:  # the banner's last line
                break
        assert any("demo-token-noa" in line for line in lines), "".join(lines)
        status = httpx.get(f"http://127.0.0.1:{hub_port}/api/status", timeout=5,
                           headers={"Authorization": "Bearer demo-token-dana"}).json()
        assert status["provider"]["name"] == "sim"
        # The demo's own database with its history; the user's .env token and database untouched.
        assert (tmp_path / "demo" / "callpop.duckdb").exists() and not (tmp_path / "mine.duckdb").exists()
        # Its agents file is a copy in its folder: the Agents page never writes to the one callpop ships.
        assert (tmp_path / "demo" / "agents.csv").read_text(encoding="utf-8") == \
            (ROOT / "data" / "agents.csv").read_text(encoding="utf-8")
        own = httpx.post(f"http://127.0.0.1:{hub_port}/api/events", timeout=5,
                         headers={"Authorization": "Bearer my-own-token"}, json={"call_id": "x", "type": "hangup"})
        assert own.status_code == 401
        wait = time.monotonic() + 30
        while time.monotonic() < wait:
            try:
                if httpx.get(f"http://127.0.0.1:{console_port}/_stcore/health", timeout=2).text == "ok":
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(30) == 0
    finally:
        if runner.poll() is None:  # a failed check: still stop the children, as SIGTERM does
            runner.send_signal(signal.SIGTERM)
            try:
                runner.wait(30)
            except subprocess.TimeoutExpired:
                runner.kill()
    for port in (hub_port, console_port):  # nothing left holding a port (or the database)
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
    rest = runner.stdout.read()
    assert "callpop stopped" in rest
    assert re.search(r"Console\s+http://127\.0\.0\.1:" + str(console_port), "".join(lines))
