"""The bare baseline the hub is measured against: the least a screen-pop server must do.

A ringing event arrives over HTTP (a raw asyncio HTTP/1.1 reader, keep-alive), one bare
``httpx`` GET goes to the same CRM, and the same ``pop`` frame is pushed with a bare
``websockets`` server to the agent's sockets; then 202. No validation framework, no routing
book, no database, no per-socket queues: whatever the hub spends beyond this is its overhead.

    python -m bench.baseline --agents agents.csv --crm http://127.0.0.1:P/lookup
    # prints "bench baseline listening on http://127.0.0.1:HTTP_PORT ws=WS_PORT"
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
from datetime import datetime, timezone

import httpx
from websockets.asyncio.server import ServerConnection, serve

from .wire import read_message


class Baseline:
    def __init__(self, agents_csv: str, crm_url: str):
        with open(agents_csv, encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        self.by_token = {r["token"]: r for r in rows}
        self.by_ext: dict[str, set[ServerConnection]] = {}
        self.crm_url = crm_url
        self.http = httpx.AsyncClient(limits=httpx.Limits(max_connections=50, max_keepalive_connections=50),
                                      timeout=10)

    # --- the WebSocket side
    async def socket(self, ws: ServerConnection) -> None:
        try:
            hello = json.loads(await ws.recv())
        except Exception:  # noqa: BLE001 - a bad client goes away
            return
        agent = self.by_token.get(hello.get("token", "")) if isinstance(hello, dict) else None
        if agent is None:
            await ws.close(4401, "bad token")
            return
        peers = self.by_ext.setdefault(agent["extension"], set())
        peers.add(ws)
        try:
            await ws.send(json.dumps({"type": "welcome", "agent": {"id": agent["id"], "name": agent["name"]}}))
            async for _ in ws:
                pass
        except Exception:  # noqa: BLE001
            pass
        finally:
            peers.discard(ws)

    # --- the event side
    async def event(self, body: bytes) -> int:
        ev = json.loads(body)
        if ev.get("type") != "ringing":
            return 202
        r = await self.http.get(self.crm_url, params={"phone": ev.get("caller", "")})
        crm = r.json()
        total = int(crm.get("TOTAL") or 0)
        frame = json.dumps({
            "type": "pop", "call_id": ev["call_id"], "status": "found" if total == 1 else "multiple" if total else
            "not_found", "phone": ev.get("caller", ""), "e164": None, "raw": ev.get("caller", ""),
            "name": crm.get("CLIENTNAME", ""), "company": crm.get("COMPANY", ""), "url": crm.get("URL", ""),
            "total": total, "did": ev.get("callee", ""), "extension": ev.get("extension", ""),
            "direction": "inbound", "at": datetime.now(timezone.utc).replace(tzinfo=None).isoformat() + "Z",
        }, ensure_ascii=False, separators=(",", ":"))
        for ws in list(self.by_ext.get(ev.get("extension", ""), ())):
            try:
                await ws.send(frame)
            except Exception:  # noqa: BLE001
                pass
        return 202

    async def http_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                _, body = await read_message(reader)
                status = await self.event(body)
                out = b'{"status":"accepted"}'
                writer.write(f"HTTP/1.1 {status} Accepted\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(out)}\r\n\r\n".encode() + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


async def main(agents_csv: str, crm_url: str) -> None:
    b = Baseline(agents_csv, crm_url)
    http_server = await asyncio.start_server(b.http_conn, "127.0.0.1", 0, backlog=2048)
    async with serve(b.socket, "127.0.0.1", 0, max_size=65536, ping_interval=20, backlog=2048) as ws_server:
        ws_port = ws_server.sockets[0].getsockname()[1] if hasattr(ws_server, "sockets") else 0
        port = http_server.sockets[0].getsockname()[1]
        print(f"bench baseline listening on http://127.0.0.1:{port} ws={ws_port}", flush=True)
        async with http_server:
            await http_server.serve_forever()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--agents", required=True)
    p.add_argument("--crm", required=True)
    a = p.parse_args()
    try:
        asyncio.run(main(a.agents, a.crm))
    except KeyboardInterrupt:
        pass
