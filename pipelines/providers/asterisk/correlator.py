"""From AMI events to callpop's call events and click-to-call progress, pure.

Asterisk reports channels, not calls. ``Correlator.feed(message)`` keeps the channels of each
call together (by ``Linkedid``; Asterisk 11, which has none, by following ``Dial`` and
``LocalBridge`` from channel to channel) and says, as data, what a person reading the events
would write down:

- ``CallEvent`` ``ringing`` when an extension's phone rings (DialState RINGING/PROGRESS or a
  Newstate Ringing on the dialled channel) with the caller's number and the number dialled
  (the DID); ``answered`` when one of the rung phones answers (Newstate Up, DialEnd ANSWER or
  the phone entering a bridge); ``hangup`` when the last channel of the call is gone
  (``calls.Call``).
- ``DialUpdate`` for a click-to-call this hub originated: leg A ringing and answered, leg B
  ringing, bridged, ended, or failed with a reason code (``clicktocall.Dial``).

This module follows channels (``channels``) and routes each event to the state machine of its
call. Nothing here touches a socket or a clock it was not given.
"""

from __future__ import annotations

import collections
import re
import time
from datetime import datetime, timezone
from typing import Callable

from ...events import CallEvent
from .ami import Message
from .calls import Call
from .channels import Chan, channel_base, clean_number, split_channel
from .clicktocall import Dial, DialUpdate

__all__ = ["Correlator", "DialUpdate", "Output", "channel_base", "split_channel"]
KEEP_CALL_S = 6 * 3600  # a call with no hangup for this long is forgotten (missed events)

Output = CallEvent | DialUpdate


class Correlator:
    """Feed AMI events in order; get the normalised outputs of each back."""

    def __init__(self, extension_pattern: str = r"^\d{2,6}$", internal_calls: str = "pop",
                 clock: Callable[[], float] = time.monotonic):
        self.extension = re.compile(extension_pattern)
        self.internal_calls = internal_calls
        self.clock = clock
        self.chans: dict[str, Chan] = {}
        self.calls: dict[str, Call] = {}
        self.pending: dict[str, Dial] = {}  # originates whose first channel has not appeared
        self._by_action: dict[str, Dial] = {}
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
        dial = Dial(dial_id, action_id, channel_base(channel), channel_id, to, self.clock() + wait_s)
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
              link_key: str = "Linkedid", out: list | None = None) -> Chan | None:
        uid = msg.get(uid_key)
        if not uid or uid == "<null>" or uid in self._gone:
            return None  # late events about a call already over make no new call
        chan = self.chans.get(uid)
        if chan is None:  # first seen mid-call (e.g. we connected while it was up)
            chan = self._new_chan(uid, msg.get(name_key), msg.get(link_key) or uid, msg, out)
        self.calls[chan.call].seen = self.clock()
        return chan

    def _new_chan(self, uid: str, name: str, key: str, msg: Message, out: list | None) -> Chan:
        chan = Chan(uid, name, key, caller=clean_number(msg.get("CallerIDNum")),
                     exten=clean_number(msg.get("Exten")))
        self.chans[uid] = chan
        call = self.calls.get(key)
        if call is None:
            call = self.calls[key] = Call(key, origin=key, seen=self.clock())
        call.channels.add(uid)
        if call.dial is not None:
            call.dial.join(chan.uid)
        elif self.pending and uid == key:
            self._bind(call, chan)
        return chan

    def _bind(self, call: Call, chan: Chan) -> None:
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

    def _join(self, child: Chan, parent: Chan, out: list) -> None:
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
                new.dial.join(chan.uid)

    def _extension_of(self, chan: Chan | None) -> str:
        if chan is None or chan.local:
            return ""
        device = split_channel(chan.name)[1]
        return device if self.extension.match(device) else ""

    def _is_trunk(self, chan: Chan) -> bool:
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
        call.hung_up(chan.uid, cause)
        if call.dial is not None:
            call.dial.hung_up(chan.uid, msg.get("Cause"), msg.get("Cause-txt"))
        if not call.channels:
            self._end(call, out)

    def _originateresponse(self, msg: Message, out: list) -> None:
        dial = self._by_action.pop(msg.action_id, None)
        if dial is None:
            return
        if msg.get("Response").lower() != "success":
            self.pending.pop(dial.dial_id, None)
            dial.originate_failed(msg.get("Reason"), out)
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
        dial.advance("leg_a_answered", out)

    # --- what the events mean: to the call's state machine, or its dial's
    def _dial_started(self, src: Chan | None, dest: Chan, caller: str, out: list) -> None:
        call = self.calls[dest.call]
        if src is not None:
            src.last_dialled = dest.uid
        if call.dial is not None:
            call.dial.dialled(dest.uid, out)
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
            call.rings_extension(dest.uid, ext, clean_number(caller) or (origin.caller if origin else ""),
                                 origin.exten if origin else "")
        elif self._is_trunk(dest) and origin_ext and not call.targets:
            call.dials_out(dest.uid, origin_ext, origin.exten if origin else "", origin.caller if origin else "",
                           out, self._stamp)

    def _ringing(self, call: Call, uid: str, out: list) -> None:
        if call.dial is not None:
            call.dial.ringing(uid, out)
        else:
            call.ringing(uid, out, self._stamp)

    def _up(self, call: Call, uid: str, out: list) -> None:
        if call.dial is not None:
            call.dial.up(uid, out)
        else:
            call.up(uid, out, self._stamp)

    def _dial_ended(self, dest: Chan, status: str, out: list) -> None:
        call = self.calls.get(dest.call)
        if call is None:
            return
        if call.dial is not None:
            call.dial.dial_ended(dest.uid, status, out)
        else:
            call.dial_ended(dest.uid, status, out, self._stamp)

    def _in_bridge(self, call: Call, members: set, out: list) -> None:
        if call.dial is not None:
            call.dial.in_bridge(members, out)
        else:
            call.in_bridge(members, out, self._stamp)

    def _end(self, call: Call, out: list) -> None:
        if call.dial is not None:
            call.dial.end(out)
        else:
            call.end(out, self._stamp)
        self._forget(call)

    def _forget(self, call: Call) -> None:
        self.calls.pop(call.key, None)
        for uid in [u for u, c in self.chans.items() if c.call == call.key]:
            del self.chans[uid]
            self._gone[uid] = None
        while len(self._gone) > 5000:
            self._gone.popitem(last=False)
        if call.dial is not None:
            self._by_action.pop(call.dial.action_id, None)
