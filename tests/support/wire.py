"""Raw HTTP/1.1 framing for the bare CRM and the load generator's poster: as little CPU as
possible, so the machine's cores go to the server being measured."""

from __future__ import annotations

import asyncio


async def read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One HTTP message: its head (up to the blank line) and its body, by Content-Length (neither
    side ever sends a chunked body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, (await reader.readexactly(length) if length else b"")
