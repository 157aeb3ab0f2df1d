"""The supervisor's CRM check: one lookup run exactly as the hub runs it, against a URL a
supervisor typed, recorded for a CRM developer (``POST /api/crm/check``).

The request goes through ``pipelines.crm``: the same client (``pipelines.http_client``: limits,
redirects, timeout), the same ``CrmClient.fetch`` (size cap, hard timeout, error mapping) and so
the same ``parse_lookup``; the rules are judged by ``pipelines.crm_contract.check_contract``. Two
transports are added under the client:

- ``GuardedTransport``: the typed URL is the hub's network position lent to a person, so every
  request (the first and each redirect hop, which httpx sends through the transport again) is
  resolved with the system resolver and refused when any address is loopback, private,
  link-local, CGNAT, multicast, reserved or otherwise not public, unless it is the configured
  CRM itself. The connection then goes to the address that was checked (pinned), so a DNS answer
  that changes between the check and the connect cannot send it elsewhere.
- ``RecordingTransport``: keeps a copy of what came over the wire, so the page can show the raw
  answer beside what the hub made of it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
import time
from typing import Awaitable, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from . import crm, http_client
from .crm_contract import LookupResult, RawAnswer, RuleCheck, check_contract
from .phone import for_crm, normalise
from .settings import Settings

SHOWN_BODY_BYTES = 20_000  # of the raw answer, on the page
PHONE_FORMATS = ("raw", "national", "e164", "digits")

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IP]]]

# Not covered by ipaddress's own flags (or worth naming): checked before them.
_NAMED = ((ipaddress.ip_network("100.64.0.0/10"), "carrier-grade NAT (100.64/10)"),
          (ipaddress.ip_network("169.254.169.254/32"), "the cloud metadata address"),
          (ipaddress.ip_network("fd00:ec2::254/128"), "the cloud metadata address"))
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class TargetRefused(Exception):
    """A URL (or a redirect hop) the check will not ask; the message is for the supervisor."""


def refused_because(ip: IP) -> str | None:
    """Why the hub must not connect to ``ip`` for a typed URL (None: a public address). Pure."""
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv4 address dressed as IPv6 (::ffff:127.0.0.1, 64:ff9b::7f00:1) is judged as itself.
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    for network, name in _NAMED:
        if ip.version == network.version and ip in network:
            return name
    for flag, name in (("is_loopback", "loopback"), ("is_unspecified", "unspecified"),
                       ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                       ("is_reserved", "reserved"), ("is_private", "private")):
        if getattr(ip, flag):
            return f"a {name} address"
    return None if ip.is_global else "not a public address"


async def system_resolve(host: str, port: int) -> list[IP]:
    """Every address the system resolver gives ``host``: the same resolver the connection would
    use, so IP literals in any spelling (2130706433, 0x7f.1, ::ffff:127.0.0.1) come out as what
    they are."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[IP, None] = {}
    for *_, sockaddr in infos:
        seen.setdefault(ipaddress.ip_address(sockaddr[0]), None)
    return list(seen)


def _host_port(url: httpx.URL) -> tuple[str, int]:
    _, host, port = http_client.origin(url)
    return host, port or 0


class GuardedTransport(httpx.AsyncBaseTransport):
    """Resolves, checks and pins every request; ``TargetRefused`` for a target that is not public.

    ``trusted`` is the configured CRM's URL: its host:port (as written, or any address it
    resolves to, on its port) is allowed wherever it lives, loopback included."""

    def __init__(self, inner: httpx.AsyncBaseTransport, trusted: str, resolve: Resolver = system_resolve):
        self.inner, self.resolve = inner, resolve
        self.trusted = _host_port(httpx.URL(trusted))
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        hop, self.requests = self.requests, self.requests + 1
        host, port = _host_port(request.url)
        where = f"redirect {hop} to {masked(request.url, set())}" if hop else masked(request.url, set())
        try:
            addresses = await self.resolve(host, port)
        except (OSError, UnicodeError, ValueError) as e:
            raise httpx.ConnectError(f"cannot resolve {host} ({e})", request=request) from None
        if not addresses:
            raise httpx.ConnectError(f"{host} has no address", request=request)
        if not await self._is_configured_crm(host, port, addresses):
            for ip in addresses:
                if why := refused_because(ip):
                    what = f"{host} is {why}" if host.strip("[]") == str(ip) else f"{host} is {ip}, {why}"
                    raise TargetRefused(f"{where} refused: {what}. Only public addresses, or the configured "
                                        "CRM itself, may be checked.")
        last: httpx.ConnectError | None = None
        for ip in addresses:  # the first that connects; a GET's empty body can be sent again
            try:
                return await self.inner.handle_async_request(_pinned(request, ip))
            except httpx.ConnectError as e:
                last = e
        raise last  # type: ignore[misc]

    async def _is_configured_crm(self, host: str, port: int, addresses: list[IP]) -> bool:
        if (host, port) == self.trusted:
            return True
        if port != self.trusted[1]:
            return False
        try:
            theirs = set(await self.resolve(*self.trusted))
        except (OSError, UnicodeError, ValueError):
            return False
        return set(addresses) <= theirs

    async def aclose(self) -> None:
        await self.inner.aclose()


def _pinned(request: httpx.Request, ip: IP) -> httpx.Request:
    """The request sent to ``ip`` itself, with its Host header (kept from the original) and, for
    HTTPS, the name for SNI and the certificate check."""
    extensions = dict(request.extensions)
    if request.url.scheme == "https":
        extensions.setdefault("sni_hostname", request.url.host)
    return httpx.Request(request.method, request.url.copy_with(host=str(ip)), headers=request.headers,
                         stream=request.stream, extensions=extensions)


@dataclasses.dataclass
class CheckReport:
    request: str                  # the request line, with credentials and unknown query values masked
    sent_as: str                  # the number as the CRM received it
    result: LookupResult      # what the hub would record and pop
    answer: RawAnswer | None  # None when no HTTP answer came
    latency_ms: float
    rules: list[RuleCheck]
    auth_sent: bool
    redirects: int = 0

    @property
    def broken(self) -> list[RuleCheck]:
        return [r for r in self.rules if r.passed is False]

    def body_text(self) -> str:
        if self.answer is None:
            return ""
        body = self.answer.body[:SHOWN_BODY_BYTES]
        text = body.decode("utf-8-sig", errors="replace")
        return text + ("\n… (cut)" if len(self.answer.body) > SHOWN_BODY_BYTES else "")

    def public(self) -> dict:
        """The answer of ``POST /api/crm/check``: only text and numbers, never the credential."""
        r, a = self.result, self.answer
        return {
            "request": self.request, "sent_as": self.sent_as, "latency_ms": round(self.latency_ms, 1),
            "auth_sent": self.auth_sent, "redirects": self.redirects,
            "result": {"outcome": r.outcome, "pop_status": r.pop_status, "name": r.name, "company": r.company,
                       "url": r.url, "total": r.total, "http_status": r.http_status, "error": r.error,
                       "faults": list(r.faults)},
            "answer": None if a is None else {"status_code": a.status_code, "content_type": a.content_type,
                                              "size": len(a.body), "body": self.body_text()},
            "rules": [{"rule": c.rule, "passed": c.passed, "reason": c.reason} for c in self.rules],
            "broken": [c.rule for c in self.broken],
        }


class _Recorded(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, sink: bytearray):
        self.stream, self.sink = stream, sink

    async def __aiter__(self):
        async for chunk in self.stream:
            self.sink.extend(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self.stream.aclose()


class RecordingTransport(httpx.AsyncBaseTransport):
    """The ordinary transport, keeping each request and the bytes of each answer as they stream."""

    def __init__(self, inner: httpx.AsyncBaseTransport):
        self.inner = inner
        self.exchanges: list[tuple[httpx.Request, httpx.Response, bytearray]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        sink = bytearray()
        self.exchanges.append((request, response, sink))
        response.stream = _Recorded(response.stream, sink)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def _same_origin(a: str, b: str) -> bool:
    try:
        return http_client.origin(httpx.URL(a)) == http_client.origin(httpx.URL(b))
    except httpx.InvalidURL:  # a typed URL httpx cannot read: the request fails on its own
        return False


def masked(url: httpx.URL | str, keep: set[str]) -> str:
    """A URL fit to show: no user:password, and query values other than ``keep`` masked
    (a pasted lookup URL may carry an API key)."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    query = urlencode([(k, v if k in keep else "***") for k, v in parse_qsl(parts.query, keep_blank_values=True)])
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def shown_crm_url(settings: Settings) -> str:
    """The CRM URL as the page may show it (the configured one may carry a key or a password)."""
    return masked(settings.crm_url, set()) if settings.crm_url else settings.crm_lookup_url


def resolve_url(typed: str, settings: Settings) -> str:
    """The URL to ask: the configured CRM when nothing was typed or the shown (masked) form was kept."""
    typed = typed.strip()
    return settings.crm_lookup_url if not typed or typed == shown_crm_url(settings) else typed


async def run_check(settings: Settings, url: str, phone: str, *, phone_format: str | None = None,
                    context: dict[str, str] | None = None, transport: httpx.AsyncBaseTransport | None = None,
                    resolve: Resolver = system_resolve) -> CheckReport:
    """Look ``phone`` up at ``url`` (empty: the configured CRM) as the hub would, and judge the
    answer by the contract. ``TargetRefused`` when the URL or a redirect hop is not public."""
    url = resolve_url(url, settings)
    if not url.lower().startswith(("http://", "https://")):
        raise TargetRefused("the lookup URL must start with http:// or https://")
    fmt = phone_format or settings.crm_phone_format
    value = for_crm(normalise(phone, settings.default_region), fmt)
    # The configured CRM credential only ever goes to the configured CRM's origin, never to a typed URL
    # elsewhere (and ``CrmClient`` strips it from any redirect that leaves that origin).
    auth = settings.crm_auth_header.get_secret_value() if settings.crm_url and _same_origin(url, settings.crm_url) \
        else ""
    guard = GuardedTransport(transport or http_client.transport(settings), settings.crm_lookup_url, resolve)
    recorder = RecordingTransport(guard)
    async with http_client.client(settings, wrapped=recorder) as http:
        client = crm.client_for(settings, http, url, auth_header=auth)
        started = time.perf_counter()
        result = await client.fetch(value, context)  # its hard timeout bounds resolving and every hop
        latency_ms = (time.perf_counter() - started) * 1000
    answer, request_line = None, masked(url, set())
    if recorder.exchanges:
        request, response, sink = recorder.exchanges[0]
        request_line = masked(request.url, {settings.crm_phone_param, *(context or {})})
    # A usable answer came when the hub's parser saw one (or refused it for its size or encoding);
    # a redirect loop or a timeout mid-body leaves nothing the contract can be checked on.
    if recorder.exchanges and (result.http_status is not None or result.outcome == "bad_response"):
        request, response, sink = recorder.exchanges[-1]
        declared = response.headers.get("content-length", "")
        # What fetch read, decoded as httpx decodes it (gzip and the like); a cut-off stream as it came.
        decoded = bytes(sink)
        try:
            decoded = httpx.Response(response.status_code, headers=response.headers, content=bytes(sink)).read()
        except httpx.DecodingError:
            pass
        answer = RawAnswer(response.status_code, response.headers.get("content-type", ""), decoded,
                           int(declared) if declared.isdigit() else None)
    rules = check_contract(result, answer, latency_ms=latency_ms, deadline_ms=settings.crm_deadline_ms,
                           max_bytes=settings.crm_max_bytes)
    return CheckReport(f"GET {request_line}", value, result, answer, latency_ms, rules, bool(auth),
                       redirects=max(0, len(recorder.exchanges) - 1))
