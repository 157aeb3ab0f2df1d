"""The console's only way to the hub: its HTTP API (docs/PROTOCOL.md), with a deadline on every call.

The console never opens the hub's DuckDB file (the hub holds it read-write; DuckDB then refuses
every other process). Everything it shows comes through these methods. Failures become one
exception, ``HubError``, whose ``message`` is written for the operator and never carries a token.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any
from urllib.parse import quote

import httpx

DEFAULT_HUB_URL = "http://127.0.0.1:8765"
TIMEOUT_S = 5.0  # an operator console that hangs is worse than one that says "hub not reachable"
# The hub refuses bodies over CALLPOP_MAX_BODY_BYTES (64 KiB by default): imports go in chunks below it.
IMPORT_CHUNK_BYTES = 60_000


def hub_url() -> str:
    """Where the hub is: CALLPOP_HUB_URL (set by `make run`), else the hub's default address."""
    return (os.environ.get("CALLPOP_HUB_URL") or DEFAULT_HUB_URL).rstrip("/")


class HubError(Exception):
    """The hub could not be asked, or said no. ``kind``: unreachable | unauthorized | refused | failed."""

    def __init__(self, kind: str, message: str, code: str = "", status: int | None = None):
        super().__init__(message)
        self.kind, self.message, self.code, self.status = kind, message, code, status


class HubClient:
    def __init__(self, base_url: str, token: str = "", *, timeout: float = TIMEOUT_S,
                 http: httpx.Client | None = None):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._http = http or httpx.Client(timeout=timeout, headers={"User-Agent": "callpop-console"})

    def with_token(self, token: str) -> "HubClient":
        return HubClient(self.base_url, token, timeout=self.timeout, http=self._http)

    # --- the transport: one place that turns every failure into a HubError
    def _request(self, method: str, path: str, *, auth: bool = True, **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}))
        if auth:
            if not self.token:
                raise HubError("unauthorized", "Sign in with an agent token first (sidebar).")
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = self._http.request(method, self.base_url + path, headers=headers,
                                          timeout=kw.pop("timeout", self.timeout), **kw)
        except httpx.TimeoutException:
            raise HubError("unreachable", f"The hub at {self.base_url} did not answer within "
                                          f"{self.timeout:g} s.") from None
        except httpx.HTTPError as e:
            raise HubError("unreachable", f"The hub at {self.base_url} is not reachable "
                                          f"({type(e).__name__}).") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            code = body.get("error", "") if isinstance(body, dict) else ""
            message = body.get("message", "") if isinstance(body, dict) else ""
            if response.status_code == 401:
                raise HubError("unauthorized", message or "The hub refused the token.", code, 401)
            kind = "refused" if response.status_code < 500 else "failed"
            raise HubError(kind, message or f"The hub answered HTTP {response.status_code}.", code,
                           response.status_code)
        if body is None:
            raise HubError("failed", f"The hub answered {path} with something that is not JSON.")
        return body

    # --- the routes the console uses
    def health(self) -> bool:
        return self._request("GET", "/healthz", auth=False).get("status") == "ok"

    def status(self) -> dict:
        return self._request("GET", "/api/status")

    def me(self) -> dict:
        return self._request("GET", "/api/me")

    def live_calls(self) -> list[dict]:
        return self._request("GET", "/api/calls/live")["calls"]

    def recent_pops(self, limit: int = 50) -> list[dict]:
        return self._request("GET", "/api/pops/recent", params={"limit": limit})["pops"]

    def call_history(self, limit: int = 50) -> dict:
        """``{"calls": [your latest calls, with notes and log state], "dispositions": [...]}``."""
        return self._request("GET", "/api/calls/history", params={"limit": limit})

    def save_note(self, call_id: str, disposition: str, notes: str) -> dict:
        return self._request("POST", f"/api/calls/{quote(call_id, safe='')}/log",
                             json={"disposition": disposition, "notes": notes})

    def contacts(self, q: str = "", limit: int = 5000) -> dict:
        """``{"total": contacts the hub has, "contacts": [...matching, at most limit]}``."""
        return self._request("GET", "/api/contacts", params={"q": q[:100], "limit": limit})

    def dial(self, to: str, leg_a: str, callback_for: str | None = None) -> dict:
        """A click-to-call; ``callback_for``: the missed call (of my inbox) it calls back."""
        body = {"to": to, "leg_a": leg_a, "source": "console"}
        if callback_for:
            body["callback_for"] = callback_for
        return self._request("POST", "/api/dial", json=body)

    def missed(self, state: str = "open") -> dict:
        """My inbox (a supervisor's: the team's): ``{"missed": [entry, ...], "count": open entries}``."""
        return self._request("GET", "/api/missed", params={"state": state})

    def missed_done(self, call_id: str, agent_id: str | None = None) -> dict:
        """Mark an inbox entry handled (``agent_id``: a supervisor handling someone else's)."""
        return self._request("POST", f"/api/missed/{quote(call_id, safe='')}/done",
                             params={"agent_id": agent_id} if agent_id else None)

    def dial_state(self, dial_id: str) -> dict:
        return self._request("GET", f"/api/dials/{dial_id}")

    def crm_check_defaults(self) -> dict:
        """What the CRM check asks by default: ``{"url" (masked), "configured", "phone_format", ...}``."""
        return self._request("GET", "/api/crm/check")

    def crm_check(self, url: str, phone: str, phone_format: str | None = None) -> dict:
        """One lookup run by the hub (supervisors); refused targets raise HubError ``target_refused``."""
        # The hub's own deadline for the lookup (CALLPOP_CRM_LATE_TIMEOUT_MS, 10 s by default) plus its answer.
        return self._request("POST", "/api/crm/check", json={"url": url, "phone": phone, "phone_format": phone_format},
                             timeout=max(self.timeout, 30.0))

    def hangup(self, dial_id: str) -> dict:
        """End one of my dials; the same answer as ``dial_state``. 409 when the provider cannot."""
        return self._request("POST", f"/api/dials/{dial_id}/hangup")

    def import_contacts(self, text: str, dry_run: bool) -> dict:
        """Send CSV text to the hub's import, in chunks under the hub's body limit.

        Each chunk repeats the header; the hub numbers problems by record (header = line 1),
        so problem lines are shifted back to the record numbers of the whole file."""
        total = {"imported": 0, "valid": 0, "dry_run": dry_run, "preview": [], "problems": []}
        for offset, chunk in csv_chunks(text, IMPORT_CHUNK_BYTES):
            part = self._request("POST", "/api/contacts/import", params={"dry_run": str(dry_run).lower()},
                                 content=chunk.encode("utf-8"), headers={"Content-Type": "text/csv"},
                                 timeout=max(self.timeout, 30.0))
            total["imported"] += part.get("imported", 0)
            total["valid"] += part.get("valid", 0)
            total["preview"] += part.get("preview", [])[: 20 - len(total["preview"])]
            total["problems"] += [{"line": p["line"] + offset, "reason": p["reason"]} for p in part.get("problems", [])]
        return total

    # --- agents (supervisors): the answers that carry a token or a code show it once; never kept here
    def agents(self) -> list[dict]:
        return self._request("GET", "/api/agents")["agents"]

    def add_agent(self, fields: dict) -> dict:
        """``{"agent": ..., "token": ...}``: the new agent's token, to be shown once."""
        return self._request("POST", "/api/agents", json=fields)

    def edit_agent(self, agent_id: str, fields: dict) -> dict:
        return self._request("PATCH", f"/api/agents/{quote(agent_id, safe='')}", json=fields)

    def set_agent_disabled(self, agent_id: str, disabled: bool) -> dict:
        return self._request("POST", f"/api/agents/{quote(agent_id, safe='')}/{'disable' if disabled else 'enable'}")

    def new_token(self, agent_id: str) -> dict:
        """``{"agent", "token", "sockets_closed"}``: the old tokens stop working."""
        return self._request("POST", f"/api/agents/{quote(agent_id, safe='')}/token")

    def signin_code(self, agent_id: str) -> dict:
        """``{"code", "link", "hub_url", "expires_in_s"}``."""
        return self._request("POST", f"/api/agents/{quote(agent_id, safe='')}/signin-code")

    def agent_changes(self, limit: int = 50) -> list[dict]:
        return self._request("GET", "/api/agents/changes", params={"limit": limit})["changes"]

    def exchange_code(self, code: str) -> dict:
        """A one-time sign-in code traded for a token of the agent's own: ``{"token", "agent"}``."""
        return self._request("POST", "/api/signin", auth=False, json={"code": code})

    def analytics_list(self) -> Any:
        return self._request("GET", "/api/analytics")

    def analytics(self, name: str, **params: Any) -> Any:
        return self._request("GET", f"/api/analytics/{name}",
                             params={k: v for k, v in params.items() if v is not None}, timeout=max(self.timeout, 30.0))


def csv_chunks(text: str, max_bytes: int) -> list[tuple[int, str]]:
    """CSV text cut into pieces of at most ~max_bytes, each starting with the header row.

    Returns (records before this piece, piece). Rows are re-written with the csv module, so a
    quoted field with a newline in it stays one record."""
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    if not rows:
        return [(0, text)]
    header, body = rows[0], [r for r in rows[1:] if r]  # the hub skips blank lines too

    def line(row: list[str]) -> str:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(row)
        return out.getvalue()

    head = line(header)
    chunks, current, size, before = [], [], len(head.encode()), 0
    for row in body:
        text_row = line(row)
        if current and size + len(text_row.encode()) > max_bytes:
            chunks.append((before, head + "".join(current)))
            before += len(current)
            current, size = [], len(head.encode())
        current.append(text_row)
        size += len(text_row.encode())
    chunks.append((before, head + "".join(current)))
    return chunks
