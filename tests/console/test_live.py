"""Live page and sidebar, against the real hub."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from console.hubclient import HubClient, HubError
from console.views import live
from tests.console.conftest import open_console, rendered
from tests.support.crm import FakeCrm
from tests.support.hub import TOKENS, post_event


def ring(hub, call_id: str, caller: str, extension: str) -> None:
    r = post_event(hub, call_id=call_id, type="ringing", caller=caller, callee="0722776773", extension=extension)
    assert r.status_code == 202, r.text


def wait_live(hub, token: str, n: int, pops: int = 0) -> list[dict]:
    """Until the hub lists n live calls and their lookups have finished (the pops went out)."""
    client = HubClient(hub.url, TOKENS[token])
    deadline = time.monotonic() + 15
    while True:
        calls = client.live_calls()
        done = len(client.recent_pops()) >= (pops or n)
        if (len(calls) >= n and done) or time.monotonic() > deadline:
            return calls
        time.sleep(0.05)


def test_live_page_lists_calls_and_pops_for_a_supervisor(hub, console):
    ring(hub, "c-john", "0722776772", "201")  # John Doe, Voicenter (sample CRM)
    ring(hub, "c-unknown", "0527654000", "202")
    post_event(hub, call_id="c-unknown", type="answered", caller="0527654000", callee="0722776773", extension="202")
    wait_live(hub, "dana", 2)

    at = console("live", token="dana")

    calls, pops = at.dataframe[0].value, at.dataframe[1].value
    assert list(calls.columns) == live.CALL_COLUMNS
    john = calls[calls["Caller"] == "072-277-6772"].iloc[0]
    assert (john["Name"], john["Company"], john["Extension"], john["State"], john["Lookup"]) == \
        ("John Doe", "Voicenter", "201", "ringing", "found")
    assert john["CRM page"].startswith(hub.url + "/crm/contacts/")
    other = calls[calls["Caller"] == "052-765-4000"].iloc[0]
    assert (other["State"], other["Agent"], other["Lookup"]) == ("in progress", "Avi Cohen", "not found")
    assert set(pops["Caller"]) == {"072-277-6772", "052-765-4000"}
    assert pops["Latency (ms)"].str.fullmatch(r"\d+").all()
    assert "1 ringing · 1 in progress" in at.subheader[0].value
    # The sidebar: connected, agents online, calls ringing now; the agent's name, never the token.
    metrics = {m.label: m.value for m in at.sidebar.get("metric")}
    assert metrics["Ringing now"] == "1"
    assert "Dana Katz" in rendered(at)
    assert not at.toast  # nothing rings at Dana's extension (205)


def test_a_call_ringing_for_me_toasts_once_with_a_link_to_its_crm_page(hub, console):
    at = console("live", token="noa")
    assert "No calls ringing" in at.info[0].value
    ring(hub, "c1", "0722776772", "201")
    wait_live(hub, "noa", 1)
    at.run()  # what the fragment's next tick does
    (toast,) = at.toast
    assert "John Doe" in toast.value and f"]({hub.url}/crm/contacts/" in toast.value
    at.run()
    assert not at.toast  # one toast per call


def test_the_fragment_function_sees_a_new_call(hub, monkeypatch):
    """run_every does not tick under AppTest: call what the fragment runs on each tick."""
    client = HubClient(hub.url, TOKENS["avi"])
    assert live.snapshot(client) == ([], [])
    ring(hub, "c2", "0527654000", "202")
    wait_live(hub, "avi", 1)
    calls, pops = live.snapshot(client)
    frame = live.calls_frame(calls)
    assert frame.loc[0, "Caller"] == "052-765-4000" and frame.loc[0, "State"] == "ringing"
    assert live.pops_frame(pops).loc[0, "Lookup"] == "not found"
    assert live.rings_for({"extension": "202"}, calls) == calls
    assert live.rings_for({"extension": "201"}, calls) == []

    def panel():
        import streamlit as st

        from console.views import live
        st.session_state.setdefault("agent", {"extension": "202"})
        live.live_panel()

    monkeypatch.setenv("CALLPOP_HUB_URL", hub.url)
    at = AppTest.from_function(panel, default_timeout=30)
    at.session_state["token"] = TOKENS["avi"]
    at.run()
    assert not at.exception
    assert at.dataframe[0].value.loc[0, "Caller"] == "052-765-4000"
    assert len(at.toast) == 1


def test_crm_strings_are_text_never_markup(start_hub, monkeypatch):
    evil = "**Eve** <b>x</b> [click](javascript:alert(1)) :red[boo]"
    with FakeCrm() as crm:
        crm.respond("0527654000", {"STATUS": "OK", "URL": "https://crm.example.com/c?id=(1)",
                                   "CLIENTNAME": evil, "TOTAL": "1", "COMPANY": "<script>x</script>"})
        hub = start_hub(crm_url=crm.url)
        monkeypatch.setenv("CALLPOP_HUB_URL", hub.url)
        ring(hub, "c3", "0527654000", "201")
        wait_live(hub, "noa", 1)
        at = open_console(token="noa")  # Live is the default page; its first run toasts
    assert at.dataframe[0].value.loc[0, "Name"] == evil  # in the grid: plain text cells
    text = at.toast[0].value
    assert "\\*\\*Eve\\*\\*" in text and "\\<b\\>" in text and "\\[click\\]" in text and "\\:red\\[boo\\]" in text
    assert "](https://crm.example.com/c?id=%281%29)" in text


def test_sign_in_with_a_token_shows_the_name_never_the_token(console):
    at = console(token=None)
    assert "Sign in" in at.info[0].value
    at.text_input(key="token_input").input("not-a-token")
    at.sidebar.button[0].click().run()
    assert "refused" in at.sidebar.error[0].value
    assert "token" not in at.session_state

    at.text_input(key="token_input").input(TOKENS["sarah"])
    at.sidebar.button[0].click().run()
    assert not at.exception
    assert at.session_state["agent"]["name"] == "Sarah Miller"
    page = rendered(at)
    assert "Sarah Miller" in page and TOKENS["sarah"] not in page
    assert not at.sidebar.text_input  # signed in: no token field, and nothing keeps what was typed
    assert not at.session_state.get("token_input")
    at.button(key="sign_out").click().run()
    assert "token" not in at.session_state and "Sign in" in at.info[0].value


def test_hub_not_reachable_says_how_to_start_it(monkeypatch):
    with socket_nobody_listens() as url:
        monkeypatch.setenv("CALLPOP_HUB_URL", url)
        for token in (None, "dana"):
            at = open_console(token=token)
            assert at.sidebar.error[0].value == "Not reachable"
            assert any("make run" in m.value for m in at.markdown), [m.value for m in at.markdown]


class socket_nobody_listens:
    """A local URL where nothing listens (a port bound, never listened on, so it stays free)."""

    def __enter__(self) -> str:
        import socket
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def __exit__(self, *exc) -> None:
        self.sock.close()


def test_every_hub_call_has_a_deadline():
    """A hub that accepts the connection but never answers: the console gives up, it does not hang."""
    import socket
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = HubClient(f"http://127.0.0.1:{server.getsockname()[1]}", "x", timeout=0.3)
    started = time.monotonic()
    with pytest.raises(HubError) as e:
        client.status()
    server.close()
    assert time.monotonic() - started < 3
    assert e.value.kind == "unreachable" and "did not answer" in e.value.message

