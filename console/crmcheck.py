"""The CRM check: one lookup run exactly as the hub runs it, recorded for a CRM developer.

The request goes through ``pipelines.crm``: the same client (``pipelines.http_client``: limits, redirects, timeout),
the same ``CrmClient.fetch`` (size cap, hard timeout, error mapping) and so the same
``parse_lookup``. The only addition is a transport wrapper that keeps a copy of what came over
the wire, so the page can show the raw answer beside what the hub made of it; the rules are
judged by ``pipelines.crm.check_contract``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from pipelines import crm, http_client
from pipelines.phone import for_crm, normalise
from pipelines.settings import Settings

SHOWN_BODY_BYTES = 20_000  # of the raw answer, on the page


@dataclasses.dataclass
class CheckReport:
    request: str                  # the request line, with credentials and unknown query values masked
    sent_as: str                  # the number as the CRM received it
    result: crm.LookupResult      # what the hub would record and pop
    answer: crm.RawAnswer | None  # None when no HTTP answer came
    latency_ms: float
    rules: list[crm.RuleCheck]
    auth_sent: bool
    redirects: int = 0

    @property
    def broken(self) -> list[crm.RuleCheck]:
        return [r for r in self.rules if r.passed is False]

    def body_text(self) -> str:
        if self.answer is None:
            return ""
        body = self.answer.body[:SHOWN_BODY_BYTES]
        text = body.decode("utf-8-sig", errors="replace")
        return text + ("\n… (cut)" if len(self.answer.body) > SHOWN_BODY_BYTES else "")


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


def same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return bool(pa.netloc) and (pa.scheme.lower(), pa.hostname, pa.port) == (pb.scheme.lower(), pb.hostname, pb.port)


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
    """The configured CRM URL as the page may show it (it may carry a key or a password)."""
    return masked(settings.crm_url, set()) if settings.crm_url else ""


def resolve_url(typed: str, settings: Settings) -> str:
    """The URL to ask: the configured CRM URL itself when the operator kept its masked form."""
    typed = typed.strip()
    return settings.crm_url if settings.crm_url and typed == shown_crm_url(settings) else typed


async def run_check(settings: Settings, url: str, phone: str, *, phone_format: str | None = None,
                    context: dict[str, str] | None = None,
                    transport: httpx.AsyncBaseTransport | None = None) -> CheckReport:
    """Look ``phone`` up at ``url`` as the hub would, and judge the answer by the contract."""
    fmt = phone_format or settings.crm_phone_format
    value = for_crm(normalise(phone, settings.default_region), fmt)
    # The configured CRM credential only ever goes to the configured CRM, never to a pasted URL.
    auth = (settings.crm_auth_header.get_secret_value()
            if settings.crm_url and same_origin(url, settings.crm_url) else "")
    recorder = RecordingTransport(transport or http_client.transport(settings))
    async with http_client.client(settings, wrapped=recorder) as http:
        client = crm.client_for(settings, http, url.strip(), auth_header=auth)
        started = time.perf_counter()
        result = await client.fetch(value, context)
        latency_ms = (time.perf_counter() - started) * 1000
    answer, request_line = None, masked(url.strip(), set())
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
        answer = crm.RawAnswer(response.status_code, response.headers.get("content-type", ""), decoded,
                               int(declared) if declared.isdigit() else None)
    rules = crm.check_contract(result, answer, latency_ms=latency_ms, deadline_ms=settings.crm_deadline_ms,
                               max_bytes=settings.crm_max_bytes)
    return CheckReport(f"GET {request_line}", value, result, answer, latency_ms, rules, bool(auth),
                       redirects=max(0, len(recorder.exchanges) - 1))


def check(settings: Settings, url: str, phone: str, **kw) -> CheckReport:
    """``run_check`` from synchronous code. A Streamlit script run has no event loop of its own;
    where this thread already runs one (e.g. next to a sync Playwright driver), the check gets
    a thread and a loop to itself."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_check(settings, url, phone, **kw))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(run_check(settings, url, phone, **kw))).result()
