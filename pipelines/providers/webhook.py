"""The webhook provider: any PBX that can send and receive HTTP.

Events come in through ``POST /api/events`` (the normalised shape, ingest token). For
click-to-call the hub POSTs ``{"dial_id", "leg_a", "leg_b", "progress_url"}`` to the PBX's
``CALLPOP_WEBHOOK_DIAL_URL``; the PBX reports progress to ``progress_url``
(``POST /api/dials/{dial_id}/events`` with ``{"state", "error"?}`` and the ingest token).
The webhook contract has no hang-up request: ``hangup`` is refused (409), the agent hangs up on
the phone and the PBX reports ``ended``.
"""

from __future__ import annotations

import httpx

from ..dial import DialPlan, DialRefused
from .base import Provider


class WebhookProvider(Provider):
    name = "webhook"

    def __init__(self, http: httpx.AsyncClient, dial_url: str, base_url: str, timeout_s: float = 5.0):
        self.http, self.dial_url, self.base_url, self.timeout_s = http, dial_url, base_url, timeout_s

    def status(self) -> dict:
        detail = "events at POST /api/events" + ("" if self.dial_url else "; click-to-call off (no dial URL)")
        return {"name": self.name, "state": "connected", "detail": detail}

    async def originate(self, plan: DialPlan) -> None:
        if not self.dial_url:
            raise DialRefused("no_dial_url", "click-to-call is not set up: CALLPOP_WEBHOOK_DIAL_URL is empty")
        body = {"dial_id": plan.dial_id, "leg_a": plan.leg_a, "leg_a_kind": plan.leg_a_kind,
                "leg_b": plan.leg_b, "extension": plan.extension,
                "progress_url": f"{self.base_url}/api/dials/{plan.dial_id}/events"}
        try:
            resp = await self.http.post(self.dial_url, json=body, timeout=self.timeout_s)
        except httpx.HTTPError as e:
            raise DialRefused("provider_unreachable", f"the PBX's dial URL did not answer ({type(e).__name__})")
        if resp.status_code >= 300:
            raise DialRefused("provider_refused", f"the PBX refused the dial (HTTP {resp.status_code})")
