"""The hub's outgoing HTTP: one ``httpx.AsyncClient`` for CRM lookups, dial webhooks and
Voicenter's API, configured from the settings as httpx documents it.

- A timeout per phase (connect, read, write, pool); callers add their own overall deadline.
- ``Limits(max_keepalive_connections=0)``: every request gets a connection of its own. Over
  HTTP/1.1 a kept connection can hold bytes the server sent past its answer (a page that writes
  twice, a proxy's idle 408), and the next request on it reads them as its own answer: the
  previous caller's record on this caller's pop. A new connection costs a TCP (and TLS)
  handshake per request; at a contact centre's 3 to 15 lookups a second that is nothing, and
  ``bench/`` measures it.
- Proxies and CA certificates from the environment (``trust_env``: ``HTTPS_PROXY``,
  ``NO_PROXY``, ``SSL_CERT_FILE``), or a CA bundle of the settings (a private CA).
- Redirects followed at most ``MAX_REDIRECTS`` times; ``only_to_origin`` keeps a credential
  from following a redirect to another origin (httpx itself strips only ``Authorization``).
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

MAX_REDIRECTS = 5
USER_AGENT = "callpop"


def tls(settings: Any) -> ssl.SSLContext | bool:
    """What outgoing HTTPS trusts: the settings' CA bundle, else the system's (True)."""
    return ssl.create_default_context(cafile=str(settings.ca_bundle)) if settings.ca_bundle else True


def limits(settings: Any) -> httpx.Limits:
    return httpx.Limits(max_connections=settings.crm_max_connections, max_keepalive_connections=0)


def timeout(settings: Any) -> httpx.Timeout:
    return httpx.Timeout(settings.crm_late_timeout_ms / 1000, connect=min(5.0, settings.crm_late_timeout_ms / 1000))


def transport(settings: Any) -> httpx.AsyncHTTPTransport:
    """The transport ``client`` would make itself (for a caller that wraps it)."""
    return httpx.AsyncHTTPTransport(verify=tls(settings), limits=limits(settings), trust_env=True)


def client(settings: Any, wrapped: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The hub's client. ``wrapped``: a transport of the caller's (then proxies from the
    environment do not apply: httpx mounts them only on its own transports)."""
    own = {} if wrapped is not None else {"verify": tls(settings), "limits": limits(settings)}
    return httpx.AsyncClient(timeout=timeout(settings), follow_redirects=True, max_redirects=MAX_REDIRECTS,
                             trust_env=True, headers={"User-Agent": USER_AGENT}, transport=wrapped, **own)


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)


def credential(header: str) -> dict[str, str]:
    """A 'Name: value' header setting (CALLPOP_CRM_AUTH_HEADER) as headers; {} for ''."""
    if not header:
        return {}
    name, _, value = header.partition(":")
    return {name.strip(): value.strip()}


def only_to_origin(http: httpx.AsyncClient, url: httpx.URL, headers: dict[str, str]) -> None:
    """Never send ``headers`` (a credential) to another origin than ``url``'s: a request hook,
    which httpx runs before every request it sends, redirects included."""
    allowed, secret = origin(url), {name.lower(): value for name, value in headers.items()}

    async def strip(request: httpx.Request) -> None:
        if origin(request.url) != allowed:
            for name, value in secret.items():
                if request.headers.get(name) == value:
                    del request.headers[name]

    hooks = http.event_hooks
    http.event_hooks = {**hooks, "request": [*hooks.get("request", []), strip]}
