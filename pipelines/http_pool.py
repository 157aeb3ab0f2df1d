"""The hub's outgoing HTTP/1.1 connections (CRM lookups, dial webhooks, Voicenter's API): a
keep-alive pool per origin, the transport under the shared ``httpx.AsyncClient``.

httpx's own pool (httpcore) polls the socket of every pooled connection each time a request
starts or a response closes, through several layers of anyio: at 200 events/s that was ~18 % of
the event loop, and one CRM lookup cost ~1.4 ms of CPU. This pool keeps idle connections in a
list per origin, notices a connection the server closed from the stream's own EOF flag (no
system call), and parses responses with httptools (C): ~0.7 ms a lookup. httpx above it still
builds the request, follows redirects, decodes the body, applies the client's timeouts (passed
down per request) and raises its usual errors. (A client given its own transport does not read
proxies from the environment: the hub connects to the CRM itself.)

httpx's client layers (request and URL objects, header merging, the redirect and auth loops, the
decoders) still cost more than the pool itself. ``PlainGet`` and ``HttpPool.get`` skip them for
the one request the hub makes on every call, the CRM lookup: the head is built from a template,
the whole answer comes back as ``Answer``. ~0.25 ms of CPU a lookup instead of ~0.7 ms. The
caller keeps httpx for everything a plain GET does not cover (see ``CrmClient``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import dataclasses
import time
from typing import AsyncIterator, Mapping
from urllib.parse import unquote_plus, urlencode

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


class TooLarge(Exception):
    """The answer's body is longer than the reader's cap."""


async def read_capped(chunks: AsyncIterator[bytes], declared_length: str, max_bytes: int) -> bytes:
    """A body whole, or ``TooLarge`` as soon as its declared length or what arrived passes
    ``max_bytes`` (a body that never ends is cut there)."""
    if declared_length.isdigit() and int(declared_length) > max_bytes:
        raise TooLarge()
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge()
        parts.append(chunk)
    return b"".join(parts)


def origin_of(url: httpx.URL) -> tuple[str, str, int]:
    """(scheme, host, port): what a kept connection is filed under."""
    return url.scheme, url.host, url.port or DEFAULT_PORTS[url.scheme]


@dataclasses.dataclass(frozen=True)
class Answer:
    """One whole HTTP answer, as ``HttpPool.get`` read it."""
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> str:
        return header_value(self.headers, name)


def header_value(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    """The first value of the header ``name`` (lower case), or ""."""
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


class PlainGet:
    """GETs of one URL with query parameters added per request, their head built from a
    template. ``PlainGet.of`` refuses (None) what this does not cover: a scheme other than
    http(s), credentials in the URL (httpx turns them into Basic auth), a header httpx would
    refuse. No compression is asked for: the answer is read whole, as it comes."""

    def __init__(self, url: httpx.URL, headers: httpx.Headers):
        self.origin = origin_of(url)
        path, _, query = url.raw_path.decode("ascii").partition("?")
        self._path = path or "/"
        # The URL's own query is kept as written; a parameter of the same name replaces it
        # (as httpx's copy_merge_params does).
        self._query = [(unquote_plus(seg.partition("=")[0]), seg) for seg in query.split("&") if seg]
        lines = [b"Host: " + url.netloc] + [name + b": " + value for name, value in headers.raw
                                            if name.lower() not in (b"host", b"accept-encoding")]
        self._head_rest = b"\r\n".join(lines) + b"\r\n\r\n"

    @classmethod
    def of(cls, url: httpx.URL, headers: httpx.Headers) -> "PlainGet | None":
        if url.scheme not in DEFAULT_PORTS or url.userinfo or not url.host:
            return None
        if any(c in b"\r\n\0" for name, value in headers.raw for c in name + value):
            return None
        return cls(url, headers)

    def head(self, params: Mapping[str, str]) -> bytes:
        """The request line and headers of a GET with ``params`` added to the URL's query."""
        kept = [seg for key, seg in self._query if key not in params]
        query = "&".join(kept + [urlencode(params)]) if params else "&".join(kept)
        return f"GET {self._path}{'?' if query else ''}{query} HTTP/1.1\r\n".encode("ascii") + self._head_rest


async def _within(seconds: float | None, awaitable, error: type[httpx.TimeoutException], what: str):
    if seconds is None:  # the caller bounds the whole request
        return await awaitable
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
        origin = origin_of(request.url)
        timeouts = request.extensions.get("timeout", {})
        payload = self._head(request) + await request.aread()
        conn, parsed = await self._exchange(origin, payload, timeouts, request.method in IDEMPOTENT)
        stream = _Body(self, origin, conn, parsed, timeouts.get("read"))
        return httpx.Response(parsed.parser.get_status_code(), headers=parsed.headers, stream=stream,
                              extensions={"http_version": b"HTTP/1.1"})

    # --- without httpx
    async def get(self, origin: tuple[str, str, int], head: bytes, max_bytes: int) -> Answer:
        """Send ``head`` (a GET's request line and headers, see ``PlainGet``) and read the whole
        answer; ``TooLarge`` past ``max_bytes`` of body. Errors are httpx's, as the transport
        raises them; the caller bounds the time (no per-read timeouts here)."""
        conn, parsed = await self._exchange(origin, head, {}, True)
        status = parsed.parser.get_status_code()
        body = _Body(self, origin, conn, parsed, None)
        try:
            content = await read_capped(body, header_value(parsed.headers, b"content-length"), max_bytes)
        finally:
            await body.aclose()
        return Answer(status, parsed.headers, content)

    async def _exchange(self, origin: tuple[str, str, int], payload: bytes, timeouts: Mapping[str, float | None],
                        may_resend: bool) -> tuple[_Connection, _Parsed]:
        """Send ``payload`` on a kept connection (or a new one) and read up to the end of the
        answer's head: the connection and what was parsed of the answer so far."""
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
                if reused and may_resend:
                    continue
                if isinstance(e, OSError):
                    raise httpx.ReadError(str(e) or type(e).__name__) from e
                raise
            except BaseException:
                conn.close()
                raise
            return conn, parsed

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
