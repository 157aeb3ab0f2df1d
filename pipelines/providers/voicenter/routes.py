"""The URLs Voicenter calls: ``/voicenter/popup`` and ``/voicenter/cdr``, guarded by source
address and key (see the package's docstring). Thin: the provider does the work."""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .. import peers
from .wire import VOICENTER_EXTENSION_ORIGIN

if TYPE_CHECKING:
    from ..base import ProviderHost
    from .provider import VoicenterProvider


def _source_ok(host: "ProviderHost", request: Request, allowed: tuple[peers.Network, ...],
               trusted: tuple[peers.Network, ...]) -> JSONResponse | None:
    """None when CALLPOP_VOICENTER_ALLOWED_IPS is empty or holds the client's address, else the 403."""
    if not allowed:
        return None
    peer = request.client.host if request.client else ""
    client = peers.client_address(peer, request.headers.getlist("x-forwarded-for"), trusted)
    if client is not None and peers.within(client, allowed):
        return None
    via = f" via {peer}" if client is None or str(client) != peer else ""
    host.reject(request.url.path, "forbidden",
               f"{client or 'an unreadable address'}{via} is not in CALLPOP_VOICENTER_ALLOWED_IPS")
    return JSONResponse({"error": "forbidden", "message": "this address may not call the Voicenter URLs "
                                                         "(CALLPOP_VOICENTER_ALLOWED_IPS)"}, status_code=403)


def _key_ok(host: "ProviderHost", request: Request) -> JSONResponse | None:
    secret = host.settings.voicenter_secret.get_secret_value()
    if not secret:
        return None  # only on loopback: settings refuse a hub reachable from outside without one
    given = request.query_params.get("key", "")
    # Constant time: the comparison must not tell an attacker how much of a guess was right.
    if hmac.compare_digest(given.encode(), secret.encode()):
        return None
    host.reject(request.url.path, "unauthorized", "bad key" if given else "missing key")
    return JSONResponse({"error": "unauthorized", "message": "this URL needs ?key=<CALLPOP_VOICENTER_SECRET>"},
                        status_code=401)


async def _fields(request: Request) -> tuple[dict[str, Any] | None, str]:
    """A POST body as fields: form (urlencoded or multipart) or JSON, whatever the content type says."""
    ctype = request.headers.get("content-type", "").lower()
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}, "form"
    raw = await request.body()
    text = raw.decode("utf-8-sig", "replace").strip()
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        if "=" in text and not text.startswith(("{", "[")):  # a form posted without its content type
            return dict(parse_qsl(text, keep_blank_values=True)), "form"
        return None, "json"
    return (data if isinstance(data, dict) else None), "json"


def router(provider: "VoicenterProvider") -> APIRouter:
    """``/voicenter/popup`` and ``/voicenter/cdr`` (``VoicenterProvider.routes``)."""
    host = provider.host
    r = APIRouter(tags=["voicenter"])
    cors = {"Access-Control-Allow-Origin": VOICENTER_EXTENSION_ORIGIN, "Vary": "Origin"}
    allowed = peers.networks(host.settings.voicenter_allowed_ips)
    trusted = peers.networks(host.settings.trusted_proxies)

    def guard(request: Request) -> JSONResponse | None:
        """The source address first (it needs no secret to check), then the key."""
        return _source_ok(host, request, allowed, trusted) or _key_ok(host, request)

    @r.get("/voicenter/popup", summary="Voicenter pop-up screen request (GET, statusCall)")
    async def popup_get(request: Request):
        refused = guard(request)
        if refused:
            return refused
        fields = {k: v for k, v in request.query_params.items() if k != "key"}
        return JSONResponse(await provider.popup(fields, "GET"), headers=cors)

    @r.post("/voicenter/popup", summary="Voicenter pop-up screen request (POST form with status, or POST JSON)")
    async def popup_post(request: Request):
        refused = guard(request)
        if refused:
            return refused
        fields, shape = await _fields(request)
        if fields is None:
            host.reject("/voicenter/popup", "invalid_request", f"POST body is not a {shape} object")
            return JSONResponse({"error": "invalid_request", "message": "send a form or a JSON object"},
                                status_code=422, headers=cors)
        return JSONResponse(await provider.popup(fields, f"POST {shape}"), headers=cors)

    @r.options("/voicenter/popup", include_in_schema=False)
    async def popup_preflight(request: Request):
        refused = _source_ok(host, request, allowed, trusted)  # a preflight carries no key
        if refused:
            return refused
        return JSONResponse({}, headers={**cors, "Access-Control-Allow-Methods": "GET, POST",
                                         "Access-Control-Allow-Headers": "Content-Type"})

    @r.post("/voicenter/cdr", summary="Voicenter CDR notification (POST JSON after each call)")
    async def cdr(request: Request):
        refused = guard(request)
        if refused:
            return refused
        raw = await request.body()
        try:
            body = json.loads(raw.decode("utf-8-sig")) if raw.strip() else None
        except (ValueError, UnicodeDecodeError):
            host.reject("/voicenter/cdr", "invalid_cdr", "body is not JSON")
            return JSONResponse({"err": 1, "errdesc": "the CDR must be JSON"})
        return JSONResponse(await provider.cdr(body))

    return r
