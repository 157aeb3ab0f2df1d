"""The Voicenter provider: Voicenter's cloud PBX on its own wire formats.

- ``/voicenter/popup`` takes Voicenter's pop-up screen requests (GET with ``statusCall``, POST
  form with ``status``, POST JSON), one per call phase and ringing extension. ``ivrid`` is the
  call id; ``extenUser`` (the Voicenter extension's SIP user) picks the agent: the agent whose
  ``voicenter_user`` column in the agents CSV holds it, else the agent whose extension is that
  very text. Ringing pops like any call and is answered with the contract JSON from the call's
  one CRM lookup within the hub's deadline (later: ``TOTAL: 0`` and empty fields, and the pop is
  updated when the CRM answers). So a Voicenter customer can point the pop-up URL they have at
  callpop and keep their CRM: callpop asks the CRM (``CALLPOP_CRM_URL``) and passes its answer
  through, cleaned by the contract's rules. Later phases become ``answered`` and ``hangup``.
- ``/voicenter/cdr`` takes the call record Voicenter POSTs after each call and completes the
  ``calls`` row (duration, final status, who answered) or, for Click2Call legs, the ``dials`` row.
- Click-to-call goes through Voicenter's Click2Call API (``code`` token, ``format=json``);
  ERRORCODE 1-4 become dial failures an agent can act on.

Every route checks the source address against ``CALLPOP_VOICENTER_ALLOWED_IPS`` if set (403),
then ``?key=`` against ``CALLPOP_VOICENTER_SECRET`` (401); the settings refuse a hub reachable from
outside this machine without that secret.

Unknown fields, a missing ``extenUser`` and bad bodies are logged and recorded in ``rejects``
(each unknown field name once) and never stop the answer Voicenter is waiting for.
"""

from __future__ import annotations

import asyncio
import collections
import csv
import dataclasses
import hmac
import json
import logging
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from urllib.parse import parse_qsl

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from ..crm import LookupResult
from ..dial import DialPlan, DialRefused
from ..events import DIAL_STATES, CallEvent, utcnow
from ..phone import normalise
from . import peers
from .base import Provider

if TYPE_CHECKING:
    from ..hub import Hub

log = logging.getLogger("callpop.voicenter")

# Voicenter's answer when there is nothing to say (its reference server's default, TOTAL a number).
EMPTY_ANSWER = {"STATUS": "OK", "URL": "", "CLIENTNAME": "", "TOTAL": 0, "COMPANY": ""}
CDR_OK = {"err": 0, "errdesc": "OK"}
# Pop-ups come from Voicenter's Chrome extension as well as its cloud (its docs ask for this origin).
VOICENTER_EXTENSION_ORIGIN = "chrome-extension://ifiaikfdhcagbagdeflffjdammidpbio"

POPUP_FIELDS = frozenset({
    "phone", "callerName", "ivrid", "extenUser", "did", "status", "statusCall", "direction", "cause",
    "CUSTOM_DATA", "customdata", "approved", "isAnswered", "callStarted", "callAnswered", "recordFile",
    "isMuted", "currentCall"})
CDR_FIELDS = frozenset({
    "caller", "target", "time", "duration", "ivruniqueid", "type", "status", "targetextension",
    "callerextension", "did", "queueid", "queuename", "record", "price", "dialtime", "representative_name",
    "representative_code", "targetextension_name", "callerextension_name", "target_country", "caller_country",
    "IVR", "direction", "extenUser", "callerPhone", "isAnswer", "actualCallDuration", "actualCallDialtime",
    "seconds_waiting_in_queue", "OriginalIvrUniqueID", "DepartmentName", "DepartmentID", "aiData",
    "CUSTOM_DATA", "customdata"})
PHASES = {"ringing": "ringing", "answer": "answered", "answered": "answered", "talking": "answered",
          "hangup": "hangup"}
CDR_CAUSES = {"ANSWER": "normal clearing", "NOANSWER": "no answer", "BUSY": "busy", "CANCEL": "caller hung up",
              "ABANDONE": "caller abandoned in queue", "TIMEOUT": "queue timeout", "VOEND": "voicemail",
              "VOICEMAIL": "voicemail", "TE": "ended in IVR"}
CLICK2CALL_ERRORS = {
    1: ("click2call_invalid_request", "Voicenter refused the request as invalid (check the numbers and "
                                      "CALLPOP_VOICENTER_CODE)"),
    2: ("click2call_provider_error", "Voicenter had an application error; try again"),
    3: ("extension_offline", "your Voicenter extension is offline: sign in to your phone and try again"),
    4: ("click2call_blocked", "your extension is blocked for Click2Call; ask your Voicenter administrator"),
}
LEG_FAILURES = {"NOANSWER": "no_answer", "BUSY": "busy", "CANCEL": "cancelled"}


# --- the wire formats, pure
@dataclasses.dataclass(frozen=True)
class Popup:
    ivrid: str
    phone: str
    exten_user: str
    did: str
    status: str
    phase: str | None  # ringing | answered | hangup; None for a status we do not know
    direction: str
    cause: str
    unknown: tuple[str, ...]


def _text(value: Any, cap: int = 200) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()[:cap]


def _epoch(value: Any, tz: str = "UTC") -> datetime | None:
    """Voicenter's epoch seconds as UTC. Voicenter documents them as Israel time: the seconds of
    the wall clock in ``tz``, not true Unix time, so they are read in that zone."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    if seconds <= 0:
        return None
    wall = datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None)
    try:
        zone = ZoneInfo(tz)
    except (ValueError, ZoneInfoNotFoundError):
        zone = timezone.utc
    return wall.replace(tzinfo=zone).astimezone(timezone.utc).replace(tzinfo=None)


def _int(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def direction_of(value: str) -> str:
    """Voicenter's direction (Incoming, Outgoing, ...) as inbound or outbound."""
    return "outbound" if value.strip().lower().startswith(("out", "click")) else "inbound"


def parse_popup(fields: Mapping[str, Any]) -> Popup:
    """A pop-up request, whichever shape it came in (GET's ``statusCall`` or POST's ``status``)."""
    status = _text(fields.get("status") or fields.get("statusCall"), 40)
    return Popup(
        ivrid=_text(fields.get("ivrid")), phone=_text(fields.get("phone"), 64),
        exten_user=_text(fields.get("extenUser"), 64), did=_text(fields.get("did"), 64), status=status,
        phase=PHASES.get(status.lower()), direction=direction_of(_text(fields.get("direction"))),
        cause=_text(fields.get("cause")),
        unknown=tuple(sorted(str(k)[:60] for k in fields if k not in POPUP_FIELDS)))


def contract_answer(result: LookupResult | None) -> dict[str, Any]:
    """The pop-up answer: the CRM's, as the contract allows it (safe URL, text names)."""
    if result is None or result.outcome not in ("found", "multiple", "not_found"):
        return dict(EMPTY_ANSWER)
    return {"STATUS": "OK", "URL": result.url, "CLIENTNAME": result.name, "TOTAL": result.total,
            "COMPANY": result.company}


@dataclasses.dataclass(frozen=True)
class Cdr:
    call_id: str
    type: str
    status: str
    caller: str
    target: str
    did: str
    started: datetime | None
    duration: int | None
    ring: int | None
    talk: int | None
    record: str
    exten_user: str
    direction: str
    dial_id: str  # ours, when Voicenter echoes the var_callpop_dial we sent with a Click2Call
    unknown: tuple[str, ...]

    @property
    def click2call_leg(self) -> int:
        kind = self.type.lower().replace(" ", "")
        return 1 if kind.startswith("click2callleg1") else 2 if kind.startswith("click2callleg2") else 0


def parse_cdr(body: Mapping[str, Any], tz: str = "UTC") -> Cdr:
    """One CDR notification (epoch times read in ``tz``); ValueError when it has no call id."""
    call_id = _text(body.get("ivruniqueid"))
    if not call_id:
        raise ValueError("no ivruniqueid")
    custom = body.get("CUSTOM_DATA") or body.get("customdata") or {}
    if isinstance(custom, str):
        try:
            custom = json.loads(custom)
        except ValueError:
            custom = {}
    dial_id = _text(custom.get("callpop_dial") or custom.get("var_callpop_dial")) if isinstance(custom, dict) else ""
    kind = _text(body.get("type"), 60)
    direction = _text(body.get("direction"), 20).lower()
    return Cdr(
        call_id=call_id, type=kind, status=_text(body.get("status"), 20).upper(),
        caller=_text(body.get("caller") or body.get("callerPhone"), 64), target=_text(body.get("target"), 64),
        did=_text(body.get("did"), 64), started=_epoch(body.get("time"), tz), duration=_int(body.get("duration")),
        ring=_int(body.get("dialtime") if body.get("dialtime") is not None else body.get("actualCallDialtime")),
        talk=_int(body.get("actualCallDuration")), record=_text(body.get("record"), 500),
        exten_user=_text(body.get("extenUser") or body.get("targetextension") or body.get("callerextension"), 64),
        direction="outbound" if direction == "outgoing" or "outgoing" in kind.lower() else "inbound",
        dial_id=dial_id, unknown=tuple(sorted(str(k)[:60] for k in body if k not in CDR_FIELDS)))


def click2call_request(plan: DialPlan, code: str, voicenter_user: str = "") -> dict[str, str]:
    """The Click2Call API request for a dial: leg A (``phone``) rings first, then ``target``."""
    if plan.leg_a_kind == "extension":
        phone = voicenter_user or plan.leg_a
    else:
        phone = plan.leg_a.lstrip("+")  # E.164 without the +, as the API takes numbers
    body = {"code": code, "phone": phone, "target": plan.leg_b.lstrip("+"), "action": "call", "format": "json",
            "var_callpop_dial": plan.dial_id}
    if plan.leg_a_kind == "extension":
        body["checkphonedevicestate"] = "true"  # an offline extension fails at once (ERRORCODE 3)
    return body


_XML_FIELD = re.compile(r"<(ERRORCODE|ERRORMESSAGE|CALLID)>\s*([^<]*?)\s*</\1>", re.I)


def parse_click2call(status: int, body: bytes) -> str:
    """The CALLID of an accepted Click2Call, or DialRefused with the reason."""
    if status != 200:
        raise DialRefused("click2call_http_error", f"Voicenter answered HTTP {status}")
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:  # the API answers XML unless format=json took effect
        data = {m[1].upper(): m[2] for m in _XML_FIELD.finditer(text)}
    if not isinstance(data, dict) or "ERRORCODE" not in {str(k).upper() for k in data}:
        raise DialRefused("click2call_bad_response", "Voicenter's answer had no ERRORCODE")
    data = {str(k).upper(): v for k, v in data.items()}
    code = _int(data.get("ERRORCODE"))
    message = _text(data.get("ERRORMESSAGE"))
    if code == 0:
        return _text(data.get("CALLID"))
    error, reason = CLICK2CALL_ERRORS.get(code, ("click2call_refused", f"Voicenter refused the call (ERRORCODE {code})"))
    if message and message.upper() != "OK":
        reason += f" — Voicenter: {message}"
    raise DialRefused(error, reason)


def voicenter_users(agents_csv: str | Path) -> dict[str, str]:
    """agent id -> Voicenter extension user, from the optional ``voicenter_user`` column."""
    try:
        with Path(agents_csv).open(newline="", encoding="utf-8-sig") as f:
            return {row["id"].strip(): (row.get("voicenter_user") or "").strip()
                    for row in csv.DictReader(f) if row.get("id") and (row.get("voicenter_user") or "").strip()}
    except (OSError, KeyError, csv.Error):
        return {}


# --- the provider
class VoicenterProvider(Provider):
    name = "voicenter"

    def __init__(self, hub: "Hub", settings):
        self.hub, self.settings = hub, settings
        self.user_of = voicenter_users(settings.agents_csv)  # agent id -> extenUser
        self.extension_of_user = {}
        for agent_id, user in self.user_of.items():
            agent = hub.agents.get(agent_id)
            if agent is not None and agent.extension:
                self.extension_of_user[user] = agent.extension
        self._dials: collections.OrderedDict[str, str] = collections.OrderedDict()  # CALLID -> dial id
        self._reported: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()
        self.popups = 0
        self.cdrs = 0

    def status(self) -> dict:
        detail = f"pop-ups at /voicenter/popup, CDRs at /voicenter/cdr; {self.popups} pop-ups, {self.cdrs} CDRs"
        if not self.settings.voicenter_code:
            detail += "; click-to-call off (no CALLPOP_VOICENTER_CODE)"
        return {"name": self.name, "state": "connected", "detail": detail}

    def extension_for(self, exten_user: str) -> str:
        """Our extension for Voicenter's extenUser ('' when nobody has it)."""
        if exten_user in self.extension_of_user:
            return self.extension_of_user[exten_user]
        return exten_user if self.hub.agents.by_extension(exten_user) else ""

    def _once(self, source: str, reason: str, what: str, detail: str) -> None:
        """Record a problem the first time it is seen (a field Voicenter added would otherwise
        fill ``rejects`` with one row per call)."""
        if (reason, what) in self._reported:
            self._reported.move_to_end((reason, what))
            log.debug("%s %s: %s", reason, what, detail)
            return
        self._reported[(reason, what)] = None
        while len(self._reported) > 10000:
            self._reported.popitem(last=False)
        self.hub.reject(source, reason, detail)

    # --- pop-up requests
    async def popup(self, fields: Mapping[str, Any], shape: str) -> dict[str, Any]:
        self.popups += 1
        p = parse_popup(fields)
        for name in p.unknown:
            self._once("/voicenter/popup", "unknown_field", name, f"field {name!r} in a {shape} pop-up request")
        if not p.ivrid:
            self.hub.reject("/voicenter/popup", "missing_ivrid", f"{shape} pop-up without ivrid (status {p.status!r})")
            return dict(EMPTY_ANSWER)
        if p.phase is None:
            self._once("/voicenter/popup", "unknown_status", p.status, f"call {p.ivrid}: status {p.status!r}")
            return self._known_answer(p.ivrid)
        extension = self.extension_for(p.exten_user)
        if not p.exten_user:  # e.g. a pop-up set on a DID, while the call is still in the IVR
            self._once("/voicenter/popup", "missing_extenuser", p.ivrid,
                       f"call {p.ivrid} {p.status}: no extenUser, nobody to pop (the CRM answer still goes back)")
        elif not extension:
            self._once("/voicenter/popup", "unknown_extenuser", p.exten_user,
                       f"extenUser {p.exten_user!r} is no agent's voicenter_user or extension (call {p.ivrid})")
            extension = p.exten_user  # kept on the call's row, so the team sees which extension it was
        direction = "outbound" if p.ivrid in self._dials else p.direction
        try:  # stamped on arrival: a pop-up comes as it happens (and Voicenter's epochs are local time)
            event = CallEvent(call_id=p.ivrid, type=p.phase, direction=direction, caller=p.phone, callee=p.did,
                              extension=extension, cause=p.cause)
        except ValidationError as e:
            self.hub.reject("/voicenter/popup", "invalid_popup", f"call {p.ivrid}: {e.errors()[0].get('msg', '')}")
            return dict(EMPTY_ANSWER)
        await self.hub.ingest(event, self.name)
        call = self.hub.book.get(p.ivrid)
        if p.phase != "ringing" or call is None:
            return self._known_answer(p.ivrid)
        return contract_answer(await self.hub.popper.answer(call, extension))

    def _known_answer(self, call_id: str) -> dict[str, Any]:
        """For later phases: what the CRM said for this call, if it said it already."""
        call = self.hub.book.get(call_id)
        pop = call.pop if call is not None else None
        if not pop or pop.get("status") not in ("found", "multiple", "not_found"):
            return dict(EMPTY_ANSWER)
        return {"STATUS": "OK", "URL": pop["url"], "CLIENTNAME": pop["name"], "TOTAL": pop["total"],
                "COMPANY": pop["company"]}

    # --- call records
    async def cdr(self, body: Any) -> dict[str, Any]:
        self.cdrs += 1
        if not isinstance(body, dict):
            self.hub.reject("/voicenter/cdr", "invalid_cdr", f"a JSON {type(body).__name__}, not an object")
            return {"err": 1, "errdesc": "the CDR must be a JSON object"}
        try:
            cdr = parse_cdr(body, self.settings.voicenter_timezone)
        except ValueError as e:
            self.hub.reject("/voicenter/cdr", "invalid_cdr", str(e))
            return {"err": 1, "errdesc": str(e)}
        for name in cdr.unknown:
            self._once("/voicenter/cdr", "unknown_field", name, f"field {name!r} in a CDR")
        if cdr.click2call_leg:
            await self._dial_cdr(cdr)
        else:
            await self._call_cdr(cdr)
        return dict(CDR_OK)

    async def _call_cdr(self, cdr: Cdr) -> None:
        answered = cdr.status == "ANSWER"
        extension = self.extension_for(cdr.exten_user) if cdr.exten_user else ""
        end = None
        if cdr.started and cdr.duration is not None:
            end = _plus(cdr.started, cdr.duration)
        call = self.hub.book.get(cdr.call_id)
        if call is not None and call.status in ("ringing", "answered"):  # no Hangup pop-up came: close it now
            base = {"call_id": cdr.call_id, "direction": call.direction, "caller": call.caller, "callee": call.callee}
            if answered and call.status == "ringing":
                await self.hub.ingest(CallEvent(**base, type="answered", extension=extension), self.name)
            await self.hub.ingest(CallEvent(**base, type="hangup",
                                            cause=CDR_CAUSES.get(cdr.status, cdr.status.lower())), self.name)
        values: dict[str, Any] = {"duration_s": cdr.duration, "ring_s": cdr.ring, "talk_s": cdr.talk,
                                  "cdr_status": cdr.status or None, "recording_url": cdr.record or None}
        if answered and extension:
            values["answered_by"] = extension
        started = call.started_at if call is not None else await self._started("calls", "call_id", cdr.call_id)
        if started is not None:
            self.hub.store.update("calls", {"call_id": cdr.call_id, "started_at": started}, values)
            return
        # Nothing popped for this call (no pop-up URL set, or before callpop ran): the record is all we have.
        customer = cdr.target if cdr.direction == "outbound" else cdr.caller
        agents = self.hub.agents.by_extension(extension) if extension else []
        start = cdr.started or utcnow()
        self.hub.store.insert("calls", {
            **values, "call_id": cdr.call_id, "direction": cdr.direction, "caller": customer,
            "caller_e164": normalise(customer, self.settings.default_region).e164,
            "callee": cdr.did or (cdr.caller if cdr.direction == "outbound" else cdr.target),
            "extension": extension or None, "agent_id": agents[0].id if agents else None, "started_at": start,
            "answered_at": _plus(start, cdr.ring or 0) if answered else None, "ended_at": end,
            "status": "ended" if answered else "missed", "provider": self.name,
            "hangup_cause": CDR_CAUSES.get(cdr.status, cdr.status.lower()) or None})

    async def _dial_cdr(self, cdr: Cdr) -> None:
        dial_id = self._dials.get(cdr.call_id) or cdr.dial_id or await self._dial_of(cdr.call_id)
        if not dial_id:
            self.hub.reject("/voicenter/cdr", "unknown_click2call",
                            f"{cdr.type} CDR {cdr.call_id}: no click-to-call of ours has that CALLID")
            return
        leg, ok = cdr.click2call_leg, cdr.status == "ANSWER"
        progress = self.hub.dial_progress
        if leg == 1:
            if ok:
                await self._advance(dial_id, "leg_a_answered")
            else:
                await progress(dial_id, "failed", f"leg_a_{LEG_FAILURES.get(cdr.status, 'failed')}",
                               f"your phone did not take the call (Voicenter: {cdr.status or 'no status'})")
        elif ok:  # the records may come in any order: move forward only
            for state in ("leg_a_answered", "bridged", "ended"):
                await self._advance(dial_id, state)
        else:
            await progress(dial_id, "failed", f"leg_b_{LEG_FAILURES.get(cdr.status, 'failed')}",
                           f"the number did not take the call (Voicenter: {cdr.status or 'no status'})")
        requested = await self._started("dials", "dial_id", dial_id, column="requested_at")
        if requested is None:
            return
        values: dict[str, Any] = {f"leg_{'a' if leg == 1 else 'b'}_status": cdr.status or None,
                                  "provider_call_id": cdr.call_id}
        if leg == 2:
            values |= {"duration_s": cdr.duration, "recording_url": cdr.record or None}
        self.hub.store.update("dials", {"dial_id": dial_id, "requested_at": requested}, values)

    async def _advance(self, dial_id: str, state: str) -> None:
        dial = self.hub.dialer.get(dial_id)
        if dial is not None and DIAL_STATES.index(state) > DIAL_STATES.index(dial.state):
            await self.hub.dial_progress(dial_id, state)

    # --- click-to-call
    async def originate(self, plan: DialPlan) -> None:
        if not self.settings.voicenter_code:
            raise DialRefused("click2call_not_configured", "click-to-call is not set up: CALLPOP_VOICENTER_CODE is empty")
        body = click2call_request(plan, self.settings.voicenter_code.get_secret_value(), self.user_of.get(plan.agent_id, ""))
        try:
            async with asyncio.timeout(self.settings.voicenter_timeout_s):
                resp = await self.hub.http.post(self.settings.voicenter_click2call_url, json=body)
                content = resp.content
        except (httpx.HTTPError, TimeoutError) as e:
            raise DialRefused("click2call_unreachable", f"Voicenter's Click2Call API did not answer "
                                                        f"({type(e).__name__})") from None
        call_id = parse_click2call(resp.status_code, content)
        if call_id:
            self._dials[call_id] = plan.dial_id
            while len(self._dials) > 10000:
                self._dials.popitem(last=False)
            dial = self.hub.dialer.get(plan.dial_id)
            if dial is not None:
                self.hub.store.update("dials", {"dial_id": plan.dial_id, "requested_at": dial.requested_at},
                                      {"provider_call_id": call_id})
        await self.hub.dial_progress(plan.dial_id, "leg_a_ringing")

    # --- the store
    async def _started(self, table: str, key: str, value: str, column: str = "started_at") -> datetime | None:
        if table == "dials":
            dial = self.hub.dialer.get(value)  # in progress or recently finished: no read needed
            if dial is not None:
                return dial.requested_at
        rows = await asyncio.to_thread(self.hub.store.query, f'SELECT "{column}" AS t FROM "{table}" WHERE "{key}" = ? '
                                       f'ORDER BY "{column}" DESC LIMIT 1', [value])
        return None if rows.empty else rows.t[0].to_pydatetime()

    async def _dial_of(self, call_id: str) -> str:
        rows = await asyncio.to_thread(self.hub.store.query, "SELECT dial_id FROM dials WHERE provider_call_id = ? "
                                       "LIMIT 1", [call_id])
        return "" if rows.empty else str(rows.dial_id[0])


def _plus(start: datetime, seconds: int) -> datetime:
    return start + timedelta(seconds=seconds)


# --- the routes
def _source_ok(hub: "Hub", request: Request, allowed: tuple[peers.Network, ...],
               trusted: tuple[peers.Network, ...]) -> JSONResponse | None:
    """None when CALLPOP_VOICENTER_ALLOWED_IPS is empty or holds the client's address, else the 403."""
    if not allowed:
        return None
    peer = request.client.host if request.client else ""
    client = peers.client_address(peer, request.headers.getlist("x-forwarded-for"), trusted)
    if client is not None and peers.within(client, allowed):
        return None
    via = f" via {peer}" if client is None or str(client) != peer else ""
    hub.reject(request.url.path, "forbidden",
               f"{client or 'an unreadable address'}{via} is not in CALLPOP_VOICENTER_ALLOWED_IPS")
    return JSONResponse({"error": "forbidden", "message": "this address may not call the Voicenter URLs "
                                                         "(CALLPOP_VOICENTER_ALLOWED_IPS)"}, status_code=403)


def _key_ok(hub: "Hub", request: Request) -> JSONResponse | None:
    secret = hub.settings.voicenter_secret.get_secret_value()
    if not secret:
        return None  # only on loopback: settings refuse a hub reachable from outside without one
    given = request.query_params.get("key", "")
    # Constant time: the comparison must not tell an attacker how much of a guess was right.
    if hmac.compare_digest(given.encode(), secret.encode()):
        return None
    hub.reject(request.url.path, "unauthorized", "bad key" if given else "missing key")
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


def router(hub: "Hub") -> APIRouter:
    """``/voicenter/popup`` and ``/voicenter/cdr``; mounted when CALLPOP_PROVIDER=voicenter."""
    r = APIRouter(tags=["voicenter"])
    cors = {"Access-Control-Allow-Origin": VOICENTER_EXTENSION_ORIGIN, "Vary": "Origin"}
    allowed = peers.networks(hub.settings.voicenter_allowed_ips)
    trusted = peers.networks(hub.settings.trusted_proxies)

    def guard(request: Request) -> JSONResponse | None:
        """The source address first (it needs no secret to check), then the key."""
        return _source_ok(hub, request, allowed, trusted) or _key_ok(hub, request)

    def provider() -> VoicenterProvider:
        return hub.provider  # type: ignore[return-value]

    @r.get("/voicenter/popup", summary="Voicenter pop-up screen request (GET, statusCall)")
    async def popup_get(request: Request):
        refused = guard(request)
        if refused:
            return refused
        fields = {k: v for k, v in request.query_params.items() if k != "key"}
        return JSONResponse(await provider().popup(fields, "GET"), headers=cors)

    @r.post("/voicenter/popup", summary="Voicenter pop-up screen request (POST form with status, or POST JSON)")
    async def popup_post(request: Request):
        refused = guard(request)
        if refused:
            return refused
        fields, shape = await _fields(request)
        if fields is None:
            hub.reject("/voicenter/popup", "invalid_request", f"POST body is not a {shape} object")
            return JSONResponse({"error": "invalid_request", "message": "send a form or a JSON object"},
                                status_code=422, headers=cors)
        return JSONResponse(await provider().popup(fields, f"POST {shape}"), headers=cors)

    @r.options("/voicenter/popup", include_in_schema=False)
    async def popup_preflight(request: Request):
        refused = _source_ok(hub, request, allowed, trusted)  # a preflight carries no key
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
            hub.reject("/voicenter/cdr", "invalid_cdr", "body is not JSON")
            return JSONResponse({"err": 1, "errdesc": "the CDR must be JSON"})
        return JSONResponse(await provider().cdr(body))

    return r
