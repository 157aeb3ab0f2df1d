"""Limits at the door, against the real hub over real sockets: connections that never finish their
request, oversized headers, too many connections or sockets, deeply nested JSON, and floods of
refused requests (which must not fill the disk or the log)."""

from __future__ import annotations

import json
import logging
import math
import selectors
import socket
import sys
import time

import duckdb
import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.support import INGEST, ROOT, procs
from tests.support.hub import TOKENS, Agent, api, post_event, wait_rows

AGENTS = ROOT / "data" / "agents.csv"
RINGING = {"type": "ringing", "caller": "0722776772", "extension": "201"}


def open_sockets(port: int, n: int, first: bytes = b"") -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if first:
            s.sendall(first)
        out.append(s)
    return out


def closed_within(socks: list[socket.socket], timeout: float) -> int:
    """How many of ``socks`` the hub closed (EOF or reset) within ``timeout`` seconds."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    closed, deadline = 0, time.monotonic() + timeout
    while closed < len(socks) and (left := deadline - time.monotonic()) > 0:
        for key, _ in sel.select(left):
            try:
                data = key.fileobj.recv(65536)
            except (ConnectionResetError, BlockingIOError):
                data = b"" if not isinstance(sys.exc_info()[1], BlockingIOError) else None
            if data == b"" or (data and data.startswith(b"HTTP/1.1 4")):
                sel.unregister(key.fileobj)
                closed += 1
    sel.close()
    return closed


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


def head_answer(sock: socket.socket, timeout: float = 5) -> bytes:
    """What the hub answers on ``sock`` before closing it (b"" if it just closed)."""
    sock.settimeout(timeout)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return got


def flood(hub, request: bytes, n: int) -> int:
    """Send ``request`` ``n`` times, pipelined on one connection; returns how many got 401."""
    s = socket.create_connection(("127.0.0.1", hub.settings.port), timeout=10)
    s.sendall(request * n)
    got = b""
    while got.count(b"HTTP/1.1 ") < n and (chunk := s.recv(65536)):
        got += chunk
    s.close()
    return got.count(b"HTTP/1.1 401")


# --- half-open connections and slowloris, on the hub as operators run it (uvloop, its own process)
def test_half_open_connections_neither_stop_events_nor_stay_open(hub_process):
    hub = hub_process(AGENTS, header_timeout_s=2)
    silent = open_sockets(hub.port, 900)
    partial = open_sockets(hub.port, 100, b"POST /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
    try:
        started = time.monotonic()
        r = httpx.post(f"{hub.url}/api/events", json={"call_id": "after-1000", **RINGING},
                       headers={"Authorization": f"Bearer {procs.INGEST}"}, timeout=5)
        assert r.status_code == 202 and time.monotonic() - started < 3
        # A slowloris: a header byte every 0.2 s keeps the connection busy, never complete.
        slow = open_sockets(hub.port, 20, b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        opened, open_ = time.monotonic(), set(slow)
        while open_ and time.monotonic() - opened < 6:
            for s in list(open_):
                try:
                    s.send(b"a")
                except (BrokenPipeError, ConnectionResetError):
                    open_.discard(s)
            time.sleep(0.2)
        assert not open_ and time.monotonic() - opened < 2 + 1.5
        assert closed_within(silent + partial, timeout=2) == 1000  # 2 s after the 202, 4 s after they came
    finally:
        close_all(silent + partial)
    assert httpx.get(f"{hub.url}/healthz", timeout=5).status_code == 200


def test_idle_keep_alive_connections_are_closed(start_hub):
    hub = start_hub(keep_alive_s=0.5, header_timeout_s=5)
    s = socket.create_connection(("127.0.0.1", hub.settings.port), timeout=5)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    started = time.monotonic()
    assert head_answer(s, timeout=3).startswith(b"HTTP/1.1 200")  # read until the hub closes it
    assert time.monotonic() - started < 2


# --- header size
def test_a_10_mb_header_is_refused_early(start_hub):
    hub = start_hub(max_header_bytes=32768)
    s = socket.create_connection(("127.0.0.1", hub.settings.port), timeout=5)
    sent = 0
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        chunk = b"a" * 65536
        while sent < 10 * 1024 * 1024:
            s.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass  # the hub closed it while we were still sending: refused
    answer = head_answer(s)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431"), answer[:100]
    if answer:
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "headers_too_large"
    # Headers under the cap are served, and so is everyone else.
    r = httpx.get(f"{hub.url}/healthz", headers={"X-Fine": "b" * 20_000}, timeout=5)
    assert r.status_code == 200


def test_many_small_headers_count_towards_the_cap(start_hub):
    hub = start_hub(max_header_bytes=4096)
    s = socket.create_connection(("127.0.0.1", hub.settings.port), timeout=5)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(2000)) + b"\r\n")
    assert head_answer(s).startswith(b"HTTP/1.1 431")


# --- connections and sockets
def test_past_max_connections_requests_get_503_then_service_resumes(start_hub):
    hub = start_hub(max_connections=20, header_timeout_s=30)
    held = open_sockets(hub.settings.port, 20)
    try:
        r = httpx.get(f"{hub.url}/healthz", timeout=5)
        assert r.status_code == 503 and r.headers["connection"] == "close"
    finally:
        close_all(held)
    deadline = time.monotonic() + 5
    while httpx.get(f"{hub.url}/healthz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_one_socket_too_many_for_an_agent_closes_the_oldest_with_4409(start_hub):
    hub = start_hub(ws_per_agent=3)
    first, *rest = [Agent(hub, TOKENS["noa"]) for _ in range(3)]
    newest = Agent(hub, TOKENS["noa"])
    with pytest.raises(ConnectionClosed) as closed:
        first.recv("pop", timeout=5)
    assert closed.value.rcvd.code == 4409 and closed.value.rcvd.reason == "replaced by a newer connection"
    assert api(hub, "GET", "/api/status", TOKENS["dana"]).json()["sockets"] == 3
    assert post_event(hub, call_id="cap-1", **RINGING).status_code == 202
    for agent in (*rest, newest):  # the three kept still get their pops
        assert agent.recv("pop")["call_id"] == "cap-1"


# --- nested JSON
def test_deeply_nested_websocket_messages_get_bad_message_and_the_socket_lives_on(hub):
    noa = Agent(hub, TOKENS["noa"])
    for message in ("[" * 60_000, '{"a":' * 10_000 + "1" + "}" * 10_000):
        noa.ws.send(message)
        assert noa.recv("error")["code"] == "bad_message"
    noa.send({"type": "ping"})
    assert noa.recv("pong") == {"type": "pong"}


@pytest.mark.parametrize("path, token", [("/api/events", INGEST), ("/api/dial", TOKENS["noa"])])
@pytest.mark.parametrize("body", ["[" * 60_000, "[" * 30_000 + "]" * 30_000])
def test_deeply_nested_http_bodies_get_422(hub, path, token, body):
    r = httpx.post(f"{hub.url}{path}", content=body, timeout=10,
                   headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"
    assert post_event(hub, call_id="after-deep", type="hangup").status_code == 202


# --- refused requests: counted, not written one by one
def test_a_flood_of_bad_tokens_writes_a_few_counted_rows_and_a_few_log_lines(start_hub, caplog):
    caplog.set_level(logging.INFO)
    hub = start_hub(rejects_window_s=1)
    started = time.monotonic()
    assert flood(hub, b"GET /api/me HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer nope\r\n\r\n", 1000) == 1000
    windows = math.ceil(time.monotonic() - started) + 2  # the 1 s windows the flood spanned, and the edges
    rows = wait_rows(hub, "SELECT sum(count) AS n, count(*) AS rows FROM rejects HAVING sum(count) >= 1000")
    assert rows.n[0] == 1000 and rows.rows[0] <= min(windows, 50)  # a row a window, not one a request
    logged = [r for r in caplog.records if r.levelno >= logging.INFO and r.name.startswith("callpop")]
    assert len(logged) <= 10, [r.getMessage() for r in logged]
    assert any("not logged one by one" in r.getMessage() for r in logged)


def test_counts_still_open_are_written_at_stop(start_hub, tmp_path):
    hub = start_hub()  # a window of 60 s: nothing is due before the hub stops
    body = b'{"call_id": "x", "type": "hangup"}'
    request = (b"POST /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer wrong\r\n"
               b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    assert flood(hub, request, 300) == 300
    hub.stop()
    with duckdb.connect(str(tmp_path / "callpop.duckdb"), read_only=True) as con:
        n, rows = con.execute("SELECT sum(count), count(*) FROM rejects").fetchone()
    assert n == 300 and rows == 2


def test_out_of_files_is_logged_once_and_the_hub_serves_again(tmp_path):
    """The hub with a low open-file limit (as a distribution's 1,024 would be for 10,000 agents):
    connections past it are refused, one WARNING says so (not one per connection), and once they
    close the hub accepts again: PBX events included."""
    env = procs.hub_env(tmp_path / "callpop.duckdb", AGENTS, header_timeout_s=30)
    argv = ["sh", "-c", 'ulimit -n 200 && exec "$0" -m pipelines serve', sys.executable]
    with procs.Proc(argv, env, name="hub") as hub:
        assert any("open-file limit is 200" in line for line in hub.log)
        for _ in range(2):
            held = open_sockets(hub.port, 300)
            try:
                assert closed_within(held, timeout=1) > 0  # past the limit: closed at once
            finally:
                close_all(held)
            deadline = time.monotonic() + 5
            while True:
                try:
                    r = httpx.post(f"{hub.url}/api/events", json={"call_id": f"files-{_}", **RINGING},
                                   headers={"Authorization": f"Bearer {procs.INGEST}"}, timeout=5)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            assert r.status_code == 202
        assert len([line for line in hub.log if "took file descriptor" in line]) == 1, hub.log[-20:]


def test_the_header_timeout_leaves_signed_in_sockets_and_slow_answers_alone(start_hub):
    hub = start_hub(header_timeout_s=0.5)
    noa = Agent(hub, TOKENS["noa"])
    time.sleep(1.2)
    noa.send({"type": "ping"})
    assert noa.recv("pong") == {"type": "pong"}
    assert api(hub, "GET", "/api/me", TOKENS["noa"]).status_code == 200


def test_malformed_requests_are_logged_once_a_minute(start_hub, caplog):
    caplog.set_level(logging.WARNING, logger="uvicorn.error")
    hub = start_hub()
    for _ in range(50):
        s = socket.create_connection(("127.0.0.1", hub.settings.port), timeout=5)
        s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        assert head_answer(s).startswith(b"HTTP/1.1 400")
    assert len([r for r in caplog.records if r.name == "uvicorn.error"]) <= 1
