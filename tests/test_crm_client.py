"""The CRM client's two routes: a plain lookup goes straight on the hub's pool (no httpx client
layers), and whatever a plain GET does not cover (a redirect, a cookie, a compressed answer) goes
through httpx, with the same result. Real servers on port 0."""

from __future__ import annotations

import gzip
import json
from urllib.parse import parse_qsl, urlsplit

import httpx

from pipelines.crm import CrmClient
from pipelines.http_pool import HttpPool
from tests.test_http_pool import run, server, tls  # noqa: F401 - tls is a fixture

ANSWER = json.dumps({"STATUS": "OK", "CLIENTNAME": "Dana Levi", "TOTAL": "1",
                     "URL": "https://crm.example.com/c/1"}).encode()


def reply(body: bytes = ANSWER, status: str = "200 OK", *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status}", "Content-Type: application/json", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class CountingPool(HttpPool):
    """The pool, counting the requests httpx hands it (the plain route never goes through it)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.through_httpx = 0

    async def handle_async_request(self, request):
        self.through_httpx += 1
        return await super().handle_async_request(request)


def client(url: str, pool: HttpPool, direct: bool = True, **kw) -> tuple[CrmClient, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=pool, headers={"User-Agent": "callpop"}, follow_redirects=True,
                             timeout=httpx.Timeout(5))
    return CrmClient(http, url, pool=pool if direct else None, **kw), http


def request_line(head: bytes) -> bytes:
    return head.split(b"\r\n", 1)[0]


def path_of(head: bytes) -> str:
    return urlsplit(request_line(head).split(b" ")[1].decode()).path


def params_of(head: bytes) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(request_line(head).split(b" ")[1].decode()).query, keep_blank_values=True)


def header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


async def answer_ok(head, reader, writer):
    writer.write(reply())
    await writer.drain()
    return True


def test_a_plain_lookup_goes_straight_on_the_pool_and_asks_what_httpx_would():
    async def go():
        async with server(answer_ok) as (port, seen):
            url = f"http://127.0.0.1:{port}/lookup?key=s%20cret&phone=stale"
            results = {}
            for direct in (True, False):
                pool = CountingPool()
                crm, http = client(url, pool, direct, auth_header="X-Api-Key: k1")
                results[direct] = [await crm.fetch("+972501234567", {"call_id": f"c{i}"}) for i in range(3)]
                await http.aclose()
                assert pool.through_httpx == (0 if direct else 3) and pool.opened == 1  # kept alive
            assert results[True] == results[False] and results[True][0].outcome == "found"
            assert results[True][0].name == "Dana Levi"
            plain, with_httpx = seen[:3], seen[3:]
            for a, b in zip(plain, with_httpx):
                # The URL's own key kept, its stale phone replaced, the context added: as httpx does
                # (httpx writes the key's space as "+", the plain route keeps the URL as written).
                assert path_of(a) == path_of(b) == "/lookup" and params_of(a) == params_of(b)
                for name in (b"host", b"user-agent", b"x-api-key"):
                    assert header(a, name) == header(b, name) is not None
            assert request_line(plain[1]) == b"GET /lookup?key=s%20cret&phone=%2B972501234567&call_id=c1 HTTP/1.1"
            assert header(plain[0], b"accept-encoding") is None  # read whole, as it comes
    run(go())


def test_a_redirect_moves_the_client_to_httpx_which_follows_it():
    async def moved(head, reader, writer):
        if request_line(head).startswith(b"GET /old"):
            writer.write(reply(b"", "302 Found", "Location: /new"))
        else:
            writer.write(reply())
        await writer.drain()
        return True

    async def go():
        async with server(moved) as (port, seen):
            pool = CountingPool()
            crm, http = client(f"http://127.0.0.1:{port}/old", pool)
            first = await crm.fetch("0501234567")
            second = await crm.fetch("0501234568")
            await http.aclose()
        assert first.outcome == second.outcome == "found"
        # Asked plainly once; that lookup again through httpx, which follows; from then on httpx only.
        assert [path_of(h) for h in seen] == ["/old", "/old", "/new", "/old", "/new"]
        assert pool.through_httpx == 4
    run(go())


def test_a_cookie_the_crm_sets_is_sent_back_on_the_next_lookups():
    async def sticky(head, reader, writer):
        cookie = header(head, b"cookie")
        writer.write(reply(ANSWER, "200 OK", *([] if cookie else ["Set-Cookie: route=b7; Path=/"])))
        await writer.drain()
        return True

    async def go():
        async with server(sticky) as (port, seen):
            crm, http = client(f"http://127.0.0.1:{port}/lookup", HttpPool())
            results = [await crm.fetch(f"050123456{i}") for i in range(3)]
            await http.aclose()
        assert [r.outcome for r in results] == ["found"] * 3
        assert [header(h, b"cookie") for h in seen] == [None, None, b"route=b7", b"route=b7"]
    run(go())


def test_an_answer_compressed_though_nobody_asked_is_still_read():
    async def zipped(head, reader, writer):
        writer.write(reply(gzip.compress(ANSWER), "200 OK", "Content-Encoding: gzip"))
        await writer.drain()
        return True

    async def go():
        async with server(zipped) as (port, _):
            crm, http = client(f"http://127.0.0.1:{port}/lookup", HttpPool())
            results = [await crm.fetch("0501234567"), await crm.fetch("0501234568")]
            await http.aclose()
        assert [(r.outcome, r.name) for r in results] == [("found", "Dana Levi")] * 2
    run(go())


def test_the_size_cap_holds_on_the_plain_route_whether_declared_or_not():
    async def big(head, reader, writer):
        body = b'{"STATUS":"OK","CLIENTNAME":"' + b"x" * 5000 + b'"}'
        if b"phone=1" in head:
            writer.write(reply(body))
        else:  # chunked: no length declared, the cap is counted as the body comes
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 500]), body[i:i + 500])
                                    for i in range(0, len(body), 500)) + b"0\r\n\r\n")
        await writer.drain()
        return True

    async def go():
        async with server(big) as (port, _):
            pool = CountingPool()
            crm, http = client(f"http://127.0.0.1:{port}/lookup", pool, max_bytes=4096)
            results = [await crm.fetch("1"), await crm.fetch("2")]
            await http.aclose()
        assert [(r.outcome, r.error) for r in results] == [("bad_response", "answer larger than 4096 bytes")] * 2
        assert pool.through_httpx == 0
    run(go())


def test_the_plain_route_speaks_https_verified_and_kept_alive(tls):
    server_tls, trusting = tls

    async def go():
        async with server(answer_ok, tls=server_tls) as (port, seen):
            pool = CountingPool(ssl_context=trusting)
            crm, http = client(f"https://127.0.0.1:{port}/lookup", pool)
            results = [await crm.fetch(f"050123456{i}") for i in range(3)]
            await http.aclose()
            untrusted, http = client(f"https://127.0.0.1:{port}/lookup", CountingPool())
            refused = await untrusted.fetch("0501234567")
            await http.aclose()
        assert [r.name for r in results] == ["Dana Levi"] * 3
        assert pool.opened == 1 and pool.through_httpx == 0 and len(seen) == 3
        assert refused.outcome == "http_error" and "CERTIFICATE_VERIFY_FAILED" in refused.error
    run(go())
