"""Voicenter's wire formats, pure: pop-up requests and their answer, CDR notifications, and the
Click2Call API's request and answer. Nothing here does I/O or knows the hub."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime, timezone
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ...crm_contract import LookupResult
from ...dialplan import DialPlan, DialRefused

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
