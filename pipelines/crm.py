"""The CRM lookup client: the request (hard timeout, size cap), the cache and coalescing.

``CrmClient`` makes the request on the hub's ``httpx.AsyncClient`` and applies the contract
(``pipelines/crm_contract.py``'s ``parse_lookup``) to the answer. The *deadline* (when the agent
gets a provisional pop) is applied by the caller, ``pops.py``; the client only enforces the hard
limit after which a late answer is no longer worth waiting for.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from typing import Mapping

import httpx

from . import http_client
from .crm_contract import LookupResult, parse_lookup

log = logging.getLogger("callpop.crm")


@dataclasses.dataclass
class _Cached:
    result: LookupResult
    stored: float


class TooLarge(Exception):
    pass


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """The body, decoded, refused (``TooLarge``) as soon as it runs over ``limit`` bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class CrmClient:
    """Looks numbers up in one CRM. ``lookup`` serves the cache and coalesces concurrent asks;
    ``fetch`` is the request itself, on the hub's ``httpx.AsyncClient`` (``pipelines/http_client.py``)."""

    def __init__(self, http: httpx.AsyncClient, url: str, *, phone_param: str = "phone",
                 auth_header: str = "", max_bytes: int = 262144, hard_timeout_s: float = 10.0,
                 cache_ttl_s: float = 60.0, cache_refresh_s: float = 5.0, cache_size: int = 2048,
                 max_concurrent: int = 50, clock=time.monotonic, shared=None):
        self.http = http
        self.url = url
        self.phone_param = phone_param
        # Small JSON answers: nothing to gain from compression, and nothing to inflate past the cap.
        self.headers: dict[str, str] = {"Accept": "application/json", "Accept-Encoding": "identity"}
        self._url_error = ""
        try:
            self._parsed_url: httpx.URL | None = httpx.URL(url)
        except httpx.InvalidURL as e:  # the lookups say so; the hub still starts and pops
            self._parsed_url, self._url_error = None, f"invalid CRM URL ({_reason(e)})"
        if credential := http_client.credential(auth_header):
            self.headers.update(credential)
            if self._parsed_url is not None:
                http_client.only_to_origin(http, self._parsed_url, credential)
        self.max_bytes = max_bytes
        self.hard_timeout_s = hard_timeout_s
        self.cache_ttl_s = cache_ttl_s
        self.cache_refresh_s = cache_refresh_s
        self.cache_size = cache_size
        self.clock = clock
        # In a cluster the hubs' cache and coalescing (pipelines/cluster/lookups.py) is the one
        # cache: a record refreshed by one hub is what every hub serves. Lookups of this hub
        # still coalesce here first.
        self.shared = shared
        self._cache: collections.OrderedDict[tuple, _Cached] = collections.OrderedDict()
        self._inflight: dict[tuple, asyncio.Task[LookupResult]] = {}
        # The one bound on lookups in flight: a burst against a slow CRM waits here, within the deadline.
        self._slots = asyncio.Semaphore(max_concurrent)
        self.requests = 0  # HTTP requests made (for tests and the status page)
        self.failing = 0  # lookups failed in a row (timeouts, HTTP errors, broken answers)
        self.first_error = ""  # what the first of them said

    # --- the request itself
    async def fetch(self, value: str, context: Mapping[str, str] | None = None) -> LookupResult:
        """One GET to the CRM, never longer than the hard timeout, never more than max_bytes read."""
        self.requests += 1
        if self._parsed_url is None:
            return LookupResult("http_error", error=self._url_error)
        # Merged into the URL's own query (a lookup URL may carry e.g. an API key):
        # httpx's params= would replace that query instead.
        url = self._parsed_url.copy_merge_params({self.phone_param: value, **(context or {})})
        try:
            async with asyncio.timeout(self.hard_timeout_s), self._slots:
                async with self.http.stream("GET", url, headers=self.headers) as resp:
                    body = await read_capped(resp, self.max_bytes)
                    return parse_lookup(resp.status_code, body, resp.headers.get("content-type", ""))
        except TimeoutError:
            return LookupResult("timeout", error=f"no answer within {self.hard_timeout_s:g} s")
        except TooLarge:
            return LookupResult("bad_response", error=f"answer larger than {self.max_bytes} bytes")
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as e:
            return LookupResult("http_error", error=f"invalid CRM URL ({_reason(e)})")
        except httpx.TooManyRedirects:
            return LookupResult("http_error", error="too many redirects (redirect loop)")
        except httpx.TimeoutException as e:
            return LookupResult("timeout", error=f"the CRM did not answer in time ({_reason(e)})")
        except httpx.ConnectError as e:
            return LookupResult("http_error", error=f"cannot connect to the CRM ({_reason(e)})")
        except httpx.TransportError as e:  # reset, protocol error, read error
            return LookupResult("http_error", error=f"connection failed ({_reason(e)})")
        except httpx.HTTPError as e:  # decoding errors and the like: the CRM's fault, not ours
            return LookupResult("bad_response", error=f"unreadable answer ({_reason(e)})")

    # --- cache and coalescing
    def lookup(self, value: str, context: Mapping[str, str] | None = None) -> tuple[asyncio.Future[LookupResult], str]:
        """(future result, how it was served: hit | coalesced | miss). Never raises. In a cluster
        a "miss" here may be served by the shared cache: the result's ``cache`` then says so."""
        context = dict(context or {})
        key = (value, tuple(sorted((k, v) for k, v in context.items() if k != "call_id")))
        now = self.clock()
        cached = self._cache.get(key)  # none in a cluster
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
        fetch = self.fetch(value, context) if self.shared is None else \
            self.shared.lookup(self.url, key, lambda: self.fetch(value, context))
        task = asyncio.get_running_loop().create_task(fetch)
        self._inflight[key] = task
        task.add_done_callback(lambda t: self._finished(key, t))
        return task

    def _finished(self, key: tuple, task: asyncio.Task[LookupResult]) -> None:
        self._inflight.pop(key, None)
        if task.cancelled() or task.exception() is not None:
            return
        result = task.result()
        self._note(result)
        if result.cacheable and self.cache_ttl_s > 0 and self.shared is None:
            self._cache[key] = _Cached(result, self.clock())
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def clear_cache(self) -> None:
        self._cache.clear()

    def _note(self, result: LookupResult) -> None:
        """Log the CRM's state when it changes (its first error; how many failed once it is back),
        not every failed lookup: a CRM that is down must not fill the log."""
        if result.cacheable:
            if self.failing:
                log.warning("CRM lookups answer again (%d failed since: %s)", self.failing, self.first_error)
                self.failing, self.first_error = 0, ""
            return
        if not self.failing:
            self.first_error = f"{result.outcome}: {result.error}"
            log.warning("CRM lookups are failing: %s", self.first_error)
        self.failing += 1


def client_for(settings, http: httpx.AsyncClient, url: str, auth_header: str | None = None,
               shared=None) -> CrmClient:
    """A ``CrmClient`` for ``url`` with the settings' parameter name, size cap, timeout and cache
    (``shared``: the cluster's, ``pipelines/cluster/lookups.py``)."""
    return CrmClient(
        http, url, phone_param=settings.crm_phone_param,
        auth_header=settings.crm_auth_header.get_secret_value() if auth_header is None else auth_header,
        max_bytes=settings.crm_max_bytes, hard_timeout_s=settings.crm_late_timeout_ms / 1000,
        cache_ttl_s=settings.crm_cache_ttl_s, cache_refresh_s=settings.crm_cache_refresh_s,
        cache_size=settings.crm_cache_size, max_concurrent=settings.crm_max_connections, shared=shared)


def _reason(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return text[:80]
