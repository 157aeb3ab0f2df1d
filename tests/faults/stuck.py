"""A browser tab that stopped reading its socket (frozen, swapped out, debugger paused), as a
raw WebSocket client: it completes the handshake and says hello, then reads nothing until told.
A small receive buffer makes the hub's side fill up after a few frames rather than megabytes."""

from __future__ import annotations

import json
import os
import socket
import struct


def frame(text: str) -> bytes:
    """A masked text frame, as browsers send them."""
    data, mask = text.encode(), os.urandom(4)
    n = len(data)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


class StuckBrowser:
    def __init__(self, host: str, port: int, token: str, rcvbuf: int = 4096):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((host, port))
        self.sock.sendall(b"GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                          % (host.encode(), port))
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += self.sock.recv(1)
        assert b" 101 " in buf.split(b"\r\n")[0], buf
        self.sock.sendall(frame(json.dumps({"type": "hello", "token": token})))

    def close(self) -> None:
        self.sock.close()

    def read_all(self, timeout: float = 10):
        """Read what the hub sent until it closed; returns (text frames, close code or None)."""
        self.sock.settimeout(timeout)
        data = b""
        try:
            while chunk := self.sock.recv(65536):
                data += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        texts, code, i = [], None, 0
        while i + 2 <= len(data):
            op, n = data[i] & 0x0F, data[i + 1] & 0x7F
            i += 2
            if n == 126:
                n = struct.unpack("!H", data[i:i + 2])[0]
                i += 2
            elif n == 127:
                n = struct.unpack("!Q", data[i:i + 8])[0]
                i += 8
            if i + n > len(data):
                break
            payload = data[i:i + n]
            i += n
            if op == 1:
                texts.append(payload.decode())
            elif op == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        return texts, code
