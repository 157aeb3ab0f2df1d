"""A misbehaving HTTP server for tests: real TCP on port 0, answers written as raw bytes, so it
can send what no well-behaved server would (a second answer after the first, an idle 408, 103
Early Hints, 20,000 headers, a redirect to another origin)."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from typing import Callable
from urllib.parse import parse_qs, urlsplit

# answer(request) -> (bytes to write, keep the connection open)
Answer = Callable[["Request"], tuple[bytes, bool]]


class Request:
    def __init__(self, head: bytes, number_on_connection: int):
        self.head = head
        lines = head.decode("latin-1").split("\r\n")
        self.method, self.target, _ = (lines[0].split(" ") + ["", ""])[:3]
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.path = urlsplit(self.target).path
        self.params = {k: v[0] for k, v in parse_qs(urlsplit(self.target).query).items()}
        self.number_on_connection = number_on_connection

    @property
    def phone(self) -> str:
        return self.params.get("phone", "")


def response(body: bytes | dict = b"", status: str = "200 OK", *headers: str, length: bool = True) -> bytes:
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    head = [f"HTTP/1.1 {status}", "Content-Type: application/json", *headers]
    if length:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class RawServer:
    def __init__(self, answer: Answer, tls: ssl.SSLContext | None = None,
                 after: Callable[[socket.socket, Request], None] | None = None):
        """``after(conn, request)`` runs once the answer is written (e.g. an idle 408 later on)."""
        self.answer, self.after = answer, after
        self.requests: list[Request] = []
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._tls = tls
        self.port = self._sock.getsockname()[1]
        scheme = "https" if tls else "http"
        self.origin = f"{scheme}://127.0.0.1:{self.port}"
        self.url = self.origin + "/lookup"
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            if self._tls is not None:
                try:
                    conn = self._tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    conn.close()
                    continue
            self.connections += 1
            self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf, n = b"", 0
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                n += 1
                request = Request(head, n)
                length = int(request.headers.get("content-length", "0") or 0)
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                self.requests.append(request)
                data, keep = self.answer(request)
                conn.sendall(data)
                if self.after is not None:
                    self.after(conn, request)
                if not keep:
                    return
        except OSError:
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def close(self) -> None:
        self._sock.close()
        for conn in self._open:
            try:
                conn.close()
            except OSError:
                pass

    def __enter__(self) -> "RawServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
