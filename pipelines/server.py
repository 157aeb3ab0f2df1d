"""Running the hub: uvicorn on a socket we bind ourselves, so port 0 works and the sample CRM
(served by the hub itself) knows its own address before the first lookup."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import threading

import uvicorn
import uvloop

from .api import create_app
from .hub import Hub
from .settings import Settings

log = logging.getLogger("callpop.server")


class _NoFrameText(logging.Filter):
    """websockets logs every frame's text at DEBUG on uvicorn's logger, and a hello frame holds
    the agent's token: those lines are dropped, at any level the hub is run with."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.DEBUG and record.msg in ("< %s", "> %s")
                    and "websockets" in record.pathname)


def _quiet_frames() -> None:
    frames = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _NoFrameText) for f in frames.filters):
        frames.addFilter(_NoFrameText())


class _Server(uvicorn.Server):
    own_process = False  # set by serve(): the garbage collector's settings are ours to tune

    async def startup(self, sockets=None):
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
    _quiet_frames()
    sock, settings = bind(settings)
    app = create_app(settings, hub)
    # httptools parses HTTP in C; frames are small JSON, so per-message compression would cost
    # CPU and ~64 KB of zlib state per socket for nothing. proxy_headers off: uvicorn would
    # otherwise believe X-Forwarded-For from any local process (its default trusts 127.0.0.1);
    # the hub reads that header itself, from CALLPOP_TRUSTED_PROXIES only (providers/peers.py).
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", http="httptools",
                            proxy_headers=False,
                            ws="websockets-sansio", ws_max_size=65536, ws_ping_interval=20, ws_ping_timeout=20,
                            ws_per_message_deflate=False, timeout_graceful_shutdown=5, server_header=False)
    return _Server(config), sock, settings


def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM; uvicorn then stops accepting, and the hub's lifespan finishes
    in-flight work, closes every socket with a close frame and checkpoints the database."""
    server, sock, settings = make_server(settings)
    server.own_process = True
    log.info("callpop hub listening on %s (provider %s)", settings.base_url, settings.provider)
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
