"""The webhook provider: any PBX that can send and receive HTTP.

Events come in through ``POST /api/events`` (the normalised shape, ingest token). For
click-to-call the hub POSTs ``{"dial_id", "leg_a", "leg_b", "progress_url"}`` to the PBX's
``CALLPOP_WEBHOOK_DIAL_URL``; the PBX reports progress to ``progress_url``
(``POST /api/dials/{dial_id}/events`` with ``{"state", "error"?}`` and the ingest token).

The dial POST is signed (docs/PROTOCOL.md): ``X-Callpop-Timestamp: <unix seconds>`` and
``X-Callpop-Signature: sha256=<hex HMAC-SHA256(CALLPOP_WEBHOOK_SECRET, timestamp + "." + body)>``,
so the PBX can tell the hub's requests from anyone else's and refuse a replayed one. Without a
secret (allowed only for a dial URL on this machine) it goes unsigned.

The webhook contract has no hang-up request: ``hangup`` is refused (409), the agent hangs up on
the phone and the PBX reports ``ended``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Callable

import httpx
from pydantic import SecretStr

from ..dialplan import DialPlan, DialRefused
from .base import Provider, ProviderHost

log = logging.getLogger("callpop.webhook")
TIMESTAMP_HEADER = "X-Callpop-Timestamp"
SIGNATURE_HEADER = "X-Callpop-Signature"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for a body sent at ``timestamp`` (unix seconds, as text)."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookProvider(Provider):
    name = "webhook"

    def __init__(self, dial_url: str, base_url: str, timeout_s: float = 5.0,
                 secret: SecretStr = SecretStr(""), clock: Callable[[], float] = time.time):
        self.dial_url, self.base_url, self.timeout_s = dial_url, base_url, timeout_s
        self.secret, self.clock = secret, clock
        if dial_url and not secret.get_secret_value():
            log.warning("click-to-call POSTs to %s go unsigned (no CALLPOP_WEBHOOK_SECRET)", dial_url)

    def status(self) -> dict:
        detail = "events at POST /api/events"
        if not self.dial_url:
            detail += "; click-to-call off (no dial URL)"
        elif not self.secret.get_secret_value():
            detail += "; dial requests unsigned (no CALLPOP_WEBHOOK_SECRET)"
        return {"name": self.name, "state": "connected", "detail": detail}

    async def originate(self, plan: DialPlan) -> None:
        if not self.dial_url:
            raise DialRefused("no_dial_url", "click-to-call is not set up: CALLPOP_WEBHOOK_DIAL_URL is empty")
        body = {"dial_id": plan.dial_id, "leg_a": plan.leg_a, "leg_a_kind": plan.leg_a_kind,
                "leg_b": plan.leg_b, "extension": plan.extension,
                "progress_url": f"{self.base_url}/api/dials/{plan.dial_id}/events"}
        # Serialised here, so the bytes signed are the bytes sent.
        content = json.dumps(body, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        secret = self.secret.get_secret_value()
        if secret:
            timestamp = str(int(self.clock()))
            headers |= {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, content)}
        try:
            # No redirects: a dial goes to the URL configured, not wherever an answer points.
            resp = await self.host.http.post(self.dial_url, content=content, headers=headers, timeout=self.timeout_s,
                                        follow_redirects=False)
        except httpx.HTTPError as e:
            raise DialRefused("provider_unreachable", f"the PBX's dial URL did not answer ({type(e).__name__})")
        if resp.status_code >= 300:
            raise DialRefused("provider_refused", f"the PBX refused the dial (HTTP {resp.status_code})")


def create(settings, host: ProviderHost) -> WebhookProvider:
    """The entry point (``providers.registry``)."""
    return WebhookProvider(settings.webhook_dial_url, settings.base_url, secret=settings.webhook_secret)
