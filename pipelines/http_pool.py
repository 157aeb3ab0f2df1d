"""The hub's outgoing HTTP/1.1 connections (CRM lookups, dial webhooks, Voicenter's API): a
keep-alive pool per origin, the transport under the shared ``httpx.AsyncClient``.

httpx's own pool (httpcore) polls the socket of every pooled connection each time a request
starts or a response closes, through several layers of anyio: at 200 events/s that was ~18 % of
the event loop, and one CRM lookup cost ~1.4 ms of CPU. This pool keeps idle connections in a
list per origin, notices a connection the server closed from the stream's own EOF flag (no
system call), and parses responses with httptools (C): ~0.7 ms a lookup. httpx above it still
builds the request, follows redirects, decodes the body, applies the client's timeouts (passed
down per request) and raises its usual errors; proxies from the environment still go through
httpx's own transports.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import time
from typing import AsyncIterator

import httptools
import httpx

DEFAULT_PORTS = {"http": 80, "https": 443}
READ_SIZE = 65536
IDEMPOTENT = {"GET", "HEAD", "OPTIONS"}


class _Parsed:
    """httptools' callbacks: what has arrived of one response."""

    def __init__(self):
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: collections.deque[bytes] = collections.deque()
        self.head_done = False
        self.done = False
        self.keep_alive = False
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(bytes(body))

    def on_message_complete(self) -> None:
        self.done = True
        self.keep_alive = self.parser.should_keep_alive()  # asked later, the parser has reset


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.idle_since = time.monotonic()

    def usable(self, now: float, expiry_s: float) -> bool:
        """Still worth reusing: not past the keep-alive expiry, and the server has not closed it
        (the stream saw its EOF while the connection sat idle)."""
        return (now - self.idle_since < expiry_s and not self.reader.at_eof()
                and not self.writer.is_closing() and self.reader.exception() is None)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


async def _within(seconds: float | None, awaitable, error: type[httpx.TimeoutException], what: str):
    try:
        async with asyncio.timeout(seconds):
            return await awaitable
    except TimeoutError:
        raise error(f"{what} timed out") from None


class HttpPool(httpx.AsyncBaseTransport):
    """A keep-alive HTTP/1.1 transport: at most ``max_idle`` idle connections kept per origin,
    each for at most ``idle_expiry_s``. How many run at once is the caller's to bound (the CRM
    client's semaphore)."""

    def __init__(self, *, max_idle: int = 10, idle_expiry_s: float = 5.0, ssl_context: ssl.SSLContext | None = None):
        self.max_idle = max_idle
        self.idle_expiry_s = idle_expiry_s
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._closed = False
        self.opened = 0  # connections opened so far (tests read it)

    # --- the transport
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme not in DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported scheme {request.url.scheme!r}")
        origin = (request.url.scheme, request.url.host, request.url.port or DEFAULT_PORTS[request.url.scheme])
        timeouts = request.extensions.get("timeout", {})
        payload = self._head(request) + await request.aread()
        while True:
            conn = self._checkout(origin)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(origin, timeouts.get("connect"))
            try:
                conn.writer.write(payload)
                await _within(timeouts.get("write"), conn.writer.drain(), httpx.WriteTimeout, "write")
                parsed = _Parsed()
                while not parsed.head_done:
                    data = await _within(timeouts.get("read"), conn.reader.read(READ_SIZE), httpx.ReadTimeout, "read")
                    if not data:
                        raise httpx.RemoteProtocolError("server disconnected without sending a response")
                    _feed(parsed.parser, data)
            except (httpx.RemoteProtocolError, OSError) as e:
                conn.close()
                # A kept connection the server dropped just as we reused it: try a fresh one, if
                # the request may be sent twice. Anything else is the server's answer to give.
                if reused and request.method in IDEMPOTENT:
                    continue
                if isinstance(e, OSError):
                    raise httpx.ReadError(str(e) or type(e).__name__) from e
                raise
            except BaseException:
                conn.close()
                raise
            stream = _Body(self, origin, conn, parsed, timeouts.get("read"))
            return httpx.Response(parsed.parser.get_status_code(), headers=parsed.headers, stream=stream,
                                  extensions={"http_version": b"HTTP/1.1"})

    async def aclose(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    # --- connections
    def _checkout(self, origin: tuple[str, str, int]) -> _Connection | None:
        conns = self._idle.get(origin)
        now = time.monotonic()
        while conns:
            conn = conns.pop()  # the most recently used: the likeliest to be still open
            if conn.usable(now, self.idle_expiry_s):
                return conn
            conn.close()
        return None

    def _checkin(self, origin: tuple[str, str, int], conn: _Connection) -> None:
        conns = self._idle.setdefault(origin, [])
        if self._closed or len(conns) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        conns.append(conn)

    async def _connect(self, origin: tuple[str, str, int], timeout: float | None) -> _Connection:
        scheme, host, port = origin
        tls = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()  # verified against certifi, as httpx does
            tls = self._ssl
        try:
            reader, writer = await _within(
                timeout, asyncio.open_connection(host, port, ssl=tls, server_hostname=host if tls else None,
                                                 limit=READ_SIZE), httpx.ConnectTimeout, "connect")
        except OSError as e:  # refused, unreachable, name not resolved, certificate refused
            raise httpx.ConnectError(str(e) or type(e).__name__) from e
        self.opened += 1
        return _Connection(reader, writer)

    @staticmethod
    def _head(request: httpx.Request) -> bytes:
        target = request.url.raw_path or b"/"
        lines = [request.method.encode("ascii") + b" " + target + b" HTTP/1.1"]
        lines += [name + b": " + value for name, value in request.headers.raw]
        return b"\r\n".join(lines) + b"\r\n\r\n"


def _feed(parser: httptools.HttpResponseParser, data: bytes) -> None:
    try:
        parser.feed_data(data)
    except httptools.HttpParserError as e:
        raise httpx.RemoteProtocolError(f"malformed HTTP response ({e})") from e


class _Body(httpx.AsyncByteStream):
    """The response body as it arrives; the connection goes back to the pool once the whole
    message was read and both sides keep it alive, and is closed otherwise."""

    def __init__(self, pool: HttpPool, origin, conn: _Connection, parsed: _Parsed, timeout: float | None):
        self._pool, self._origin, self._conn = pool, origin, conn
        self._parsed, self._timeout = parsed, timeout
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        parsed = self._parsed
        while True:
            while parsed.body:
                yield parsed.body.popleft()
            if parsed.done:
                return
            try:
                data = await _within(self._timeout, self._conn.reader.read(READ_SIZE), httpx.ReadTimeout, "read")
            except OSError as e:
                raise httpx.ReadError(str(e) or type(e).__name__) from e
            if not data:
                if _delimited_by_close(parsed.headers):  # no length given: the body ends with the connection
                    parsed.done = True
                    continue
                raise httpx.RemoteProtocolError("server disconnected before the end of the response")
            _feed(parsed.parser, data)

    async def aclose(self) -> None:
        if self._released:
            return
        self._released = True
        parsed = self._parsed
        parsed.parser = None  # parser and callbacks point at each other: let plain refcounting free them
        # keep_alive is only ever set when the parser itself saw the message end (never for a
        # body that ended with the connection).
        if parsed.keep_alive and not parsed.body:
            self._pool._checkin(self._origin, self._conn)
        else:
            self._conn.close()


def _delimited_by_close(headers: list[tuple[bytes, bytes]]) -> bool:
    names = {name.lower() for name, _ in headers}
    return b"content-length" not in names and b"transfer-encoding" not in names
