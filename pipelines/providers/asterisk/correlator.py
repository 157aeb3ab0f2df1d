"""From AMI events to callpop's call events and click-to-call progress, pure.

Asterisk reports channels, not calls. ``Correlator.feed(message)`` keeps the channels of each
call together (by ``Linkedid``; Asterisk 11, which has none, by following ``Dial`` and
``LocalBridge`` from channel to channel) and says, as data, what a person reading the events
would write down:

- ``CallEvent`` ``ringing`` when an extension's phone rings (DialState RINGING/PROGRESS or a
  Newstate Ringing on the dialled channel) with the caller's number and the number dialled
  (the DID); ``answered`` when one of the rung phones answers (Newstate Up, DialEnd ANSWER or
  the phone entering a bridge); ``hangup`` when the last channel of the call is gone. A ring
  group is one call ringing several extensions; the hub's call book clears the other bubbles
  when one answers. An extension dialling out through a trunk is an ``outbound`` call.
- ``DialUpdate`` for a click-to-call this hub originated: leg A ringing and answered, leg B
  ringing, bridged, ended, or failed with a reason code.

A channel is an extension's phone when its technology is not ``Local`` and its device name
(``PJSIP/201-0000001b`` → ``201``) matches the extension pattern; anything else that is not a
``Local`` channel is a trunk. Nothing here touches a socket or a clock it was not given.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import time
from datetime import datetime, timezone
from typing import Callable

from ..events import NUMBER_TEXT, WITHHELD, CallEvent
from .ami import Message

DIAL_ORDER = ("requested", "leg_a_ringing", "leg_a_answered", "leg_b_ringing", "bridged", "ended")
KEEP_CALL_S = 6 * 3600  # a call with no hangup for this long is forgotten (missed events)
_CHANNEL = re.compile(r"^(?P<tech>[^/]+)/(?P<res>.+?)(?:-[0-9a-fA-F]+)?(?:;[12])?(?:<[A-Z]+>)*$")

# OriginateResponse Reason: the last control frame Asterisk saw on the originated channel.
ORIGINATE_FAILURES = {
    "0": ("leg_a_unreachable", "your phone could not be called (unknown device, or not registered)"),
    "1": ("leg_a_rejected", "your phone hung up before answering"),
    "3": ("leg_a_no_answer", "your phone was not answered"),
    "5": ("leg_a_busy", "your phone is busy"),
    "8": ("leg_a_unreachable", "your phone could not be reached (congestion)"),
}
# Q.850 causes of leg A's hangup before it answered.
LEG_A_CAUSES = {"17": ("leg_a_busy", "your phone is busy"),
                "18": ("leg_a_no_answer", "your phone was not answered"),
                "19": ("leg_a_no_answer", "your phone was not answered"),
                "21": ("leg_a_rejected", "your phone rejected the call")}
# DialEnd DialStatus of leg B.
LEG_B_STATUSES = {"BUSY": ("leg_b_busy", "{to} is busy"),
                  "NOANSWER": ("leg_b_no_answer", "{to} did not answer"),
                  "CHANUNAVAIL": ("leg_b_unreachable", "{to} could not be reached"),
                  "CONGESTION": ("leg_b_unreachable", "{to} could not be reached (network congestion)"),
                  "CANCEL": ("cancelled", "you hung up before {to} answered")}
# Why an unanswered inbound call ended, from its last DialEnd.
UNANSWERED = {"CANCEL": "caller hung up", "NOANSWER": "no answer", "BUSY": "busy",
              "CHANUNAVAIL": "extension unavailable", "CONGESTION": "congestion"}


@dataclasses.dataclass(frozen=True)
class DialUpdate:
    """Progress of a click-to-call, for ``ProviderHost.dial_progress``."""
    dial_id: str
    state: str
    error: str = ""
    reason: str = ""


Output = CallEvent | DialUpdate


def split_channel(name: str) -> tuple[str, str]:
    """(technology, device) of a channel name: ``PJSIP/201-0000001b`` → (PJSIP, 201),
    ``Local/259@default-00000000;1`` → (Local, 259@default)."""
    m = _CHANNEL.match(name.strip())
    return (m["tech"], m["res"]) if m else ("", name.strip())


def channel_base(requested: str) -> str:
    """What the channels of an Originate's ``Channel`` are called, without their suffix:
    ``Local/259`` → ``local/259@default`` (Asterisk's default context), ``PJSIP/201`` → ``pjsip/201``."""
    tech, _, rest = requested.strip().partition("/")
    device = rest.split("/", 1)[0]
    if tech.lower() == "local" and "@" not in device:
        device += "@default"
    return f"{tech.lower()}/{device}"


def clean_number(value: str) -> str:
    """A caller id number as the hub takes it: withheld spellings and non-numbers become ''."""
    value = (value or "").strip()
    if value.lower() in WITHHELD or not NUMBER_TEXT.match(value):
        return ""
    return value[:64]


@dataclasses.dataclass
class _Chan:
    uid: str
    name: str
    call: str
    caller: str = ""  # CallerIDNum
    exten: str = ""   # Exten when created: the number dialled into the PBX
    last_dialled: str = ""  # uid of the last channel this one dialled (Asterisk 11 DialEnd has no dest)
    alive: bool = True

    @property
    def tech(self) -> str:
        return split_channel(self.name)[0]

    @property
    def local(self) -> bool:
        return self.tech.lower() == "local"


@dataclasses.dataclass
class _Dial:
    dial_id: str
    action_id: str
    base: str
    channel_id: str
    to: str
    deadline: float
    call: str = ""
    state: str = "requested"
    leg_a: set = dataclasses.field(default_factory=set)
    leg_b: set = dataclasses.field(default_factory=set)
    b_status: str = ""
    b_answered: bool = False
    a_cause: str = ""
    a_cause_txt: str = ""


@dataclasses.dataclass
class _Call:
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
    dial: _Dial | None = None
    bridges: dict = dataclasses.field(default_factory=dict)  # bridge id -> uids


class Correlator:
    """Feed AMI events in order; get the normalised outputs of each back."""

    def __init__(self, extension_pattern: str = r"^\d{2,6}$", internal_calls: str = "pop",
                 clock: Callable[[], float] = time.monotonic):
        self.extension = re.compile(extension_pattern)
        self.internal_calls = internal_calls
        self.clock = clock
        self.chans: dict[str, _Chan] = {}
        self.calls: dict[str, _Call] = {}
        self.pending: dict[str, _Dial] = {}  # originates whose first channel has not appeared
        self._by_action: dict[str, _Dial] = {}
        self.ids_honoured = False  # the PBX sets the ChannelId we ask for (Asterisk 12+)
        self._gone: collections.OrderedDict[str, None] = collections.OrderedDict()  # channels of ended calls
        self._stamp: datetime | None = None
        self._handlers = {
            "newchannel": self._newchannel, "newstate": self._newstate, "newcallerid": self._newcallerid,
            "dialbegin": self._dialbegin, "dialstate": self._dialstate, "dialend": self._dialend,
            "dial": self._dial11, "bridgeenter": self._bridgeenter, "bridgeleave": self._bridgeleave,
            "bridge": self._bridge11, "localbridge": self._localbridge, "rename": self._rename,
            "hangup": self._hangup, "originateresponse": self._originateresponse,
        }

    # --- the interface
    def feed(self, msg: Message) -> list[Output]:
        if msg.kind != "event":
            return []
        handler = self._handlers.get(msg.name.lower())
        if handler is None:
            return []
        raw = msg.get("Timestamp")  # present when manager.conf has timestampevents=yes
        try:
            self._stamp = datetime.fromtimestamp(float(raw), timezone.utc).replace(tzinfo=None) if raw else None
        except (ValueError, OverflowError):
            self._stamp = None
        out: list[Output] = []
        handler(msg, out)
        return out

    def expect_originate(self, dial_id: str, action_id: str, channel: str, channel_id: str = "",
                         to: str = "the number", wait_s: float = 60.0) -> None:
        """An Originate is about to be sent: its channels belong to this dial."""
        dial = _Dial(dial_id, action_id, channel_base(channel), channel_id, to, self.clock() + wait_s)
        self.pending[dial_id] = dial
        self._by_action[action_id] = dial

    def channels_of(self, dial_id: str) -> list[str]:
        """The names of a dial's live channels (leg A first), as AMI's Hangup action wants them."""
        call = next((c for c in self.calls.values() if c.dial is not None and c.dial.dial_id == dial_id), None)
        if call is None:
            return []
        uids = [*sorted(call.dial.leg_a), *sorted(call.dial.leg_b - call.dial.leg_a)]
        return [self.chans[u].name for u in uids if u in self.chans and self.chans[u].alive]

    def cancel_originate(self, dial_id: str) -> None:
        """The Originate was refused at once: forget it (the caller reports the failure)."""
        dial = self.pending.pop(dial_id, None)
        if dial is not None:
            self._by_action.pop(dial.action_id, None)

    def expire(self) -> list[Output]:
        """Originates whose channel never appeared, and calls silent for hours, are let go."""
        now, out = self.clock(), []
        for dial in [d for d in self.pending.values() if now > d.deadline]:
            self.cancel_originate(dial.dial_id)
            out.append(DialUpdate(dial.dial_id, "failed", "pbx_no_channel",
                                  "the phone system accepted the call but never started it"))
        for call in [c for c in self.calls.values() if now - c.seen > KEEP_CALL_S]:
            self._forget(call)
        return out

    def resync(self, live: set[str]) -> list[Output]:
        """After a reconnect: ``live`` are the uniqueids Asterisk still has (CoreShowChannels).
        Calls none of whose channels survived ended while we were away."""
        out: list[Output] = []
        for dial in list(self.pending.values()):
            self.cancel_originate(dial.dial_id)
            out.append(DialUpdate(dial.dial_id, "failed", "pbx_disconnected",
                                  "the connection to the phone system dropped while the call was placed"))
        for call in list(self.calls.values()):
            for uid in list(call.channels):
                if uid not in live:
                    call.channels.discard(uid)
                    if uid in self.chans:
                        self.chans[uid].alive = False
            if not call.channels:
                if not call.origin_cause:
                    call.origin_cause = "ended while callpop was disconnected from Asterisk"
                self._end(call, out)
        return out

    def live_calls(self) -> int:
        return len(self.calls)

    # --- channels and calls
    def _chan(self, msg: Message, uid_key: str = "Uniqueid", name_key: str = "Channel",
              link_key: str = "Linkedid", out: list | None = None) -> _Chan | None:
        uid = msg.get(uid_key)
        if not uid or uid == "<null>" or uid in self._gone:
            return None  # late events about a call already over make no new call
        chan = self.chans.get(uid)
        if chan is None:  # first seen mid-call (e.g. we connected while it was up)
            chan = self._new_chan(uid, msg.get(name_key), msg.get(link_key) or uid, msg, out)
        self.calls[chan.call].seen = self.clock()
        return chan

    def _new_chan(self, uid: str, name: str, key: str, msg: Message, out: list | None) -> _Chan:
        chan = _Chan(uid, name, key, caller=clean_number(msg.get("CallerIDNum")),
                     exten=clean_number(msg.get("Exten")))
        self.chans[uid] = chan
        call = self.calls.get(key)
        if call is None:
            call = self.calls[key] = _Call(key, origin=key, seen=self.clock())
        call.channels.add(uid)
        if call.dial is not None:
            self._dial_join(call, chan, out)
        elif self.pending and uid == key:
            self._bind(call, chan)
        return chan

    def _bind(self, call: _Call, chan: _Chan) -> None:
        dial = next((d for d in self.pending.values() if d.channel_id and d.channel_id == chan.uid), None)
        if dial is not None:
            self.ids_honoured = True
        elif not self.ids_honoured:
            tech, device = split_channel(chan.name)
            base = f"{tech.lower()}/{device}"
            dial = next((d for d in self.pending.values() if d.base == base), None)
        if dial is None:
            return
        del self.pending[dial.dial_id]
        dial.call, call.dial = call.key, dial
        dial.leg_a.add(chan.uid)

    def _join(self, child: _Chan, parent: _Chan, out: list) -> None:
        """Asterisk 11 has no Linkedid: a channel dialled (or Local-bridged) by another joins its call."""
        if child.call == parent.call:
            return
        old, new = self.calls.get(child.call), self.calls[parent.call]
        if old is not None and (old.emitted or old.dial is not None or len(old.channels) > 1):
            return  # a call of its own
        moving = [c for c in self.chans.values() if c.call == child.call]
        self.calls.pop(child.call, None)
        for chan in moving:
            chan.call = new.key
            if chan.alive:
                new.channels.add(chan.uid)
            if new.dial is not None:
                self._dial_join(new, chan, out)

    def _extension_of(self, chan: _Chan | None) -> str:
        if chan is None or chan.local:
            return ""
        device = split_channel(chan.name)[1]
        return device if self.extension.match(device) else ""

    def _is_trunk(self, chan: _Chan) -> bool:
        return not chan.local and not self._extension_of(chan)

    # --- event handlers
    def _newchannel(self, msg: Message, out: list) -> None:
        uid = msg.get("Uniqueid")
        if uid and uid not in self.chans and uid not in self._gone:
            self._new_chan(uid, msg.get("Channel"), msg.get("Linkedid") or uid, msg, out)

    def _newcallerid(self, msg: Message, out: list) -> None:
        chan = self._chan(msg, out=out)
        if chan is not None and msg.get("CallerIDNum"):
            chan.caller = clean_number(msg.get("CallerIDNum"))

    def _newstate(self, msg: Message, out: list) -> None:
        chan = self._chan(msg, out=out)
        if chan is None:
            return
        state = msg.get("ChannelState")
        desc = msg.get("ChannelStateDesc").lower()
        call = self.calls[chan.call]
        if state == "5" or desc == "ringing":
            self._ringing(call, chan.uid, out)
        elif state == "6" or desc == "up":
            self._up(call, chan.uid, out)

    def _dialbegin(self, msg: Message, out: list) -> None:
        src = self._chan(msg, out=out) if msg.get("Channel") else None
        dest = self._chan(msg, "DestUniqueid", "DestChannel", "DestLinkedid", out)
        if dest is not None:
            self._dial_started(src, dest, msg.get("CallerIDNum") if src else "", out)

    def _dialstate(self, msg: Message, out: list) -> None:
        dest = self._chan(msg, "DestUniqueid", "DestChannel", "DestLinkedid", out)
        if dest is not None and msg.get("DialStatus").upper() in ("RINGING", "PROGRESS"):
            self._ringing(self.calls[dest.call], dest.uid, out)

    def _dialend(self, msg: Message, out: list) -> None:
        dest = self._chan(msg, "DestUniqueid", "DestChannel", "DestLinkedid", out)
        if dest is not None:
            self._dial_ended(dest, msg.get("DialStatus").upper(), out)

    def _dial11(self, msg: Message, out: list) -> None:
        """Asterisk 11: ``Dial`` with SubEvent Begin (Destination, DestUniqueID) or End (DialStatus)."""
        src = self._chan(msg, out=out)
        sub = msg.get("SubEvent").lower()
        if sub == "begin":
            dest = self._chan(msg, "DestUniqueID", "Destination", "", out)
            if dest is not None:
                if src is not None:
                    self._join(dest, src, out)
                self._dial_started(src, dest, msg.get("CallerIDNum"), out)
        elif sub == "end" and src is not None and src.last_dialled in self.chans:
            self._dial_ended(self.chans[src.last_dialled], msg.get("DialStatus").upper(), out)

    def _localbridge(self, msg: Message, out: list) -> None:
        one = self._chan(msg, "Uniqueid1", "Channel1", "", out)
        two = self._chan(msg, "Uniqueid2", "Channel2", "", out)
        if one is not None and two is not None:
            self._join(two, one, out)

    def _rename(self, msg: Message, out: list) -> None:
        chan = self.chans.get(msg.get("Uniqueid"))
        if chan is not None and msg.get("Newname"):
            chan.name = msg.get("Newname")

    def _bridgeenter(self, msg: Message, out: list) -> None:
        chan = self._chan(msg, out=out)
        if chan is None:
            return
        call = self.calls[chan.call]
        members = call.bridges.setdefault(msg.get("BridgeUniqueid"), set())
        members.add(chan.uid)
        self._in_bridge(call, members, out)

    def _bridgeleave(self, msg: Message, out: list) -> None:
        chan = self.chans.get(msg.get("Uniqueid"))
        if chan is not None and chan.call in self.calls:
            self.calls[chan.call].bridges.get(msg.get("BridgeUniqueid"), set()).discard(chan.uid)

    def _bridge11(self, msg: Message, out: list) -> None:
        if msg.get("Bridgestate").lower() != "link":
            return
        one = self._chan(msg, "Uniqueid1", "Channel1", "", out)
        two = self._chan(msg, "Uniqueid2", "Channel2", "", out)
        if one is not None and two is not None and one.call == two.call:
            self._in_bridge(self.calls[one.call], {one.uid, two.uid}, out)

    def _hangup(self, msg: Message, out: list) -> None:
        chan = self.chans.get(msg.get("Uniqueid"))
        if chan is None or not chan.alive:
            return
        chan.alive = False
        call = self.calls.get(chan.call)
        if call is None:
            return
        call.channels.discard(chan.uid)
        cause = msg.get("Cause-txt") or msg.get("Cause")
        if chan.uid == call.origin:
            call.origin_cause = cause
        call.first_cause = call.first_cause or cause
        if call.dial is not None and chan.uid in call.dial.leg_a and not call.dial.a_cause:
            call.dial.a_cause, call.dial.a_cause_txt = msg.get("Cause"), msg.get("Cause-txt")
        if not call.channels:
            self._end(call, out)

    def _originateresponse(self, msg: Message, out: list) -> None:
        dial = self._by_action.pop(msg.action_id, None)
        if dial is None:
            return
        if msg.get("Response").lower() != "success":
            self.pending.pop(dial.dial_id, None)
            error, reason = ORIGINATE_FAILURES.get(msg.get("Reason"), (
                "leg_a_unreachable", f"your phone could not be called (Asterisk reason {msg.get('Reason') or '?'})"))
            self._dial_final(dial, "failed", error, reason, out)
            return
        if dial.dial_id in self.pending:  # answered before we could tie a channel to it
            uid = msg.get("Uniqueid")
            chan = self.chans.get(uid)
            if chan is not None and chan.call in self.calls:
                del self.pending[dial.dial_id]
                dial.call, self.calls[chan.call].dial = chan.call, dial
                dial.leg_a.add(uid)
        if not dial.call:
            return
        self._advance(dial, "leg_a_answered", out)

    # --- what the events mean: inbound and outbound calls
    def _dial_started(self, src: _Chan | None, dest: _Chan, caller: str, out: list) -> None:
        call = self.calls[dest.call]
        if src is not None:
            src.last_dialled = dest.uid
        if call.dial is not None:
            self._dial_join(call, dest, out)
            if dest.uid in call.dial.leg_b:
                self._advance(call.dial, "leg_b_ringing", out)
            return
        if call.ignored or src is None:  # a channel originated by someone else: nobody is calling
            return
        origin = self.chans.get(call.origin)
        origin_ext = self._extension_of(origin)
        ext = self._extension_of(dest)
        if ext:
            if origin_ext and self.internal_calls == "ignore":
                call.ignored = True
                return
            call.targets[dest.uid] = ext
            if call.caller is None:
                call.caller = clean_number(caller) or (origin.caller if origin else "")
                call.did = origin.exten if origin else ""
        elif self._is_trunk(dest) and origin_ext and not call.targets:
            call.trunk_legs.add(dest.uid)
            if not call.outbound:
                call.outbound = origin_ext
                call.outbound_to = origin.exten if origin else ""
                call.caller = origin.caller if origin else ""
                self._emit(call, "ringing", origin_ext, out)

    def _ringing(self, call: _Call, uid: str, out: list) -> None:
        if call.dial is not None:
            leg = "leg_a_ringing" if uid in call.dial.leg_a else "leg_b_ringing" if uid in call.dial.leg_b else ""
            if leg:
                self._advance(call.dial, leg, out)
            return
        ext = call.targets.get(uid)
        if ext and ext not in call.rang and not call.answered:
            call.rang.append(ext)
            self._emit(call, "ringing", ext, out)

    def _up(self, call: _Call, uid: str, out: list) -> None:
        if call.dial is not None:
            if uid in call.dial.leg_a:
                self._advance(call.dial, "leg_a_answered", out)
            elif uid in call.dial.leg_b:
                call.dial.b_answered = True
            return
        if call.answered:
            return
        if uid in call.targets:
            ext = call.targets[uid]
            if ext not in call.rang:  # answered without ringing first (auto-answer)
                self._ringing(call, uid, out)
            call.answered = True
            self._emit(call, "answered", ext, out)
        elif uid in call.trunk_legs:
            call.answered = True
            self._emit(call, "answered", call.outbound, out)

    def _dial_ended(self, dest: _Chan, status: str, out: list) -> None:
        call = self.calls.get(dest.call)
        if call is None:
            return
        if call.dial is not None:
            if dest.uid in call.dial.leg_b:
                if status == "ANSWER":
                    call.dial.b_answered = True
                else:
                    call.dial.b_status = status
            elif dest.uid in call.dial.leg_a and status == "ANSWER":
                self._advance(call.dial, "leg_a_answered", out)
            return
        if status == "ANSWER":
            self._up(call, dest.uid, out)
        elif dest.uid in call.targets or dest.uid in call.trunk_legs or not call.last_status:
            call.last_status = status

    def _in_bridge(self, call: _Call, members: set, out: list) -> None:
        if call.dial is not None:
            dial = call.dial
            if members & dial.leg_b and members & dial.leg_a:
                dial.b_answered = True
                self._advance(dial, "bridged", out)
            return
        for uid in members:
            if uid in call.targets or uid in call.trunk_legs:
                self._up(call, uid, out)

    def _end(self, call: _Call, out: list) -> None:
        if call.dial is not None:
            self._dial_end(call.dial, out)
        elif call.emitted:
            if call.answered:
                cause = call.origin_cause or call.first_cause
            else:
                cause = UNANSWERED.get(call.last_status) or call.origin_cause or call.first_cause
            self._emit(call, "hangup", "", out, cause=cause)
        self._forget(call)

    def _forget(self, call: _Call) -> None:
        self.calls.pop(call.key, None)
        for uid in [u for u, c in self.chans.items() if c.call == call.key]:
            del self.chans[uid]
            self._gone[uid] = None
        while len(self._gone) > 5000:
            self._gone.popitem(last=False)
        if call.dial is not None:
            self._by_action.pop(call.dial.action_id, None)

    def _emit(self, call: _Call, kind: str, ext: str, out: list, cause: str = "") -> None:
        call.emitted = True
        direction = "outbound" if call.outbound else "inbound"
        callee = call.outbound_to if call.outbound else call.did
        out.append(CallEvent(call_id=call.key, type=kind, direction=direction, caller=call.caller or "",
                             callee=callee, extension=ext, cause=cause[:200], at=self._stamp))

    # --- click-to-call legs
    def _dial_join(self, call: _Call, chan: _Chan, out: list | None) -> None:
        dial = call.dial
        if chan.uid in dial.leg_a or chan.uid in dial.leg_b:
            return
        # Until the agent answers, every new channel is on their side (Local halves, the phone,
        # follow-me); after that, what the dialplan dials is the number asked for.
        if DIAL_ORDER.index(dial.state) < DIAL_ORDER.index("leg_a_answered"):
            dial.leg_a.add(chan.uid)
        else:
            dial.leg_b.add(chan.uid)

    def _advance(self, dial: _Dial, state: str, out: list) -> None:
        if dial.state in ("ended", "failed") or DIAL_ORDER.index(state) <= DIAL_ORDER.index(dial.state):
            return
        dial.state = state
        out.append(DialUpdate(dial.dial_id, state))

    def _dial_final(self, dial: _Dial, state: str, error: str, reason: str, out: list) -> None:
        if dial.state in ("ended", "failed"):
            return
        dial.state = state
        out.append(DialUpdate(dial.dial_id, state, error, reason))

    def _dial_end(self, dial: _Dial, out: list) -> None:
        """The dial's last channel is gone: how did it go?"""
        if dial.state in ("ended", "failed"):
            return
        if dial.b_answered:  # bridged even if the bridge events were filtered out
            self._advance(dial, "bridged", out)
        if dial.state == "bridged":
            self._advance(dial, "ended", out)
            return
        if DIAL_ORDER.index(dial.state) >= DIAL_ORDER.index("leg_a_answered"):
            if dial.b_status or dial.leg_b:
                error, reason = LEG_B_STATUSES.get(dial.b_status, ("leg_b_failed", "the call to {to} failed"))
            else:
                error, reason = "leg_b_not_dialled", "the phone system did not call {to} (check CALLPOP_AMI_CONTEXT)"
            self._dial_final(dial, "failed", error, reason.format(to=dial.to), out)
            return
        error, reason = LEG_A_CAUSES.get(dial.a_cause, (
            "leg_a_failed", f"your phone could not be called ({dial.a_cause_txt or 'no reason given'})"))
        self._dial_final(dial, "failed", error, reason, out)
