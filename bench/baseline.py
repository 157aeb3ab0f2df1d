"""The bare baseline the hub is measured against: the least a screen-pop server must do, built
from the same stock libraries as the hub and configured like it.

uvicorn (httptools, websockets-sansio, uvloop, no per-message deflate, no access log) serves a
small Starlette app:

- ``POST /api/events`` (Bearer ingest token): ``json.loads`` of the body; a ringing event is
  looked up with one GET ``{crm}?phone=<caller>`` on the hub's own ``httpx.AsyncClient``
  (``pipelines.http_client.client``: the same limits, timeouts and no keep-alive), the same ``pop`` frame is
  sent to every socket of the agent whose extension rings, then 202.
- ``/ws``: first message ``{"type":"hello","token":…}``, answered ``{"type":"welcome",…}``; a
  ``{"type":"heartbeat"}`` to each socket every 15 s (each at a random phase).

No validation framework, no database, no call book, no cache, no deadline: whatever the hub
spends beyond this is the price of what it does more.

    python -m bench.baseline --agents agents.csv --crm http://127.0.0.1:P/lookup --token T
    # prints "bench baseline listening on http://127.0.0.1:PORT" (HTTP and WebSocket)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import random
import socket
from datetime import datetime, timezone

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from pipelines import http_client, settings

HEARTBEAT_S = 15.0


def utcnow() -> str:
    return datetime.now(timezone.utc).replace(tzinfo=None).isoformat() + "Z"


def create_app(agents_csv: str, crm_url: str, token: str) -> Starlette:
    with open(agents_csv, encoding="utf-8") as f:
        by_token = {r["token"]: r for r in csv.DictReader(f)}
    by_ext: dict[str, set[WebSocket]] = {}
    auth = f"Bearer {token}"
    http: dict[str, httpx.AsyncClient] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        http["client"] = http_client.client(settings.load(env_file=None))
        yield
        await http["client"].aclose()

    async def events(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != auth:
            return JSONResponse({"error": "unauthorized", "message": "bad ingest token"}, 401)
        ev = json.loads(await request.body())
        if ev.get("type") == "ringing":
            caller = ev.get("caller", "")
            r = await http["client"].get(crm_url, params={"phone": caller})
            crm = r.json()
            total = int(crm.get("TOTAL") or 0)
            frame = json.dumps({
                "type": "pop", "call_id": ev["call_id"],
                "status": "found" if total == 1 else "multiple" if total else "not_found",
                "phone": caller, "e164": None, "raw": caller, "name": crm.get("CLIENTNAME", ""),
                "company": crm.get("COMPANY", ""), "url": crm.get("URL", ""), "total": total,
                "did": ev.get("callee", ""), "extension": ev.get("extension", ""),
                "direction": ev.get("direction", "inbound"), "at": utcnow(),
            }, ensure_ascii=False, separators=(",", ":"))
            for ws in list(by_ext.get(ev.get("extension", ""), ())):
                with contextlib.suppress(Exception):
                    await ws.send_text(frame)
        return JSONResponse({"status": "accepted", "call_id": ev.get("call_id")}, 202)

    async def heartbeats(ws: WebSocket) -> None:
        # Each socket's beat at a phase of its own, as when agents sign in over a morning (the
        # bench signs 1,000 in within a second: in step, their beats would stall the loop at once).
        await asyncio.sleep(random.uniform(0, HEARTBEAT_S))
        while True:
            await ws.send_text(json.dumps({"type": "heartbeat", "at": utcnow()}))
            await asyncio.sleep(HEARTBEAT_S)

    async def session(ws: WebSocket) -> None:
        await ws.accept()
        try:
            hello = json.loads(await ws.receive_text())
        except (WebSocketDisconnect, ValueError):
            return
        agent = by_token.get(hello.get("token", "")) if isinstance(hello, dict) else None
        if agent is None:
            await ws.close(4401, "bad token")
            return
        peers = by_ext.setdefault(agent["extension"], set())
        peers.add(ws)
        beating = asyncio.get_running_loop().create_task(heartbeats(ws))
        try:
            await ws.send_text(json.dumps({"type": "welcome", "agent": {"id": agent["id"], "name": agent["name"]},
                                           "heartbeat_s": HEARTBEAT_S}))
            while True:
                await ws.receive_text()  # acks and pings: nothing to do
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            peers.discard(ws)
            beating.cancel()

    return Starlette(routes=[Route("/api/events", events, methods=["POST"]), WebSocketRoute("/ws", session)],
                     lifespan=lifespan)


def main(agents_csv: str, crm_url: str, token: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    config = uvicorn.Config(create_app(agents_csv, crm_url, token), loop="uvloop", http="httptools",
                            ws="websockets-sansio", ws_max_size=65536, ws_ping_interval=20, ws_ping_timeout=20,
                            ws_per_message_deflate=False, log_config=None, access_log=False, lifespan="on",
                            server_header=False)
    print(f"bench baseline listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m bench.baseline")
    p.add_argument("--agents", required=True)
    p.add_argument("--crm", required=True)
    p.add_argument("--token", required=True, help="the ingest token POST /api/events must carry")
    a = p.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        main(a.agents, a.crm, a.token)
