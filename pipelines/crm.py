"""The CRM lookup: the contract's parser (pure) and the client (cache, coalescing, hard timeout).

``parse_lookup`` turns whatever a CRM answered into a ``LookupResult`` and lists the contract
rules the answer broke. ``CrmClient`` makes the request through one shared ``httpx.AsyncClient``.
The *deadline* (when the agent gets a provisional pop) is applied by the caller, ``pops.py``;
the client only enforces the hard limit after which a late answer is no longer worth waiting for.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import dataclasses
import json
import re
import time
import unicodedata
from typing import Any, Mapping
from urllib.parse import urlsplit

import httpx

OUTCOMES = ("found", "multiple", "not_found", "timeout", "http_error", "bad_response")
TEXT_CAP = 120  # characters kept of a name or company
_WS = re.compile(r"\s+")


@dataclasses.dataclass(frozen=True)
class LookupResult:
    outcome: str
    name: str = ""
    company: str = ""
    url: str = ""
    total: int = 0
    http_status: int | None = None
    error: str = ""
    faults: tuple[str, ...] = ()  # contract rules the answer broke, each a short sentence
    cache: str = "miss"  # miss | hit | coalesced

    @property
    def pop_status(self) -> str:
        """The pop's status for this result: found, multiple, not_found or error."""
        return self.outcome if self.outcome in ("found", "multiple", "not_found") else "error"

    @property
    def cacheable(self) -> bool:
        return self.outcome in ("found", "multiple", "not_found")


def clean_text(value: Any) -> str:
    """A name or company as plain text: no control characters, one line, capped."""
    if value is None or isinstance(value, (dict, list, bool)):
        return ""
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in str(value))
    text = _WS.sub(" ", text).strip()
    return text[:TEXT_CAP].rstrip() + ("…" if len(text) > TEXT_CAP else "")


def safe_url(value: Any) -> tuple[str, str | None]:
    """(url, None) for an absolute http(s) URL, else ("", the fault)."""
    if value in (None, ""):
        return "", None
    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme.lower() in ("http", "https") and parts.netloc and not any(c in text for c in "\r\n\t "):
        return text, None
    shown = text[:40] + ("…" if len(text) > 40 else "")
    return "", f"URL {shown!r} dropped: only absolute http(s) URLs are opened"


def _snippet(text: str) -> str:
    return clean_text(text)[:60]


def _decode(body: bytes, content_type: str) -> tuple[str | None, str]:
    """Body text, or (None, reason). UTF-8 with or without BOM; a declared other charset is honoured."""
    charset = ""
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset":
            charset = value.strip().strip('"').lower()
    if charset and charset.replace("-", "") not in ("utf8",):
        try:
            return body.decode(codecs.lookup(charset).name), ""
        except (LookupError, UnicodeDecodeError):
            pass
    try:
        return body.decode("utf-8-sig"), ""
    except UnicodeDecodeError as e:
        return None, f"answer is not valid UTF-8 (byte {e.start})"


def parse_lookup(status_code: int, body: bytes, content_type: str = "application/json") -> LookupResult:
    """Apply the contract (crm-contract.md) to one HTTP answer."""
    if not 200 <= status_code < 300:
        return LookupResult("http_error", http_status=status_code, error=f"CRM answered HTTP {status_code}")
    text, why = _decode(body, content_type)
    if text is None:
        return LookupResult("bad_response", http_status=status_code, error=why)
    try:
        data = json.loads(text)
    except ValueError:
        return LookupResult("bad_response", http_status=status_code,
                            error=f"answer is not JSON (starts {_snippet(text)!r})" if text.strip() else "answer is empty")
    if not isinstance(data, dict):
        return LookupResult("bad_response", http_status=status_code,
                            error=f"answer is a JSON {type(data).__name__}, not an object")
    faults: list[str] = []
    fields = {str(k).upper(): v for k, v in data.items()}
    if any(str(k) != str(k).upper() and str(k).upper() in ("STATUS", "URL", "CLIENTNAME", "TOTAL", "COMPANY")
           for k in data):
        faults.append("field names should be in capitals (STATUS, URL, CLIENTNAME, TOTAL, COMPANY)")
    status = fields.get("STATUS")
    if not isinstance(status, str) or status.strip().upper() != "OK":
        return LookupResult("bad_response", http_status=status_code, faults=tuple(faults),
                            error=f"STATUS is {status!r}, not 'OK'" if status is not None else "STATUS is missing")
    if status != "OK":
        faults.append(f"STATUS should be 'OK' in capitals, not {status!r}")
    name, company = clean_text(fields.get("CLIENTNAME")), clean_text(fields.get("COMPANY"))
    url, url_fault = safe_url(fields.get("URL"))
    if url_fault:
        faults.append(url_fault)
    raw_total = fields.get("TOTAL")
    if raw_total is None or raw_total == "":
        total = 1 if name else 0
    else:
        try:
            total = int(str(raw_total).strip())
            if total < 0:
                raise ValueError
        except ValueError:
            faults.append(f"TOTAL {str(raw_total)[:20]!r} is not a count")
            total = 1 if name else 0
    outcome = "not_found" if total == 0 else "found" if total == 1 else "multiple"
    return LookupResult(outcome, name=name, company=company, url=url, total=total,
                        http_status=status_code, faults=tuple(faults))


class _TooBig(Exception):
    pass


@dataclasses.dataclass
class _Cached:
    result: LookupResult
    stored: float


class CrmClient:
    """Looks numbers up in one CRM. ``lookup`` serves the cache and coalesces concurrent asks."""

    def __init__(self, http: httpx.AsyncClient, url: str, *, phone_param: str = "phone",
                 auth_header: str = "", max_bytes: int = 262144, hard_timeout_s: float = 10.0,
                 cache_ttl_s: float = 60.0, cache_refresh_s: float = 5.0, cache_size: int = 2048,
                 clock=time.monotonic):
        self.http = http
        self.url = url
        self.phone_param = phone_param
        self.headers: dict[str, str] = {}
        if auth_header:
            name, _, value = auth_header.partition(":")
            self.headers[name.strip()] = value.strip()
        self.max_bytes = max_bytes
        self.hard_timeout_s = hard_timeout_s
        self.cache_ttl_s = cache_ttl_s
        self.cache_refresh_s = cache_refresh_s
        self.cache_size = cache_size
        self.clock = clock
        self._cache: collections.OrderedDict[tuple, _Cached] = collections.OrderedDict()
        self._inflight: dict[tuple, asyncio.Task[LookupResult]] = {}
        self.requests = 0  # HTTP requests made (for tests and the status page)

    # --- the request itself
    async def fetch(self, value: str, context: Mapping[str, str] | None = None) -> LookupResult:
        """One GET to the CRM, never longer than the hard timeout, never more than max_bytes read."""
        params = {self.phone_param: value, **(context or {})}
        self.requests += 1
        try:
            async with asyncio.timeout(self.hard_timeout_s):
                async with self.http.stream("GET", self.url, params=params, headers=self.headers) as resp:
                    declared = resp.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > self.max_bytes:
                        raise _TooBig()
                    chunks, size = [], 0
                    async for chunk in resp.aiter_bytes():
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise _TooBig()
                        chunks.append(chunk)
                    return parse_lookup(resp.status_code, b"".join(chunks),
                                        resp.headers.get("content-type", ""))
        except TimeoutError:
            return LookupResult("timeout", error=f"no answer within {self.hard_timeout_s:g} s")
        except _TooBig:
            return LookupResult("bad_response", error=f"answer larger than {self.max_bytes} bytes")
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as e:
            return LookupResult("http_error", error=f"invalid CRM URL ({_reason(e)})")
        except httpx.TooManyRedirects:
            return LookupResult("http_error", error="too many redirects (redirect loop)")
        except httpx.ConnectError as e:
            return LookupResult("http_error", error=f"cannot connect to the CRM ({_reason(e)})")
        except httpx.TransportError as e:  # reset, protocol error, read error
            return LookupResult("http_error", error=f"connection failed ({_reason(e)})")
        except httpx.HTTPError as e:  # decoding errors and the like: the CRM's fault, not ours
            return LookupResult("bad_response", error=f"unreadable answer ({_reason(e)})")

    # --- cache and coalescing
    def lookup(self, value: str, context: Mapping[str, str] | None = None) -> tuple[asyncio.Future[LookupResult], str]:
        """(future result, how it was served: hit | coalesced | miss). Never raises."""
        context = dict(context or {})
        key = (value, tuple(sorted((k, v) for k, v in context.items() if k != "call_id")))
        now = self.clock()
        cached = self._cache.get(key)
        if cached is not None:
            age = now - cached.stored
            ttl = self.cache_ttl_s if cached.result.outcome != "not_found" else min(self.cache_ttl_s, 15.0)
            if age < ttl:
                self._cache.move_to_end(key)
                if age >= self.cache_refresh_s and key not in self._inflight:
                    self._start(key, value, context)  # refreshed behind the pop
                done: asyncio.Future[LookupResult] = asyncio.get_running_loop().create_future()
                done.set_result(dataclasses.replace(cached.result, cache="hit"))
                return done, "hit"
            del self._cache[key]
        task = self._inflight.get(key)
        if task is not None:
            return task, "coalesced"
        return self._start(key, value, context), "miss"

    def _start(self, key: tuple, value: str, context: Mapping[str, str]) -> asyncio.Task[LookupResult]:
        task = asyncio.get_running_loop().create_task(self.fetch(value, context))
        self._inflight[key] = task
        task.add_done_callback(lambda t: self._finished(key, t))
        return task

    def _finished(self, key: tuple, task: asyncio.Task[LookupResult]) -> None:
        self._inflight.pop(key, None)
        if task.cancelled() or task.exception() is not None:
            return
        result = task.result()
        if result.cacheable and self.cache_ttl_s > 0:
            self._cache[key] = _Cached(result, self.clock())
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def clear_cache(self) -> None:
        self._cache.clear()


def _reason(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return text[:80]
