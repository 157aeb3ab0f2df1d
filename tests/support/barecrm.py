"""A bare CRM: answers the lookup contract for any number, after an optional fixed delay.

Raw asyncio HTTP/1.1 (on uvloop when it is installed), keep-alive if the client wants it, and
nothing else, so it costs as little CPU as possible on a machine it shares with the server under
test. Every number is known: ``CLIENTNAME`` is "Caller <digits>", so a client can check it got the
answer for its own number.

    python -m tests.support.barecrm --delay-ms 50   # prints "bare crm listening on http://127.0.0.1:PORT"

The lookup URL is that address + ``/lookup`` (any path answers the same).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from urllib.parse import parse_qs, urlsplit

from .crm import contract
from .wire import read_message


def answer(phone: str) -> bytes:
    digits = "".join(ch for ch in phone if ch.isdigit())
    return json.dumps(contract(expected_name(phone), "Bench Ltd", "1",
                               f"https://crm.example.com/contacts/{digits}")).encode()


def expected_name(phone: str) -> str:
    """The ``CLIENTNAME`` this CRM answers for ``phone``."""
    return "Caller " + "".join(ch for ch in phone if ch.isdigit())


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    try:
        while True:
            head, _ = await read_message(reader)
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            target = request_line.split(" ")[1] if " " in request_line else "/"
            phone = parse_qs(urlsplit(target).query).get("phone", [""])[0]
            if delay_s:
                await asyncio.sleep(delay_s)
            body = answer(phone)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main(delay_ms: float, port: int) -> None:
    server = await asyncio.start_server(lambda r, w: handle(r, w, delay_ms / 1000), "127.0.0.1", port, backlog=4096)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"bare crm listening on http://{host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def run(delay_ms: float = 0.0, port: int = 0) -> None:
    try:
        import uvloop
        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - requirements.txt pins uvloop
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main(delay_ms, port))


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m tests.support.barecrm")
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args()
    try:
        run(a.delay_ms, a.port)
    except KeyboardInterrupt:
        pass
