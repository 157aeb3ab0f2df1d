"""The hub's outgoing HTTP connections: keep-alive, every way a body can end, a server that drops
a kept connection, timeouts, bad answers and TLS, against real servers on port 0."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess

import httpx
import pytest

from bench.wire import read_message
from pipelines.http_pool import HttpPool

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\": \"ok\"}"


@contextlib.asynccontextmanager
async def server(answer, tls: ssl.SSLContext | None = None):
    """A raw HTTP server: ``answer(request_head, reader, writer)`` writes the reply and returns
    whether to keep the connection open for the next request."""
    seen: list[bytes] = []

    async def handle(reader, writer):
        try:
            while True:
                head, body = await read_message(reader)
                seen.append(head + body)
                if not await answer(head, reader, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield port, seen
    finally:
        srv.close()


def run(coro):
    return asyncio.run(coro)


async def reply_ok(head, reader, writer):
    writer.write(OK)
    await writer.drain()
    return True


def test_sequential_requests_share_one_connection_and_send_what_httpx_built():
    async def go():
        async with server(reply_ok) as (port, seen):
            pool = HttpPool()
            async with httpx.AsyncClient(transport=pool, headers={"User-Agent": "callpop"}) as http:
                answers = [await http.get(f"http://127.0.0.1:{port}/lookup?phone=%2B972&n={i}") for i in range(5)]
                posted = await http.post(f"http://127.0.0.1:{port}/dial", json={"to": "0501234567"})
            assert [a.json() for a in answers + [posted]] == [{"a": "ok"}] * 6
            assert pool.opened == 1
            assert seen[0].startswith(b"GET /lookup?phone=%2B972&n=0 HTTP/1.1\r\n")
            assert b"\r\nUser-Agent: callpop\r\n" in seen[0] and b"\r\nHost: 127.0.0.1:" in seen[0]
            assert seen[-1].startswith(b"POST /dial HTTP/1.1") and seen[-1].endswith(b'{"to":"0501234567"}')
    run(go())


@pytest.mark.parametrize("reply, keeps", [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n7\r\n: \"ok\"}\r\n0\r\n\r\n", True),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"a\": \"ok\"}", False),
    (b"HTTP/1.0 200 OK\r\n\r\n{\"a\": \"ok\"}", False),  # no length: the body ends with the connection
], ids=["chunked", "connection-close", "close-delimited"])
def test_every_way_a_body_can_end_is_read_whole(reply, keeps):
    async def answer(head, reader, writer):
        writer.write(reply)
        await writer.drain()
        return keeps

    async def go():
        async with server(answer) as (port, _):
            pool = HttpPool()
            async with httpx.AsyncClient(transport=pool) as http:
                for _ in range(2):
                    assert (await http.get(f"http://127.0.0.1:{port}/")).json() == {"a": "ok"}
            assert pool.opened == (1 if keeps else 2)
    run(go())


def test_a_kept_connection_the_server_closed_is_not_reused():
    async def answer_then_close_soon(head, reader, writer):
        writer.write(OK)
        await writer.drain()
        await asyncio.sleep(0.05)
        return False  # the server's keep-alive timeout: it hangs up on the idle connection

    async def go():
        async with server(answer_then_close_soon) as (port, seen):
            pool = HttpPool()
            async with httpx.AsyncClient(transport=pool) as http:
                await http.get(f"http://127.0.0.1:{port}/")
                await asyncio.sleep(0.3)
                # Not a GET: it must go out once, on a connection that is still open.
                assert (await http.post(f"http://127.0.0.1:{port}/dial", content=b"x")).json() == {"a": "ok"}
            assert pool.opened == 2 and len(seen) == 2
    run(go())


def test_a_get_on_a_connection_dropped_as_it_was_reused_is_sent_again_on_a_new_one():
    async def go():
        async with server(reply_ok) as (port, seen):
            pool = HttpPool()
            async with httpx.AsyncClient(transport=pool) as http:
                await http.get(f"http://127.0.0.1:{port}/")
                (kept,) = pool._idle[("http", "127.0.0.1", port)]
                kept.writer.transport.abort()  # gone, and the stream has not noticed yet
                assert (await http.get(f"http://127.0.0.1:{port}/again")).json() == {"a": "ok"}
            assert pool.opened == 2 and seen[-1].startswith(b"GET /again")
    run(go())


def test_the_clients_timeouts_hold_for_connect_and_read():
    async def never(head, reader, writer):
        await asyncio.sleep(30)
        return False

    async def go():
        async with server(never) as (port, _):
            async with httpx.AsyncClient(transport=HttpPool(), timeout=httpx.Timeout(0.3)) as http:
                loop = asyncio.get_running_loop()
                started = loop.time()
                with pytest.raises(httpx.ReadTimeout):
                    await http.get(f"http://127.0.0.1:{port}/")
                assert loop.time() - started < 2
    run(go())


def test_refused_malformed_and_cut_answers_raise_httpx_errors():
    async def garbage(head, reader, writer):
        writer.write(b"this is not HTTP\r\n\r\n")
        await writer.drain()
        return False

    async def cut(head, reader, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"a\":")
        await writer.drain()
        return False

    async def go():
        async with httpx.AsyncClient(transport=HttpPool()) as http:
            async with server(reply_ok) as (port, _):
                pass  # closed: nothing listens on that port any more
            with pytest.raises(httpx.ConnectError):
                await http.get(f"http://127.0.0.1:{port}/")
            async with server(garbage) as (port, _):
                with pytest.raises(httpx.RemoteProtocolError):
                    await http.get(f"http://127.0.0.1:{port}/")
            async with server(cut) as (port, _):
                with pytest.raises(httpx.RemoteProtocolError):
                    await http.get(f"http://127.0.0.1:{port}/")
    run(go())


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A test server's TLS context (a fresh self-signed certificate) and a client's that trusts it."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test server's certificate")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(d / "cert.pem", d / "key.pem")
    return server_tls, ssl.create_default_context(cafile=str(d / "cert.pem"))


def test_https_is_verified_and_kept_alive(tls):
    server_tls, trusting = tls

    async def go():
        async with server(reply_ok, tls=server_tls) as (port, _):
            trusted = HttpPool(ssl_context=trusting)
            async with httpx.AsyncClient(transport=trusted) as http:
                for _ in range(3):
                    assert (await http.get(f"https://127.0.0.1:{port}/")).json() == {"a": "ok"}
            assert trusted.opened == 1
            async with httpx.AsyncClient(transport=HttpPool()) as http:  # the public CAs do not know it
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await http.get(f"https://127.0.0.1:{port}/")
    run(go())
