"""Fixtures for the fault and load suite: hostile CRMs, 1,000 generated agents, and the hub as a
real subprocess (``python -m pipelines serve``) for the tests that kill or stop it."""

from __future__ import annotations

import http.server
from pathlib import Path

import pytest

from tests.support import procs
from tests.support.crm import FakeCrm
from tests.support.httpserver import LocalServer


@pytest.fixture
def crm():
    with FakeCrm() as server:
        yield server


class EndlessCrm(LocalServer):
    """A CRM that streams a chunked body (no Content-Length) until the client hangs up: the
    size cap must stop reading, not the declared length."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b'{"STATUS":"OK","CLIENTNAME":"' + b"x" * 65536
                try:
                    for _ in range(160):  # 10 MB at most, so a broken client cannot hang the test
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

        super().__init__(Handler)
        self.url = self.origin + "/lookup"


@pytest.fixture
def endless_crm():
    with EndlessCrm() as server:
        yield server


@pytest.fixture(scope="session")
def many_agents(tmp_path_factory) -> tuple[Path, list[dict[str, str]]]:
    """1,000 agents (extensions 1000-1999) in a CSV of their own."""
    path = tmp_path_factory.mktemp("agents") / "agents.csv"
    return path, procs.write_agents_csv(path, 1000)


@pytest.fixture
def hub_process(tmp_path):
    """Start the hub as its own process; every one still running is stopped after the test."""
    started: list[procs.Proc] = []

    def start(agents_csv: Path, db_path: Path | None = None, **settings) -> procs.Proc:
        proc = procs.start_hub(db_path or tmp_path / "callpop.duckdb", agents_csv, **settings)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.kill()
