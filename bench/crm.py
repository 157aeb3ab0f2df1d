"""A bare CRM for benchmarks: answers the lookup contract for any number, after an optional delay.

Raw asyncio HTTP/1.1 with keep-alive and nothing else, so that it costs as little CPU as possible
on a 2-core machine where the hub and the load generator need the rest. Every number is known:
``CLIENTNAME`` is "Caller <digits>", so the client can check it got the answer for its number.

    python -m bench.crm --delay-ms 50      # prints "bench crm listening on http://127.0.0.1:PORT"
"""

from __future__ import annotations

import argparse
import asyncio
import json
from urllib.parse import parse_qs, urlsplit

from .wire import read_message


def answer(phone: str) -> bytes:
    digits = "".join(ch for ch in phone if ch.isdigit())
    return json.dumps({"STATUS": "OK", "URL": f"https://crm.example.com/contacts/{digits}",
                       "CLIENTNAME": f"Caller {digits}", "TOTAL": "1", "COMPANY": "Bench Ltd"}).encode()


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
    server = await asyncio.start_server(lambda r, w: handle(r, w, delay_ms / 1000), "127.0.0.1", port, backlog=1024)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"bench crm listening on http://{host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args()
    try:
        asyncio.run(main(a.delay_ms, a.port))
    except KeyboardInterrupt:
        pass
