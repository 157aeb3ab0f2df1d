"""The hub's door inside the app: ASGI middleware in front of every route and the WebSocket.

A Host the hub does not answer to gets 400 (DNS rebinding), a body over the limit gets 413
before a route reads it, and each request is logged by path only. Its refusals answer in the
routes' JSON shape (docs/PROTOCOL.md). The limits below the app (header size and time,
connections) are ``server.py``'s.
"""

import json
import logging
import time
from urllib.parse import urlsplit

from .limits import Throttle

log = logging.getLogger("callpop.api")  # the HTTP API's log: one line per request


class Edge:
    """ASGI middleware at the edge: a Host the hub does not answer to gets 400 (a page on
    another site cannot reach the hub through DNS rebinding), bodies over ``limit`` bytes get 413
    before a route reads them, and every request is logged by path only (query strings may carry
    numbers or secrets)."""

    def __init__(self, app, limit: int, hosts: frozenset[str]):
        self.app, self.limit, self.hosts = app, limit, hosts
        self.logged = Throttle(60.0)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        host = _host_name(headers.get(b"host", b"").decode("latin-1"))
        if host not in self.hosts:
            return await _answer(scope, send, 400, "bad_host", f"this hub does not answer to host {host[:60]!r}; "
                                 "add it to CALLPOP_ALLOWED_HOSTS or CALLPOP_PUBLIC_URL")
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)
        started, status = time.perf_counter(), [0]

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        app_receive = receive
        if not declared:  # chunked: read it here (bodies are small) so the limit holds
            body, _ = await _read_body(receive, self.limit)
            if len(body) > self.limit:
                return await self._refuse(send)
            app_receive = _replaying(body, receive)

        try:
            await self.app(scope, app_receive, sending)
        finally:
            # Failures at INFO, but a flood of them (bad tokens, scans) one line a minute per status.
            level, held = logging.DEBUG, 0
            if status[0] >= 400:
                allowed, held = self.logged.allow(status[0])
                level = logging.INFO if allowed else logging.DEBUG
            log.log(level, "%s %s -> %d (%.1f ms)%s", scope["method"], scope["path"], status[0],
                    (time.perf_counter() - started) * 1000, f" ({held} like it not logged)" if held else "")

    async def _refuse(self, send):
        await _answer({"type": "http"}, send, 413, "body_too_large", f"request body over {self.limit} bytes")


def _host_name(header: str) -> str:
    """The Host header's name without its port, lower case; IPv6 without brackets."""
    return urlsplit("//" + header.strip()).hostname or ""


async def _answer(scope, send, status: int, code: str, message: str) -> None:
    """An error answered at the edge, in the routes' JSON shape; for a WebSocket handshake, as
    ASGI's denial response (an HTTP answer instead of the upgrade)."""
    kind = "websocket.http.response" if scope["type"] == "websocket" else "http.response"
    body = json.dumps({"error": code, "message": message}).encode()
    await send({"type": kind + ".start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": kind + ".body", "body": body})


async def _read_body(receive, limit: int) -> tuple[bytes, bool]:
    """(body, the client left): the request body, read until its end, until the client leaves,
    or until it runs over ``limit`` bytes (then what was read, longer than the limit)."""
    chunks, size, more = [], 0, True
    while more and size <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        more = message.get("more_body", False)
    return b"".join(chunks), False


def _replaying(body: bytes, receive):
    """A receive that hands the body already read to the app, then the real receive."""
    replayed = False

    async def again():
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return again
