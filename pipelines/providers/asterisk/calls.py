"""A call that nobody here originated, as its AMI events tell it, pure: one state machine per
call, saying ``ringing`` when an extension's phone rings, ``answered`` when one of the rung
phones answers, ``hangup`` when the last channel is gone. A ring group is one call ringing
several extensions (the hub's call book clears the other bubbles when one answers); an
extension dialling out through a trunk is an ``outbound`` call. The correlator ties channels to
the call and calls these methods; they append ``CallEvent``s stamped ``at``."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from ...events import CallEvent
from .clicktocall import Dial

# Why an unanswered inbound call ended, from its last DialEnd.
UNANSWERED = {"CANCEL": "caller hung up", "NOANSWER": "no answer", "BUSY": "busy",
              "CHANUNAVAIL": "extension unavailable", "CONGESTION": "congestion"}


@dataclasses.dataclass
class Call:
    key: str
    origin: str
    seen: float
    channels: set = dataclasses.field(default_factory=set)  # uids of live channels
    targets: dict = dataclasses.field(default_factory=dict)  # uid -> extension rung
    rang: list = dataclasses.field(default_factory=list)     # extensions reported ringing
    caller: str | None = None
    did: str = ""
    answered: bool = False
    outbound: str = ""     # the extension that dialled out
    outbound_to: str = ""
    trunk_legs: set = dataclasses.field(default_factory=set)
    emitted: bool = False
    ignored: bool = False
    last_status: str = ""
    origin_cause: str = ""
    first_cause: str = ""
    dial: Dial | None = None  # a click-to-call of ours: its own state machine, not this one
    bridges: dict = dataclasses.field(default_factory=dict)  # bridge id -> uids

    def rings_extension(self, uid: str, ext: str, caller: str, did: str) -> None:
        """The call dialled extension ``ext`` on channel ``uid``."""
        self.targets[uid] = ext
        if self.caller is None:
            self.caller, self.did = caller, did

    def dials_out(self, uid: str, ext: str, to: str, caller: str, out: list, at: datetime | None) -> None:
        """Extension ``ext`` dialled a trunk (channel ``uid``)."""
        self.trunk_legs.add(uid)
        if not self.outbound:
            self.outbound, self.outbound_to, self.caller = ext, to, caller
            self.emit("ringing", ext, out, at)

    def ringing(self, uid: str, out: list, at: datetime | None) -> None:
        ext = self.targets.get(uid)
        if ext and ext not in self.rang and not self.answered:
            self.rang.append(ext)
            self.emit("ringing", ext, out, at)

    def up(self, uid: str, out: list, at: datetime | None) -> None:
        if self.answered:
            return
        if uid in self.targets:
            ext = self.targets[uid]
            if ext not in self.rang:  # answered without ringing first (auto-answer)
                self.ringing(uid, out, at)
            self.answered = True
            self.emit("answered", ext, out, at)
        elif uid in self.trunk_legs:
            self.answered = True
            self.emit("answered", self.outbound, out, at)

    def dial_ended(self, uid: str, status: str, out: list, at: datetime | None) -> None:
        if status == "ANSWER":
            self.up(uid, out, at)
        elif uid in self.targets or uid in self.trunk_legs or not self.last_status:
            self.last_status = status

    def in_bridge(self, members: set, out: list, at: datetime | None) -> None:
        for uid in members:
            if uid in self.targets or uid in self.trunk_legs:
                self.up(uid, out, at)

    def hung_up(self, uid: str, cause: str) -> None:
        if uid == self.origin:
            self.origin_cause = cause
        self.first_cause = self.first_cause or cause

    def end(self, out: list, at: datetime | None) -> None:
        """The call's last channel is gone."""
        if not self.emitted:
            return
        if self.answered:
            cause = self.origin_cause or self.first_cause
        else:
            cause = UNANSWERED.get(self.last_status) or self.origin_cause or self.first_cause
        self.emit("hangup", "", out, at, cause=cause)

    def emit(self, kind: str, ext: str, out: list, at: datetime | None, cause: str = "") -> None:
        self.emitted = True
        direction = "outbound" if self.outbound else "inbound"
        callee = self.outbound_to if self.outbound else self.did
        out.append(CallEvent(call_id=self.key, type=kind, direction=direction, caller=self.caller or "",
                             callee=callee, extension=ext, cause=cause[:200], at=at))
