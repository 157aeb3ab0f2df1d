"""The real hub in this process (``BackgroundHub`` on a free port), real WebSocket clients of it,
real HTTP to it, and its own database polled until rows arrive."""

from __future__ import annotations

import contextlib
import json
import ssl
import time
from pathlib import Path
from typing import Any, Callable

import httpx
from websockets.sync.client import ClientConnection, connect

from pipelines import settings as settings_mod
from pipelines.server import BackgroundHub

from . import INGEST, METRICS, ROOT

TOKENS = {"noa": "demo-token-noa", "avi": "demo-token-avi", "sarah": "demo-token-sarah",
          "james": "demo-token-james", "dana": "demo-token-dana"}


def hub_settings(tmp_path: Path, **overrides: Any) -> settings_mod.Settings:
    base = dict(port=0, db_path=str(tmp_path / "callpop.duckdb"), ingest_token=INGEST, metrics_token=METRICS,
                sim_calls_per_minute=0.0, sim_speed=20.0, agents_csv=str(ROOT / "data" / "agents.csv"),
                contacts_csv=str(ROOT / "data" / "contacts.csv"), log_level="WARNING", sample_crm=True)
    return settings_mod.load(env_file=None, **{**base, **overrides})


class Agent:
    """One browser of one agent: a real WebSocket client that signed in."""

    def __init__(self, hub: BackgroundHub, token: str, client: str = "test", tls: ssl.SSLContext | None = None):
        """``hub``: anything with a ``ws_url`` (a wss:// one through a proxy: ``tls`` trusts it)."""
        self.ws: ClientConnection = connect(hub.ws_url, open_timeout=5, ssl=tls)
        self.ws.send(json.dumps({"type": "hello", "token": token, "client": client}))
        self.welcome = self.recv("welcome")

    def send(self, message: dict) -> None:
        self.ws.send(json.dumps(message))

    def recv(self, type_: str | None = None, timeout: float = 5.0,
             where: Callable[[dict], bool] | None = None) -> dict:
        """The next message of this type (others, such as heartbeats, are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {type_ or 'message'} within {timeout} s")
            message = json.loads(self.ws.recv(timeout=left))
            if (type_ is None or message.get("type") == type_) and (where is None or where(message)):
                return message

    def nothing(self, type_: str, within: float = 0.5) -> None:
        """Assert no message of this type arrives within the time given."""
        with contextlib.suppress(TimeoutError):
            message = self.recv(type_, timeout=within)
            raise AssertionError(f"unexpected {type_}: {message}")

    def close(self) -> None:
        self.ws.close()


def post_event(hub: BackgroundHub, token: str = INGEST, **event: Any) -> httpx.Response:
    return httpx.post(f"{hub.url}/api/events", json=event, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def api(hub: BackgroundHub, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{hub.url}{path}", headers=headers, timeout=10, **kw)


def wait_rows(hub: BackgroundHub, sql: str, params: list | None = None, n: int = 1, timeout: float = 5.0):
    """Poll the hub's database (through the hub's own connection) until the query has n rows."""
    deadline = time.monotonic() + timeout
    while True:
        df = hub.hub.store.query(sql, params)
        if len(df) >= n or time.monotonic() > deadline:
            return df
        time.sleep(0.05)
