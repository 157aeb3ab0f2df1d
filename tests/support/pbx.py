"""A PBX's dial endpoint for the webhook provider (docs/PROTOCOL.md): a real HTTP server on a free
port that keeps every dial POST it got and answers 202, or 401 when a check of the request fails
(a PBX verifying the signature)."""

from __future__ import annotations

import json
import time
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Callable

from .httpserver import LocalServer

# check(headers, raw body) -> whether the PBX takes the request
Check = Callable[[Message, bytes], bool]


class WebhookPbx(LocalServer):
    def __init__(self, check: Check | None = None):
        self.received: list[tuple[dict[str, str], bytes]] = []  # (headers, raw body) of each POST
        pbx = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                pbx.received.append((dict(self.headers), body))
                self.send_response(202 if check is None or check(self.headers, body) else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(Handler)
        self.url = self.origin + "/dial"

    def last(self, timeout: float = 5.0) -> tuple[dict[str, str], bytes]:
        """The last request received (headers, raw body), waiting for one if none came yet."""
        deadline = time.monotonic() + timeout
        while not self.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.received, f"no dial POST reached the PBX within {timeout} s"
        return self.received[-1]

    def last_dial(self, timeout: float = 5.0) -> dict:
        """The body of the last dial POST, parsed."""
        return json.loads(self.last(timeout)[1])
