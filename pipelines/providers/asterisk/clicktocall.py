"""A click-to-call this hub originated, as its AMI events tell it, pure: one state machine per
dial (leg A ringing and answered, leg B ringing, bridged, ended, or failed with a reason code).
The correlator ties channels to the dial and calls these methods; they append ``DialUpdate``s."""

from __future__ import annotations

import dataclasses

DIAL_ORDER = ("requested", "leg_a_ringing", "leg_a_answered", "leg_b_ringing", "bridged", "ended")

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


@dataclasses.dataclass(frozen=True)
class DialUpdate:
    """Progress of a click-to-call, for ``ProviderHost.dial_progress``."""
    dial_id: str
    state: str
    error: str = ""
    reason: str = ""


@dataclasses.dataclass
class Dial:
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

    def join(self, uid: str) -> None:
        """A new channel of the dial's call."""
        if uid in self.leg_a or uid in self.leg_b:
            return
        # Until the agent answers, every new channel is on their side (Local halves, the phone,
        # follow-me); after that, what the dialplan dials is the number asked for.
        if DIAL_ORDER.index(self.state) < DIAL_ORDER.index("leg_a_answered"):
            self.leg_a.add(uid)
        else:
            self.leg_b.add(uid)

    def dialled(self, uid: str, out: list) -> None:
        """The dialplan dialled channel ``uid``."""
        self.join(uid)
        if uid in self.leg_b:
            self.advance("leg_b_ringing", out)

    def ringing(self, uid: str, out: list) -> None:
        leg = "leg_a_ringing" if uid in self.leg_a else "leg_b_ringing" if uid in self.leg_b else ""
        if leg:
            self.advance(leg, out)

    def up(self, uid: str, out: list) -> None:
        if uid in self.leg_a:
            self.advance("leg_a_answered", out)
        elif uid in self.leg_b:
            self.b_answered = True

    def dial_ended(self, uid: str, status: str, out: list) -> None:
        if uid in self.leg_b:
            if status == "ANSWER":
                self.b_answered = True
            else:
                self.b_status = status
        elif uid in self.leg_a and status == "ANSWER":
            self.advance("leg_a_answered", out)

    def in_bridge(self, members: set, out: list) -> None:
        if members & self.leg_b and members & self.leg_a:
            self.b_answered = True
            self.advance("bridged", out)

    def hung_up(self, uid: str, cause: str, cause_txt: str) -> None:
        if uid in self.leg_a and not self.a_cause:
            self.a_cause, self.a_cause_txt = cause, cause_txt

    def originate_failed(self, reason_code: str, out: list) -> None:
        error, reason = ORIGINATE_FAILURES.get(reason_code, (
            "leg_a_unreachable", f"your phone could not be called (Asterisk reason {reason_code or '?'})"))
        self.final("failed", error, reason, out)

    def advance(self, state: str, out: list) -> None:
        if self.state in ("ended", "failed") or DIAL_ORDER.index(state) <= DIAL_ORDER.index(self.state):
            return
        self.state = state
        out.append(DialUpdate(self.dial_id, state))

    def final(self, state: str, error: str, reason: str, out: list) -> None:
        if self.state in ("ended", "failed"):
            return
        self.state = state
        out.append(DialUpdate(self.dial_id, state, error, reason))

    def end(self, out: list) -> None:
        """The dial's last channel is gone: how did it go?"""
        if self.state in ("ended", "failed"):
            return
        if self.b_answered:  # bridged even if the bridge events were filtered out
            self.advance("bridged", out)
        if self.state == "bridged":
            self.advance("ended", out)
            return
        if DIAL_ORDER.index(self.state) >= DIAL_ORDER.index("leg_a_answered"):
            if self.b_status or self.leg_b:
                error, reason = LEG_B_STATUSES.get(self.b_status, ("leg_b_failed", "the call to {to} failed"))
            else:
                error, reason = "leg_b_not_dialled", "the phone system did not call {to} (check CALLPOP_AMI_CONTEXT)"
            self.final("failed", error, reason.format(to=self.to), out)
            return
        error, reason = LEG_A_CAUSES.get(self.a_cause, (
            "leg_a_failed", f"your phone could not be called ({self.a_cause_txt or 'no reason given'})"))
        self.final("failed", error, reason, out)
