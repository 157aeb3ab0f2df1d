"""Running the hub: uvicorn on a socket we bind ourselves, so port 0 works and the sample CRM
(served by the hub itself) knows its own address before the first lookup."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import socket
import threading

import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .api import create_app
from .hub import Hub
from .limits import Throttle
from .settings import Settings

try:
    import resource
except ImportError:  # not on Windows: the limit is not ours to raise there
    resource = None

log = logging.getLogger("callpop.server")
_OUT_OF_FILES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_LIMITS = Throttle(60.0)  # the warnings below, once a minute each: a flood must not fill the log


def open_files_limit() -> int:
    if resource is None:
        return 1 << 20
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def raise_open_files(wanted: int) -> int:
    """Raise this process's open-file limit (soft) to its hard limit: every connection is a file,
    and distributions default to 1,024. Returns the limit in force; says so if below ``wanted``."""
    if resource is None:
        return open_files_limit()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # e.g. macOS refuses more than its OPEN_MAX
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (min(target, wanted), hard))
    soft = open_files_limit()
    if soft < wanted:
        log.warning("the open-file limit is %d, below CALLPOP_MAX_CONNECTIONS plus the hub's own files (%d): "
                    "past it, new connections are refused; raise the hard limit (ulimit -Hn, LimitNOFILE=)",
                    soft, wanted)
    return soft


def _held(n: int) -> str:
    return f" ({n} like it not logged)" if n else ""


class DoorProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits it lacks. httptools (llhttp) has no cap on
    header size: it gathers a header's value in a Python bytes object, so 10 MB of header was
    10 MB held (and copied over and over) per connection. And uvicorn arms no timer before the
    first request or while a request's head trickles in (its keep-alive timer is cancelled by
    any byte), so a connection that sends nothing, or a byte now and then, held a file for ever.

    Here the bytes received while a head is incomplete are counted as they come (one read past
    the cap at most is buffered: 431 and close), a head that came whole in one read is measured
    as parsed (same answer), and a head must be complete within
    ``header_timeout_s`` of the connection, or of the previous answer on it; else it is closed."""

    max_header_bytes = 32768
    header_timeout_s = 10.0
    warn_fd_at = 1 << 30  # a connection on a file descriptor this high: the limit is near

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes, self._in_head, self._parsed, self._refused = 0, True, 0, False
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timeout)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.fileno() >= self.warn_fd_at:
            allowed, held = _LIMITS.allow("fd")
            if allowed:
                log.warning("a connection took file descriptor %d of the open-file limit %d: connections past the "
                            "limit are refused by the system%s", sock.fileno(), open_files_limit(), _held(held))

    def connection_lost(self, exc) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self.max_header_bytes and not self.transport.is_closing():
            self._refuse_head()

    def _refuse_head(self) -> None:
        self._in_head, self._refused = False, True
        self._stop_head_timer()
        body = (b'{"error":"headers_too_large","message":"request line and headers over %d bytes"}'
                % self.max_header_bytes)
        self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json"
                             b"\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
        self.transport.close()

    def on_url(self, url: bytes) -> None:
        self._parsed += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._parsed += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        if self._parsed > self.max_header_bytes:
            self._refuse_head()  # the request is not run; the rest of what was read is ignored
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._in_head, self._head_bytes, self._parsed = True, 0, 0  # what comes next is the next request's head

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._stop_head_timer()
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timeout)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        if self.cycle is not None and not self.cycle.response_complete:  # an answer is still on its way
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timeout)
            return
        self.transport.close()


class _OncePerMinute(logging.Filter):
    """uvicorn logs a WARNING for each malformed request and each request past the connection
    limit: one line per message a minute, then one saying how many were not logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING or record.exc_info:
            return True
        allowed, held = _LIMITS.allow(("uvicorn", record.msg))
        if allowed and held:
            record.msg, record.args = record.getMessage() + _held(held), ()
        return allowed


def _accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio reports a failed accept (out of files) to the loop's exception handler, then
    retries a second later, on every second: log it once a minute, as a WARNING. (uvloop says
    nothing: libuv accepts and closes the connection on a spare descriptor; the warning in
    DoorProtocol.connection_made tells of the limit before it is reached.)"""
    previous = loop.get_exception_handler()

    def handler(loop, context):
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _OUT_OF_FILES:
            allowed, held = _LIMITS.allow("accept")
            if allowed:
                log.warning("cannot accept connections: %s (open-file limit %d)%s", exc.strerror,
                            open_files_limit(), _held(held))
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)
    loop.set_exception_handler(handler)


class _NoFrameText(logging.Filter):
    """websockets logs every frame's text at DEBUG on uvicorn's logger, and a hello frame holds
    the agent's token: those lines are dropped, at any level the hub is run with."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.DEBUG and record.msg in ("< %s", "> %s")
                    and "websockets" in record.pathname)


def _filter_uvicorn_log() -> None:
    """uvicorn's logger (websockets logs on it too) without frame text and without floods."""
    logger = logging.getLogger("uvicorn.error")
    for kind in (_NoFrameText, _OncePerMinute):
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())


class _Server(uvicorn.Server):
    own_process = False  # set by serve(): the garbage collector's settings are ours to tune

    async def startup(self, sockets=None):
        _accept_errors(asyncio.get_running_loop())
        await super().startup(sockets)
        if self.own_process:
            # What is loaded by now (modules, contacts, agents) lives as long as the process: frozen,
            # full collections scan only what came after (they paused the loop 100-400 ms under
            # load). A larger first generation lets a request's short-lived objects die young instead
            # of being promoted: the collector's time at 150 events/s fell to about a tenth.
            gc.collect()
            gc.freeze()
            gc.set_threshold(10_000, 10, 10)

    @contextlib.contextmanager
    def capture_signals(self):
        with super().capture_signals():
            yield
            # SIGTERM/SIGINT asked for the graceful stop that just finished: exit 0 rather than
            # have uvicorn re-raise the signal (which makes `make run` look like a crash).
            self._captured_signals.clear()

    async def shutdown(self, sockets=None):
        # uvicorn's own shutdown closes every WebSocket with 1012 before the app's lifespan ends,
        # dropping pops still in flight. The protocol promises those pops and then 1001: stop
        # accepting, let the hub drain, then hand over for HTTP requests in flight and the rest.
        for server in self.servers:
            server.close()
        hub = getattr(self.config.app.state, "hub", None)
        if hub is not None:
            await hub.drain()
        await super().shutdown(sockets)


def bind(settings: Settings) -> tuple[socket.socket, Settings]:
    """Listen on HOST:PORT (port 0 = any free one) and return the settings with the real port."""
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock, settings.replace(port=sock.getsockname()[1])


def make_server(settings: Settings, hub: Hub | None = None) -> tuple[uvicorn.Server, socket.socket, Settings]:
    _filter_uvicorn_log()
    sock, settings = bind(settings)
    app = create_app(settings, hub)
    limit = open_files_limit()
    protocol = type("DoorProtocol", (DoorProtocol,), {
        "max_header_bytes": settings.max_header_bytes, "header_timeout_s": settings.header_timeout_s,
        "warn_fd_at": limit - min(64, limit // 10)})  # the last files are the database's and the CRM's
    # httptools parses HTTP in C; frames are small JSON, so per-message compression would cost
    # CPU and ~64 KB of zlib state per socket for nothing. proxy_headers off: uvicorn would
    # otherwise believe X-Forwarded-For from any local process (its default trusts 127.0.0.1);
    # the hub reads that header itself, from CALLPOP_TRUSTED_PROXIES only (providers/peers.py).
    # limit_concurrency counts WebSockets too: past it a request gets 503 and its connection is closed.
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", http=protocol,
                            proxy_headers=False,
                            ws="websockets-sansio", ws_max_size=65536, ws_ping_interval=20, ws_ping_timeout=20,
                            ws_per_message_deflate=False, timeout_graceful_shutdown=5, server_header=False,
                            limit_concurrency=settings.max_connections, timeout_keep_alive=settings.keep_alive_s)
    return _Server(config), sock, settings


def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM; uvicorn then stops accepting, and the hub's lifespan finishes
    in-flight work, closes every socket with a close frame and checkpoints the database."""
    raise_open_files(settings.max_connections + 256)  # before make_server, which reads the limit
    server, sock, settings = make_server(settings)
    server.own_process = True
    # Where it listens, not the public URL (behind a proxy they differ; tests parse this line).
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    log.info("callpop hub listening on http://%s:%d%s (provider %s)", host, settings.port,
             f", public address {settings.public_url}" if settings.public_url else "", settings.provider)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # uvloop: the I/O loop in C
        runner.run(server.serve(sockets=[sock]))


class BackgroundHub:
    """The real hub, served on a free port from a thread of this process (tests, notebooks).

    ``with BackgroundHub(settings) as bg: bg.url ... bg.hub.store.query(...)``"""

    def __init__(self, settings: Settings, hub: Hub | None = None):
        self.server, self._sock, self.settings = make_server(settings, hub)
        self.app = self.server.config.app
        self.hub: Hub = self.app.state.hub
        self.url = self.settings.base_url
        self.ws_url = self.url.replace("http", "ws", 1) + "/ws"
        self._thread = threading.Thread(target=self._run, name="callpop-hub", daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self.server.serve(sockets=[self._sock]))

    def __enter__(self) -> "BackgroundHub":
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the hub failed to start")
            threading.Event().wait(0.01)
        return self

    def call(self, coro, timeout: float = 10):
        """Run a coroutine on the hub's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)

    def __exit__(self, *exc) -> None:
        self.stop()
