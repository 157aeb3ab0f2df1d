"""The CRM lookup contract (docs/crm-contract.md), pure: what the hub makes of a CRM's answer,
and the rules the console's CRM check judges one by.

``parse_lookup`` turns whatever a CRM answered into a ``LookupResult`` and lists the contract
rules the answer broke; ``clean_text`` and ``safe_url`` are what a name, a company and a URL go
through before an agent sees them. ``check_contract`` judges one lookup rule by rule, with the
reason for each, for a CRM developer (``pipelines/crmcheck.py``). The request itself is
``pipelines/crm.py``'s.
"""

from __future__ import annotations

import codecs
import dataclasses
import json
import re
import unicodedata
from typing import Any
from urllib.parse import urlsplit

OUTCOMES = ("found", "multiple", "not_found", "timeout", "http_error", "bad_response")
TEXT_CAP = 120  # characters kept of a name or company
CONTACTS_CAP = 5  # candidates kept of a several-matches answer: the bubble offers a few, not a list
_WS = re.compile(r"\s+")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One contact of a several-matches answer (``CONTACTS``), cleaned like the answer's own fields."""
    name: str
    company: str
    url: str

    def public(self) -> dict[str, str]:
        return {"name": self.name, "company": self.company, "url": self.url}


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
    contacts: tuple[Candidate, ...] = ()  # the candidates of a several-matches answer, if it listed them

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
    contacts = parse_contacts(fields.get("CONTACTS"), faults) if outcome == "multiple" else ()
    return LookupResult(outcome, name=name, company=company, url=url, total=total,
                        http_status=status_code, faults=tuple(faults), contacts=contacts)


def parse_contacts(value: Any, faults: list[str]) -> tuple[Candidate, ...]:
    """The ``CONTACTS`` list of a several-matches answer: each entry an object with NAME, COMPANY
    and URL, cleaned by the same rules as the answer's own; an entry without a name or without a
    URL that may be opened is dropped (the agent could not choose it), and said in ``faults``."""
    if value is None:
        return ()
    if not isinstance(value, list):
        faults.append(f"CONTACTS is a JSON {type(value).__name__}, not a list: ignored")
        return ()
    if len(value) > CONTACTS_CAP:
        faults.append(f"CONTACTS lists {len(value)} contacts: the first {CONTACTS_CAP} are offered")
    kept: list[Candidate] = []
    for i, entry in enumerate(value[:CONTACTS_CAP]):
        if not isinstance(entry, dict):
            faults.append(f"CONTACTS entry {i + 1} is not an object: dropped")
            continue
        entry = {str(k).upper(): v for k, v in entry.items()}
        url, url_fault = safe_url(entry.get("URL"))
        name = clean_text(entry.get("NAME"))
        if url_fault or not url or not name:
            faults.append(f"CONTACTS entry {i + 1} dropped: " + (url_fault or ("no URL" if not url else "no NAME")))
            continue
        kept.append(Candidate(name, clean_text(entry.get("COMPANY")), url))
    return tuple(kept)


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
    if "CONTACTS" in fields:
        contact_faults = [f for f in result.faults if f.startswith("CONTACTS")]
        add(RuleCheck("CONTACTS are contacts to choose from", not contact_faults, "; ".join(contact_faults)[:300] or (
            f"{len(result.contacts)} offered to the agent" if result.outcome == "multiple"
            else "read only when TOTAL is over 1")))
    extra = sorted(k for k in fields if k not in CONTRACT_FIELDS and k != "CONTACTS")
    if extra:
        add(RuleCheck("Other fields are ignored", True, ", ".join(extra)[:200]))
    return checks
