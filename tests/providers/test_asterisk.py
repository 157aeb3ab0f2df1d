"""The Asterisk provider end to end: the real hub logs in to a test AMI server over TCP, the
server plays recorded transcripts, and agents' sockets get the pops, answers and dials."""

import threading

import pytest

from tests.providers.amiserver import AmiServer, transcript
from tests.support.hub import Agent, api, wait_rows

AGENTS = """id,name,token,extension,mobile,home,role
noa,Noa Levi,tok-noa,201,054-812-4567,,agent
avi,Avi Cohen,tok-avi,202,,,agent
sarah,Sarah Miller,tok-sarah,203,,,agent
kitchen,Kitchen phone,tok-kitchen,21,,,agent
martin,Martin,tok-martin,1986,,,agent
xivo,XiVO user,tok-xivo,259,,,agent
boss,Dana Katz,tok-boss,205,,,supervisor
"""


@pytest.fixture
def ami():
    with AmiServer() as server:
        yield server


@pytest.fixture
def asterisk_hub(start_hub, ami, tmp_path):
    agents = tmp_path / "agents.csv"
    agents.write_text(AGENTS)

    def start(**overrides):
        before = ami.logins
        hub = start_hub(provider="asterisk", ami_port=ami.port, ami_secret="s3cret", agents_csv=str(agents),
                        ami_reconnect_max_s=0.5, **overrides)
        ami.wait_logins(before + 1)
        return hub
    return start


def collect(agent, n, timeout=5.0):
    """The next n pop and call messages in the order they came: a replay runs faster than the
    CRM answers, so a call may be answered before its pop is out (which is still sent)."""
    out = [agent.recv(where=lambda m: m["type"] in ("pop", "call"), timeout=timeout) for _ in range(n)]
    pops = [m for m in out if m["type"] == "pop"]
    assert len(pops) == 1, out
    return pops[0], [m for m in out if m["type"] == "call"]


def until_hangup(text):
    """A transcript cut where the call starts ending. Replays run in microseconds but a phone rings
    for seconds, and the hub rightly sends no pop for a call already over: tests play the ringing
    part, take the pops, then play the rest."""
    cut = text.index("Event: HangupRequest")
    return text[:cut], text[cut:]


def before(text, marker):
    """A transcript cut at the start of the event that holds ``marker`` (e.g. a phone answering)."""
    cut = text.rindex("Event: ", 0, text.index(marker))
    return text[:cut], text[cut:]


def until(predicate, timeout=5.0):
    event = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return True
        event.wait(0.02)
    raise AssertionError("condition not met in time")


def test_inbound_trunk_call_pops_john_doe_then_answers_and_ends(asterisk_hub, ami):
    hub = asterisk_hub()
    noa = Agent(hub, "tok-noa")
    ringing, rest = until_hangup(transcript("inbound-trunk.raw"))
    ami.play(ringing)
    pop, calls = collect(noa, 2)
    assert (pop["call_id"], pop["name"], pop["phone"], pop["did"], pop["extension"]) == \
        ("1770890000.101", "John Doe", "072-277-6772", "0722776773", "201")
    ami.play(rest)
    assert [c["state"] for c in calls + [noa.recv("call")]] == ["answered", "ended"]
    row = wait_rows(hub, "SELECT * FROM calls WHERE call_id = ? AND status = 'ended'", ["1770890000.101"]).iloc[0]
    assert (row.provider, row.answered_by, row.agent_id, row.hangup_cause) == ("asterisk", "201", "noa", "Normal Clearing")
    status = api(hub, "GET", "/api/status", "tok-boss").json()["provider"]
    assert status["name"] == "asterisk" and status["state"] == "connected"
    assert "Asterisk Call Manager/5.0.1" in status["detail"]


def test_ring_group_pops_each_ringing_phone_and_clears_the_others(asterisk_hub, ami):
    hub = asterisk_hub()
    noa, avi, sarah = Agent(hub, "tok-noa"), Agent(hub, "tok-avi"), Agent(hub, "tok-sarah")
    answer, rest = until_hangup(transcript("ring-group.raw"))
    ringing, answer = before(answer, "ChannelStateDesc: Up")  # 202 picks up
    ami.play(ringing)
    noa_pop, avi_pop = noa.recv("pop"), avi.recv("pop")
    assert noa_pop["call_id"] == avi_pop["call_id"] == "1770890100.201"
    ami.play(answer)
    assert noa.recv("call") == {"type": "call", "call_id": "1770890100.201", "state": "answered_elsewhere", "by": "202"}
    assert avi.recv("call")["state"] == "answered"
    ami.play(rest)
    assert noa.recv("call")["state"] == avi.recv("call")["state"] == "ended"
    sarah.nothing("pop")  # 203 was offline: never rang
    lookups = wait_rows(hub, "SELECT * FROM lookups WHERE call_id = ?", ["1770890100.201"])
    assert len(lookups) == 1  # one lookup for the whole group


@pytest.mark.parametrize("name, agent, caller", [
    ("answered-internal.raw", "tok-martin", "21"),
    ("answered-outbound.raw", "tok-kitchen", "1986"),
    ("unanswered-cancel.raw", "tok-kitchen", "1986"),
])
def test_every_recorded_transcript_pops_the_extension_it_rings(asterisk_hub, ami, name, agent, caller):
    hub = asterisk_hub()
    rung = Agent(hub, agent)
    ringing, rest = until_hangup(transcript(name))
    ami.play(ringing)
    pop, calls = collect(rung, 1 if name.startswith("unanswered") else 2)
    assert pop["raw"] == caller and pop["status"] == "not_found"
    ami.play(rest)
    calls.append(rung.recv("call"))
    assert [c["state"] for c in calls] == (["missed"] if name.startswith("unanswered") else ["answered", "ended"])


def test_click_to_call_originates_and_follows_the_dial_to_the_end(asterisk_hub, ami):
    ami.originate_script = transcript("originate-pjsip.raw")
    hub = asterisk_hub()
    noa = Agent(hub, "tok-noa")
    r = api(hub, "POST", "/api/dial", "tok-noa", json={"to": "054-765-4321"})
    assert r.status_code == 202, r.text
    dial_id = r.json()["dial_id"]
    states = [noa.recv("dial")["state"] for _ in range(6)]
    assert states == ["requested", "leg_a_ringing", "leg_a_answered", "leg_b_ringing", "bridged", "ended"]
    noa.nothing("pop")  # the agent's own phone ringing for a click-to-call is not a call to pop
    sent = [a for a in ami.actions if a.get("Action") == "Originate"][-1]
    assert {k: sent.get(k) for k in ("Channel", "Context", "Exten", "Priority", "Timeout", "Async", "ChannelId")} == {
        "Channel": "PJSIP/201", "Context": "from-internal", "Exten": "0547654321", "Priority": "1",
        "Timeout": "30000", "Async": "true", "ChannelId": f"callpop-{dial_id}"}
    assert sent.get("CallerID") == '"054-765-4321" <201>'
    row = wait_rows(hub, "SELECT * FROM dials WHERE dial_id = ? AND ended_at IS NOT NULL", [dial_id]).iloc[0]
    assert (row.outcome, row.provider) == ("bridged", "asterisk")
    assert row.leg_a_answered_at <= row.bridged_at <= row.ended_at
    assert hub.hub.store.query("SELECT count(*) AS n FROM calls").n[0] == 0


def test_asterisk_11_local_originate_is_followed_by_channel_name(asterisk_hub, ami):
    ami.originate_script = transcript("originate-local.raw")
    hub = asterisk_hub(ami_leg_a_extension="Local/{extension}")
    xivo = Agent(hub, "tok-xivo")
    dial_id = api(hub, "POST", "/api/dial", "tok-xivo", json={"to": "0547654321"}).json()["dial_id"]
    states = [xivo.recv("dial")["state"] for _ in range(6)]
    assert states == ["requested", "leg_a_ringing", "leg_a_answered", "leg_b_ringing", "bridged", "ended"]
    assert wait_rows(hub, "SELECT outcome FROM dials WHERE dial_id = ? AND ended_at IS NOT NULL",
                     [dial_id]).outcome[0] == "bridged"


def test_a_refused_originate_fails_the_dial_with_asterisk_s_reason(asterisk_hub, ami):
    ami.originate_error = "Extension does not exist."
    hub = asterisk_hub()
    noa = Agent(hub, "tok-noa")
    api(hub, "POST", "/api/dial", "tok-noa", json={"to": "0547654321", "leg_a": "mobile"})
    assert noa.recv("dial")["state"] == "requested"
    failed = noa.recv("dial")
    assert (failed["state"], failed["error"]) == ("failed", "pbx_refused")
    assert "Extension does not exist." in failed["reason"]
    sent = [a for a in ami.actions if a.get("Action") == "Originate"][-1]
    assert sent.get("Channel") == "Local/0548124567@from-internal"  # the agent's mobile, dialable from IL


def test_a_malformed_block_is_recorded_and_the_calls_around_it_go_on(asterisk_hub, ami):
    hub = asterisk_hub()
    noa = Agent(hub, "tok-noa")
    ringing, rest = until_hangup(transcript("inbound-trunk.raw"))
    cut = ringing.index("Event: Newstate")
    ami.play(ringing[:cut])
    ami.send_raw(b"this is not AMI\r\nneither: is this line\r\nnor this\r\n\r\n")
    ami.play(ringing[cut:])
    pop, calls = collect(noa, 2)
    ami.play(rest)
    assert pop["name"] == "John Doe" and [c["state"] for c in calls + [noa.recv("call")]] == ["answered", "ended"]
    rejects = wait_rows(hub, "SELECT * FROM rejects WHERE source = 'asterisk'")
    assert rejects.reason.tolist() == ["malformed_ami"] and "not AMI" in rejects.detail[0]
    assert hub.hub.provider.status()["detail"].endswith("1 malformed blocks")


def test_reconnects_after_a_drop_and_ends_calls_that_ended_meanwhile(asterisk_hub, ami):
    hub = asterisk_hub()
    noa = Agent(hub, "tok-noa")
    text = transcript("inbound-trunk.raw")
    ami.play(text[:text.index("Event: Newstate\nPrivilege: call,all\nChannel: PJSIP/201-00000032\nChannelState: 6")])
    assert noa.recv("pop")["call_id"] == "1770890000.101"
    ami.drop()
    ami.wait_logins(2)  # backoff, then a new login
    assert noa.recv("call") == {"type": "call", "call_id": "1770890000.101", "state": "missed"}
    assert [a.get("Action") for a in ami.actions].count("CoreShowChannels") == 1
    until(lambda: hub.hub.provider.status()["state"] == "connected")
    row = wait_rows(hub, "SELECT hangup_cause FROM calls WHERE status = 'missed'").iloc[0]
    assert "disconnected" in row.hangup_cause


def test_a_wrong_secret_leaves_the_provider_down_with_the_reason(start_hub, ami):
    hub = start_hub(provider="asterisk", ami_port=ami.port, ami_secret="wrong")
    until(lambda: hub.hub.provider.status()["state"] == "down")
    assert "login refused" in hub.hub.provider.status()["detail"]
    noa = Agent(hub, "demo-token-noa")
    api(hub, "POST", "/api/dial", "demo-token-noa", json={"to": "0547654321"})
    noa.recv("dial")
    failed = noa.recv("dial")
    assert (failed["state"], failed["error"]) == ("failed", "pbx_unavailable")


def test_no_asterisk_at_all_is_down_and_retrying(start_hub):
    import socket
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hub = start_hub(provider="asterisk", ami_port=port, ami_reconnect_max_s=0.3)
    until(lambda: hub.hub.provider.status()["state"] == "down")
    assert "retrying in" in hub.hub.provider.status()["detail"]


def test_a_silent_asterisk_is_noticed_by_ping_and_reconnected(asterisk_hub, ami):
    hub = asterisk_hub(ami_ping_s=0.2, ami_timeout_s=0.3)
    ami.ignore.add("ping")  # the TCP connection stays open but nothing answers: a half-open link
    ami.wait_logins(2)
    assert ami.connections >= 2
    ami.ignore.clear()
    until(lambda: hub.hub.provider.status()["state"] == "connected")


def test_an_originate_asterisk_never_answers_fails_within_the_deadline(asterisk_hub, ami):
    ami.ignore.add("originate")
    hub = asterisk_hub(ami_timeout_s=0.5)
    noa = Agent(hub, "tok-noa")
    api(hub, "POST", "/api/dial", "tok-noa", json={"to": "0547654321"})
    assert noa.recv("dial")["state"] == "requested"
    failed = noa.recv("dial", timeout=3)
    assert (failed["state"], failed["error"]) == ("failed", "pbx_unavailable")
    assert not hub.hub.provider.correlator.pending


def test_hanging_up_a_click_to_call_sends_hangup_for_its_channels(asterisk_hub, ami):
    connected, _ = until_hangup(transcript("originate-pjsip.raw"))
    ami.originate_script = connected  # bridged; the hang-up is ours to ask
    hub = asterisk_hub()
    noa = Agent(hub, "tok-noa")
    dial_id = api(hub, "POST", "/api/dial", "tok-noa", json={"to": "054-765-4321"}).json()["dial_id"]
    noa.recv("dial", where=lambda m: m["state"] == "bridged")
    assert api(hub, "POST", f"/api/dials/{dial_id}/hangup", "tok-avi").status_code == 404
    r = api(hub, "POST", f"/api/dials/{dial_id}/hangup", "tok-noa")
    assert r.status_code == 200 and r.json()["state"] == "ended" and r.json()["ended_at"], r.text
    hangups = [a.get("Channel") for a in ami.actions if a.get("Action") == "Hangup"]
    assert hangups and hangups[0] == "PJSIP/201-00000060"
    assert noa.recv("dial")["state"] == "ended"


def test_a_dial_asterisk_has_not_reported_yet_cannot_be_hung_up(asterisk_hub, ami):
    hub = asterisk_hub()  # the Originate is queued, no channel comes
    dial_id = api(hub, "POST", "/api/dial", "tok-noa", json={"to": "054-765-4321"}).json()["dial_id"]
    r = api(hub, "POST", f"/api/dials/{dial_id}/hangup", "tok-noa")
    assert r.status_code == 409 and r.json()["error"] == "hangup_unsupported" and "not reported" in r.json()["message"]
