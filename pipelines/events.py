"""The messages callpop speaks: normalised call events in, WebSocket messages out.

Pure data: pydantic models validate what arrives over HTTP; the ``msg_*`` builders make what
leaves over the WebSocket. The ``type`` names are the protocol; the extension's dispatch table
(``extension/background/protocol.js``) uses the same keys.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .phone import ascii_digits, fold_digits

EVENT_TYPES = ("ringing", "answered", "hangup")
DIRECTIONS = ("inbound", "outbound")

# How PBXs spell a withheld caller; all become "".
WITHHELD = ("anonymous", "unknown", "private", "withheld", "restricted", "unavailable", "<unknown>")
NUMBER_TEXT = re.compile(r"^\+?[0-9 ().\-/*#]*$")  # ASCII, once every digit form is folded
PBX_TEXT = re.compile(r"^[\x20-\x7e]*$")  # what a PBX sends as an id or extension: printable ASCII

# WebSocket message types, both ways.
CLIENT_TYPES = ("hello", "ack", "ping")
HUB_TYPES = ("welcome", "pop", "call", "dial", "inbox", "call_log", "pong", "heartbeat", "error")
ACK_EVENTS = ("shown", "clicked", "closed")
POP_STATUSES = ("found", "multiple", "not_found", "pending", "error")
CALL_STATES = ("ringing", "answered", "answered_elsewhere", "ended", "missed")
DIAL_STATES = ("requested", "leg_a_ringing", "leg_a_answered", "leg_b_ringing", "bridged", "ended", "failed")


def utcnow() -> datetime:
    """Now, UTC, without tzinfo: the form DuckDB's TIMESTAMP columns hold."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso_utc(at: datetime | None, timespec: str = "milliseconds") -> str | None:
    """A naive UTC time (as the store holds it) as ISO 8601 with its Z; None stays None."""
    return None if at is None else at.isoformat(timespec=timespec) + "Z"


def as_utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


class CallEvent(BaseModel):
    """One normalised call event, whatever the PBX (POST /api/events, and every provider)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    call_id: str = Field(min_length=1, max_length=200, description="The PBX's id for the call; ties its events together.")
    type: Literal["ringing", "answered", "hangup"]
    direction: Literal["inbound", "outbound"] = "inbound"
    caller: str = Field(default="", max_length=64, description="Calling number as the network delivered it.")
    callee: str = Field(default="", max_length=64, description="Called number (the DID for inbound calls).")
    extension: str = Field(default="", max_length=64, description="Extension ringing / answering.")
    at: datetime | None = Field(default=None, description="When it happened (ISO 8601, held as UTC); default: when "
                                "received. Further than CALLPOP_EVENT_WINDOW_H from the hub's clock: refused.")
    id: str | None = Field(default=None, max_length=200, description="Sender's event id, to make retries idempotent.")
    cause: str = Field(default="", max_length=200, description="hangup: why the call ended.")

    @field_validator("at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        # Naive UTC, as the tables hold it; an offset that leaves the calendar is refused here.
        if v is None:
            return None
        try:
            return as_utc(v)
        except (OverflowError, ValueError):
            raise ValueError("is outside the calendar once converted to UTC") from None

    @field_validator("call_id", "extension", "id")
    @classmethod
    def _pbx_text(cls, v: str | None) -> str | None:
        # Stored and logged as is, and read back into CSVs and logs: printable ASCII only (no
        # newline, DEL or C1 control to forge a line; no look-alike letters of other scripts).
        if v is None:
            return v
        v = fold_digits(v)
        if not PBX_TEXT.match(v):
            raise ValueError("must be printable ASCII (letters, digits and punctuation as a PBX sends them)")
        return v

    @field_validator("cause")
    @classmethod
    def _one_line(cls, v: str) -> str:
        if not v.isprintable():
            raise ValueError("must be one line of text without control or format characters")
        return v

    @field_validator("caller", "callee")
    @classmethod
    def _number(cls, v: str) -> str:
        v = ascii_digits(v).strip()
        if v.lower() in WITHHELD:
            return ""
        if not NUMBER_TEXT.match(v):
            raise ValueError(f"{v[:30]!r} is not a phone number (digits, spaces, + - . ( ) only; "
                             "empty when withheld)")
        return v

    def event_id(self) -> str:
        """Idempotency key: the sender's id, else a digest of what makes the event itself."""
        if self.id:
            return self.id
        at = self.at.isoformat() if self.at else ""
        basis = "|".join((self.call_id, self.type, self.extension, at))
        return "h:" + hashlib.sha256(basis.encode()).hexdigest()[:32]


class DialRequest(BaseModel):
    """POST /api/dial."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    to: str = Field(min_length=1, max_length=64, description="Number to call (leg B).")
    leg_a: str = Field(default="extension", max_length=64,
                       description="Phone rung first: extension, mobile, home, or a number.")
    source: Literal["extension", "console", "api"] = "api"
    callback_for: str | None = Field(default=None, min_length=1, max_length=100,
                                     description="The missed call (its call_id in your inbox) this dial calls back.")


# --- hub -> client messages
def msg_welcome(agent: dict, heartbeat_s: float) -> dict:
    return {"type": "welcome", "agent": agent, "heartbeat_s": heartbeat_s}


def msg_call(call_id: str, state: str, **extra) -> dict:
    return {"type": "call", "call_id": call_id, "state": state, **extra}


def msg_dial(dial_id: str, state: str, **extra) -> dict:
    return {"type": "dial", "dial_id": dial_id, "state": state, **extra}


def msg_error(code: str, message: str) -> dict:
    return {"type": "error", "code": code, "message": message}
