"""A customer's CRM for tests: a real HTTP server on a free port whose answers are scripted
per phone number (delays, HTML, huge bodies, redirect loops, resets...)."""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from .httpserver import LocalServer


@dataclasses.dataclass
class Answer:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/json"
    delay: float = 0.0          # seconds before answering
    trickle: float = 0.0        # seconds between bytes of the body
    redirect_loop: bool = False
    redirect_to: str = ""       # answer 302 to this URL
    reset: bool = False         # close the connection without answering


def contract(name: str = "", company: str = "", total=1, url: str = "https://crm.example.com/c/1",
             status: str = "OK") -> dict:
    """A lookup answer in the CRM contract's shape (docs/PROTOCOL.md); every CRM here answers one."""
    return {"STATUS": status, "URL": url, "CLIENTNAME": name, "TOTAL": total, "COMPANY": company}


class FakeCrm(LocalServer):
    def __init__(self):
        self.answers: dict[str, Answer] = {}
        self.default = Answer(json.dumps(contract(total="0", url="")).encode())
        self.requests: list[dict[str, str]] = []
        crm = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                parts = urlsplit(self.path)
                params = {k: v[0] for k, v in parse_qs(parts.query).items()}
                crm.requests.append({"path": parts.path, **params, **{"header:" + k.lower(): v for k, v in self.headers.items()}})
                answer = crm.answers.get(params.get("phone", ""), crm.default)
                if answer.redirect_loop or answer.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", answer.redirect_to or self.path)
                    self.end_headers()
                    return
                if answer.reset:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                    return
                if answer.delay:
                    time.sleep(answer.delay)
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                try:
                    if answer.trickle:
                        for i in range(len(answer.body)):
                            self.wfile.write(answer.body[i:i + 1])
                            self.wfile.flush()
                            time.sleep(answer.trickle)
                    else:
                        self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        super().__init__(Handler)
        self.url = self.origin + "/lookup"

    def respond(self, phone: str, body: bytes | str | dict = b"", **kw) -> "FakeCrm":
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        self.answers[phone] = Answer(body, **kw)
        return self

    def lookups_of(self, phone: str) -> int:
        return sum(1 for r in self.requests if r.get("phone") == phone)
