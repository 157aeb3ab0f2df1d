"""The CRM lookup: the contract's parser (pure) and the client (cache, coalescing, hard timeout).

``parse_lookup`` turns whatever a CRM answered into a ``LookupResult`` and lists the contract
rules the answer broke. ``CrmClient`` makes the request on the hub's ``httpx.AsyncClient``.
The *deadline* (when the agent gets a provisional pop) is applied by the caller, ``pops.py``;
the client only enforces the hard limit after which a late answer is no longer worth waiting for.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import dataclasses
import json
import logging
import re
import time
import unicodedata
from typing import Any, Mapping
from urllib.parse import urlsplit

import httpx

from . import http_client

log = logging.getLogger("callpop.crm")
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


_SHOWN = {"Cc": " ", "Zl": " ", "Zp": " ", "Cf": ""}  # what each such category becomes


def clean_text(value: Any) -> str:
    """A name or company as plain text: no control characters, one line, capped, and no format
    characters (Cf: bidi overrides and zero-width marks, which reverse or hide text to spoof a
    name in a notification)."""
    if value is None or isinstance(value, (dict, list, bool)):
        return ""
    text = str(value)
    if not text.isprintable():  # the usual name has nothing to replace: no walk over its characters
        text = "".join(_SHOWN.get(unicodedata.category(ch), ch) for ch in text)
    text = _WS.sub(" ", text).strip()
    return text[:TEXT_CAP].rstrip() + ("…" if len(text) > TEXT_CAP else "")


def safe_url(value: Any) -> tuple[str, str | None]:
    """(url, None) for an absolute http(s) URL, else ("", the fault)."""
    if value in (None, ""):
        return "", None
    text = str(value).strip()
    parts = urlsplit(text)
    shown = text[:40] + ("…" if len(text) > 40 else "")
    if "@" in parts.netloc:  # https://crm.example.com@evil.example/ goes to evil.example
        return "", f"URL {shown!r} dropped: a URL with a user name or password before the host is not opened"
    if parts.scheme.lower() in ("http", "https") and parts.netloc and not any(c in text for c in "\r\n\t "):
        return text, None
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
    """Apply the contract (docs/crm-contract.md) to one HTTP answer."""
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


@dataclasses.dataclass(frozen=True)
class RuleCheck:
    """One rule of docs/crm-contract.md applied to one lookup (the console's CRM check)."""
    rule: str
    passed: bool | None  # None: not checked, an earlier rule already failed
    reason: str


@dataclasses.dataclass(frozen=True)
class RawAnswer:
    """What came back over HTTP, as read by ``CrmClient.fetch`` (body: the bytes it read)."""
    status_code: int
    content_type: str
    body: bytes
    declared_length: int | None = None


CONTRACT_FIELDS = ("STATUS", "URL", "CLIENTNAME", "TOTAL", "COMPANY")
_MARKUP = re.compile(r"<\s*[a-zA-Z/!]|&[a-zA-Z]+;|&#\d+;")


def _text_rule(field: str, value: Any) -> RuleCheck:
    rule = f"{field} is plain text"
    if value is None or value == "":
        return RuleCheck(rule, True, "empty" if value == "" else "missing (shown empty)")
    if isinstance(value, (dict, list, bool)):
        return RuleCheck(rule, False, f"is a JSON {type(value).__name__}: dropped, shown empty")
    text = str(value)
    if not isinstance(value, str):
        return RuleCheck(rule, False, f"is a JSON number ({text[:20]}); shown as the text {clean_text(value)!r}")
    problems = []
    if any(unicodedata.category(ch) == "Cc" for ch in text):
        problems.append("has control characters (removed)")
    if _MARKUP.search(text):
        problems.append("looks like HTML markup (shown as literal text, never rendered)")
    if len(text) > TEXT_CAP:
        problems.append(f"is {len(text)} characters long (cut to {TEXT_CAP})")
    return RuleCheck(rule, not problems, "; ".join(problems) or f"{clean_text(text)!r}")


def check_contract(result: LookupResult, answer: RawAnswer | None, *, latency_ms: float,
                   deadline_ms: float, max_bytes: int) -> list[RuleCheck]:
    """Every rule of the contract for one lookup, pass or fail with the reason.

    ``result`` is what ``CrmClient.fetch`` made of the answer (the hub's own verdict); this
    only adds the detail that ``parse_lookup``'s ``faults`` leave out, so a CRM developer sees
    each thing to fix. ``answer`` is None when no HTTP answer came (refused, timeout, loop)."""
    checks: list[RuleCheck] = []
    add = checks.append
    skipped = "not checked: an earlier rule failed"
    if answer is None:
        add(RuleCheck("The CRM answers over HTTP(S)", False, result.error or result.outcome))
    else:
        add(RuleCheck("The CRM answers over HTTP(S)", True, f"HTTP {answer.status_code}"))
    if result.outcome == "timeout" or latency_ms > deadline_ms:
        add(RuleCheck(f"Answers within the deadline ({deadline_ms:g} ms)", False,
                      f"took {latency_ms:.0f} ms: the agent gets a provisional pop (number only) at "
                      f"{deadline_ms:g} ms" + ("" if result.outcome == "timeout" else ", updated when the answer comes")))
    else:
        add(RuleCheck(f"Answers within the deadline ({deadline_ms:g} ms)", True, f"{latency_ms:.0f} ms"))
    rules_after = ("HTTP status is 2xx", f"Answer is at most {max_bytes} bytes", "Answer is UTF-8 text (BOM allowed)",
                   "Answer is a JSON object", 'STATUS is "OK"', "Field names are in capitals", "TOTAL is a count",
                   "URL is an absolute http(s) URL", "CLIENTNAME is plain text", "COMPANY is plain text",
                   "TOTAL agrees with CLIENTNAME")
    if answer is None:
        return checks + [RuleCheck(r, None, skipped) for r in rules_after]
    ok = 200 <= answer.status_code < 300
    add(RuleCheck(rules_after[0], ok, f"HTTP {answer.status_code}" + ("" if ok else ": recorded as http_error")))
    size = max(len(answer.body), answer.declared_length or 0)
    too_big = size > max_bytes
    add(RuleCheck(rules_after[1], not too_big, f"over {max_bytes} bytes: recorded as bad_response" if too_big
                  else f"{size} bytes"))
    if not ok or too_big:
        return checks + [RuleCheck(r, None, skipped) for r in rules_after[2:]]
    text, why = _decode(answer.body, answer.content_type)
    try:
        answer.body.decode("utf-8-sig")
        utf8 = True
    except UnicodeDecodeError:
        utf8 = False
    add(RuleCheck(rules_after[2], utf8, why or ("not UTF-8; read with the charset the answer declares" if not utf8
                                               else "UTF-8 with a BOM (accepted)"
                                               if answer.body.startswith(codecs.BOM_UTF8) else "UTF-8")))
    data: Any = None
    if text is not None:
        try:
            data = json.loads(text)
        except ValueError:
            add(RuleCheck(rules_after[3], False, f"not JSON (starts {_snippet(text)!r})" if text.strip()
                          else "the answer is empty"))
        else:
            add(RuleCheck(rules_after[3], isinstance(data, dict), "yes" if isinstance(data, dict)
                          else f"a JSON {type(data).__name__}, not an object"))
    if not isinstance(data, dict):  # the two checks before rules_after are always there
        return checks + [RuleCheck(r, None, skipped) for r in rules_after[len(checks) - 2:]]
    fields = {str(k).upper(): v for k, v in data.items()}
    status = fields.get("STATUS")
    add(RuleCheck(rules_after[4], status == "OK", "yes" if status == "OK" else
                  "missing: recorded as bad_response" if status is None else
                  f"{status!r}: accepted, but write it 'OK' in capitals"
                  if isinstance(status, str) and status.strip().upper() == "OK" else
                  f"{str(status)[:40]!r}: the CRM reports an error, recorded as bad_response"))
    lower = [str(k) for k in data if str(k) != str(k).upper() and str(k).upper() in CONTRACT_FIELDS]
    add(RuleCheck(rules_after[5], not lower, "yes" if not lower else f"{', '.join(lower)}: accepted, but "
                  "write them as STATUS, URL, CLIENTNAME, TOTAL, COMPANY"))
    raw_total = fields.get("TOTAL")
    if raw_total is None or raw_total == "":
        add(RuleCheck(rules_after[6], True, f"missing: counts as {1 if clean_text(fields.get('CLIENTNAME')) else 0} "
                      "(1 when CLIENTNAME is given)"))
    else:
        counted = not isinstance(raw_total, (bool, dict, list)) and str(raw_total).strip().isdigit()
        add(RuleCheck(rules_after[6], counted, f"{raw_total!r}" if counted else
                      f"{str(raw_total)[:20]!r} is not a count of contacts"))
    url, url_fault = safe_url(fields.get("URL"))
    add(RuleCheck(rules_after[7], url_fault is None, url_fault or (url if url else "missing: the pop opens no page")))
    checks.append(_text_rule("CLIENTNAME", fields.get("CLIENTNAME")))
    checks.append(_text_rule("COMPANY", fields.get("COMPANY")))
    if result.outcome == "found" and not result.name:
        add(RuleCheck(rules_after[10], False, "TOTAL says one match but CLIENTNAME is empty: the pop has no name"))
    elif result.outcome == "not_found" and clean_text(fields.get("CLIENTNAME")):
        add(RuleCheck(rules_after[10], False, "TOTAL says no match but CLIENTNAME is given: the name is shown "
                      "for a caller the CRM does not know"))
    else:
        add(RuleCheck(rules_after[10], True, {"found": "one contact", "multiple": f"{result.total} contacts",
                                              "not_found": "no contact"}.get(result.outcome, result.outcome)))
    extra = sorted(k for k in fields if k not in CONTRACT_FIELDS)
    if extra:
        add(RuleCheck("Other fields are ignored", True, ", ".join(extra)[:200]))
    return checks


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
                 max_concurrent: int = 50, clock=time.monotonic):
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
        if auth_header:
            name, _, value = auth_header.partition(":")
            credential = {name.strip(): value.strip()}
            self.headers.update(credential)
            if self._parsed_url is not None:
                http_client.only_to_origin(http, self._parsed_url, credential)
        self.max_bytes = max_bytes
        self.hard_timeout_s = hard_timeout_s
        self.cache_ttl_s = cache_ttl_s
        self.cache_refresh_s = cache_refresh_s
        self.cache_size = cache_size
        self.clock = clock
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
        self._note(result)
        if result.cacheable and self.cache_ttl_s > 0:
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


def client_for(settings, http: httpx.AsyncClient, url: str, auth_header: str | None = None) -> CrmClient:
    """A ``CrmClient`` for ``url`` with the settings' parameter name, size cap, timeout and cache."""
    return CrmClient(
        http, url, phone_param=settings.crm_phone_param,
        auth_header=settings.crm_auth_header.get_secret_value() if auth_header is None else auth_header,
        max_bytes=settings.crm_max_bytes, hard_timeout_s=settings.crm_late_timeout_ms / 1000,
        cache_ttl_s=settings.crm_cache_ttl_s, cache_refresh_s=settings.crm_cache_refresh_s,
        cache_size=settings.crm_cache_size, max_concurrent=settings.crm_max_connections)


def _reason(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return text[:80]
