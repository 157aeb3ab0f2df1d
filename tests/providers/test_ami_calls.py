"""Each AMI transcript yields exactly the events a person reading it writes down.

The expectations below were written from the transcripts, not from the code's output:
- answered-internal: extension 21 ("Kitchen") dials 1986; 1986 rings (DialState RINGING), picks up
  (Newstate Up, DialEnd ANSWER), both hang up with Normal Clearing.
- answered-outbound: despite its name, extension 1986 dials extension 21 (both PJSIP devices in
  from-internal, no trunk channel anywhere): 21 rings, answers, Normal Clearing.
- unanswered-cancel: 1986 dials 21; 21 rings; 1986 hangs up first (HangupRequest on the caller,
  DialEnd CANCEL): the call is missed, the caller hung up.
- originate-local (Asterisk 11, no Linkedid): Originate Local/259 → Local;2 dials SIP/ddddd, which
  rings and answers (leg A), is masqueraded into Local;1, then dials SIP/uuuuu (extension 254),
  which rings, answers and is bridged (Bridge Link); 254 hangs up: the dial ended normally.
- inbound-trunk, ring-group, outbound-trunk, originate-pjsip: our own recordings (see the
  fixtures README) of an outside call to 201, a ring group 201/202/203 where 203 is offline and
  202 answers, 201 dialling out through the trunk, and an Asterisk 13 Async originate.
"""

from pipelines.providers.asterisk.ami import parse_blocks
from pipelines.providers.asterisk.correlator import Correlator, DialUpdate, channel_base, split_channel
from tests.providers.amiserver import transcript


def replay(name: str, correlator: Correlator | None = None) -> list:
    c = correlator or Correlator()
    out = []
    for message in parse_blocks(transcript(name) if name.endswith(".raw") else name):
        out += c.feed(message)
    assert not c.calls, "every call of the transcript ended"
    return out


def calls(outputs) -> list[tuple]:
    return [(o.call_id, o.type, o.direction, o.caller, o.callee, o.extension, o.cause) for o in outputs]


def test_answered_internal():
    assert calls(replay("answered-internal.raw")) == [
        ("1770888534.43", "ringing", "inbound", "21", "1986", "1986", ""),
        ("1770888534.43", "answered", "inbound", "21", "1986", "1986", ""),
        ("1770888534.43", "hangup", "inbound", "21", "1986", "", "Normal Clearing"),
    ]


def test_answered_outbound_is_really_an_internal_call_to_21():
    assert calls(replay("answered-outbound.raw")) == [
        ("1770888509.40", "ringing", "inbound", "1986", "21", "21", ""),
        ("1770888509.40", "answered", "inbound", "1986", "21", "21", ""),
        ("1770888509.40", "hangup", "inbound", "1986", "21", "", "Normal Clearing"),
    ]


def test_unanswered_cancel():
    assert calls(replay("unanswered-cancel.raw")) == [
        ("1770888559.46", "ringing", "inbound", "1986", "21", "21", ""),
        ("1770888559.46", "hangup", "inbound", "1986", "21", "", "caller hung up"),
    ]


def test_originate_local_asterisk_11_follows_both_legs_to_the_end():
    c = Correlator()
    c.expect_originate("d1", "generated_action_id", "Local/259", to="254")
    assert replay("originate-local.raw", c) == [
        DialUpdate("d1", "leg_a_ringing"), DialUpdate("d1", "leg_a_answered"), DialUpdate("d1", "leg_b_ringing"),
        DialUpdate("d1", "bridged"), DialUpdate("d1", "ended")]
    assert not c.ids_honoured  # Asterisk 11 has no ChannelId: tied by the channel's name


def test_originate_local_that_we_did_not_place_pops_nobody():
    assert replay("originate-local.raw") == []  # SIP/ddddd and SIP/uuuuu are not extension devices


def test_inbound_trunk_call():
    assert calls(replay("inbound-trunk.raw")) == [
        ("1770890000.101", "ringing", "inbound", "0722776772", "0722776773", "201", ""),
        ("1770890000.101", "answered", "inbound", "0722776772", "0722776773", "201", ""),
        ("1770890000.101", "hangup", "inbound", "0722776772", "0722776773", "", "Normal Clearing"),
    ]


def test_ring_group_rings_each_reachable_extension_and_answers_once():
    assert calls(replay("ring-group.raw")) == [
        ("1770890100.201", "ringing", "inbound", "0545550123", "0722776773", "201", ""),
        ("1770890100.201", "ringing", "inbound", "0545550123", "0722776773", "202", ""),
        ("1770890100.201", "answered", "inbound", "0545550123", "0722776773", "202", ""),
        ("1770890100.201", "hangup", "inbound", "0545550123", "0722776773", "", "Normal Clearing"),
    ]  # 203 was dialled but unavailable (CHANUNAVAIL): it never rang, so it gets no pop


def test_outbound_trunk_call():
    assert calls(replay("outbound-trunk.raw")) == [
        ("1770890200.301", "ringing", "outbound", "201", "0547654321", "201", ""),
        ("1770890200.301", "answered", "outbound", "201", "0547654321", "201", ""),
        ("1770890200.301", "hangup", "outbound", "201", "0547654321", "", "Normal Clearing"),
    ]


def test_originate_pjsip_is_tied_by_channel_id_and_yields_only_dial_progress():
    c = Correlator()
    c.expect_originate("d2", "generated_action_id", "PJSIP/201", "callpop-generated", to="054-765-4321")
    assert [o.state for o in replay("originate-pjsip.raw", c)] == [
        "leg_a_ringing", "leg_a_answered", "leg_b_ringing", "bridged", "ended"]
    assert c.ids_honoured


def test_internal_calls_can_be_ignored_and_outside_calls_still_pop():
    assert replay("answered-internal.raw", Correlator(internal_calls="ignore")) == []
    assert len(replay("inbound-trunk.raw", Correlator(internal_calls="ignore"))) == 3


def test_leg_b_busy_fails_the_dial_with_the_reason():
    text = transcript("originate-pjsip.raw")
    answered = text.index("Event: DialEnd", text.index("PJSIP/voicetrunk-00000061"))
    busy = text[:answered] + text[answered:].replace("DialStatus: ANSWER", "DialStatus: BUSY", 1)
    cut = busy.index("Event: Newstate\nPrivilege: call,all\nChannel: PJSIP/voicetrunk")  # the trunk never goes Up
    busy = busy[:cut] + busy[busy.index("Event: DialEnd", cut):]
    busy = "\n\n".join(b for b in busy.split("\n\n") if "BridgeEnter" not in b and "BridgeLeave" not in b)
    c = Correlator()
    c.expect_originate("d3", "generated_action_id", "PJSIP/201", "callpop-generated", to="054-765-4321")
    out = replay(busy, c)
    assert [o.state for o in out] == ["leg_a_ringing", "leg_a_answered", "leg_b_ringing", "failed"]
    assert (out[-1].error, out[-1].reason) == ("leg_b_busy", "054-765-4321 is busy")


def test_originate_failures_map_to_clear_reasons():
    for reason, error in (("0", "leg_a_unreachable"), ("1", "leg_a_rejected"), ("3", "leg_a_no_answer"),
                          ("5", "leg_a_busy"), ("8", "leg_a_unreachable"), ("42", "leg_a_unreachable")):
        c = Correlator()
        c.expect_originate("d4", "a4", "PJSIP/201", "callpop-d4")
        out = replay(f"Event: OriginateResponse\nActionID: a4\nResponse: Failure\nChannel: PJSIP/201\n"
                     f"Reason: {reason}\nUniqueid: <null>\n", c)
        assert [(o.state, o.error) for o in out] == [("failed", error)], reason
        assert not c.pending


def test_leg_a_hangup_before_answer_uses_the_cause():
    c = Correlator()
    c.expect_originate("d5", "a5", "PJSIP/201", "callpop-d5")
    out = replay("Event: Newchannel\nChannel: PJSIP/201-00000001\nUniqueid: callpop-d5\nLinkedid: callpop-d5\n\n"
                 "Event: Newstate\nChannel: PJSIP/201-00000001\nChannelState: 5\nUniqueid: callpop-d5\nLinkedid: callpop-d5\n\n"
                 "Event: Hangup\nChannel: PJSIP/201-00000001\nUniqueid: callpop-d5\nLinkedid: callpop-d5\n"
                 "Cause: 17\nCause-txt: User busy\n", c)
    assert [(o.state, o.error) for o in out] == [("leg_a_ringing", ""), ("failed", "leg_a_busy")]


def test_an_originate_whose_channel_never_comes_expires():
    now = [100.0]
    c = Correlator(clock=lambda: now[0])
    c.expect_originate("d6", "a6", "PJSIP/201", "callpop-d6", wait_s=60)
    assert c.expire() == []
    now[0] += 61
    assert [(o.state, o.error) for o in c.expire()] == [("failed", "pbx_no_channel")]


def test_resync_ends_calls_that_ended_while_disconnected_and_keeps_live_ones():
    text = transcript("inbound-trunk.raw")
    ring_part = text[:text.index("Event: Newstate\nPrivilege: call,all\nChannel: PJSIP/201-00000032\nChannelState: 6")]
    c = Correlator()
    out = []
    for m in parse_blocks(ring_part):
        out += c.feed(m)
    assert [o.type for o in out] == ["ringing"]
    assert c.resync({"1770890000.101", "1770890000.102"}) == []  # still ringing
    end = c.resync(set())
    assert [(o.type, o.cause) for o in end] == [("hangup", "ended while callpop was disconnected from Asterisk")]
    assert not c.calls


def test_a_block_with_a_surprise_does_not_disturb_other_calls():
    c = Correlator()
    out = []
    stream = transcript("inbound-trunk.raw").split("\n\n")
    stream.insert(3, "Event: DialBegin\nDestUniqueid: x.1\nDestChannel: ???\n")  # no source, nonsense device
    stream.insert(5, "Event: Hangup\nUniqueid: not-a-channel\n")
    for m in parse_blocks("\n\n".join(stream)):
        out += c.feed(m)
    assert [o.type for o in out] == ["ringing", "answered", "hangup"]


def test_timestamps_from_timestampevents_become_the_event_time():
    c = Correlator()
    text = transcript("inbound-trunk.raw").replace("Event: Newstate\n", "Event: Newstate\nTimestamp: 1770890001.250000\n")
    ringing = [o for o in replay(text, c) if o.type == "ringing"][0]
    assert ringing.at.isoformat() == "2026-02-12T09:53:21.250000"


def test_channel_names():
    assert split_channel("PJSIP/201-0000001b") == ("PJSIP", "201")
    assert split_channel("PJSIP/voice-trunk-00000031") == ("PJSIP", "voice-trunk")
    assert split_channel("Local/259@default-00000000;1<ZOMBIE>") == ("Local", "259@default")
    assert split_channel("SIP/ddddd-00000000<MASQ>") == ("SIP", "ddddd")
    assert channel_base("Local/259") == "local/259@default"
    assert channel_base("Local/0547654321@from-internal/n") == "local/0547654321@from-internal"
    assert channel_base("PJSIP/201") == "pjsip/201"
