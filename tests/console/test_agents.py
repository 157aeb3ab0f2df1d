"""The Agents page (supervisors only) against a real hub with its own agents file: adding an agent
shows its token once, a new token and a sign-in code likewise; the console's sign-in takes a code."""

from __future__ import annotations

import pytest

from console import signins
from console.views import agents as agents_page
from tests.console.conftest import open_console, rendered
from tests.support import ROOT
from tests.support.hub import TOKENS, api


@pytest.fixture
def own_hub(start_hub, tmp_path, monkeypatch):
    agents = tmp_path / "agents.csv"
    agents.write_text((ROOT / "data" / "agents.csv").read_text(encoding="utf-8"), encoding="utf-8")
    hub = start_hub(agents_csv=str(agents), signin_try_every_s=0.01)
    monkeypatch.setenv("CALLPOP_HUB_URL", hub.url)
    return hub


def test_a_supervisor_sees_the_agents_page_an_agent_does_not(own_hub):
    at = open_console("agents", token="dana")
    assert [t.value for t in at.title] == ["Agents"]
    table = at.dataframe[0].value
    assert list(table.Id) == ["noa", "avi", "sarah", "james", "dana"] and "demo-token" not in table.to_csv()
    agent = open_console(token="noa")
    assert agent.session_state["agent"]["role"] == "agent"
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        agent.switch_page("views/agents.py")  # not in an agent's navigation


def test_the_page_refuses_an_agent_even_when_opened_directly(own_hub, monkeypatch):
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(ROOT / "console" / "views" / "agents.py"), default_timeout=30)
    at.session_state["token"] = TOKENS["noa"]
    at.run()
    assert not at.exception and "for supervisors" in at.warning[0].value
    assert not at.dataframe


def test_adding_an_agent_shows_its_token_once(own_hub):
    at = open_console("agents", token="dana")
    at.text_input(key="add_id").input("maya")
    at.text_input(key="add_name").input("Maya Ben")
    at.text_input(key="add_ext").input("206")
    next(b for b in at.button if b.label == "Add").click().run()
    assert not at.exception, [e.value for e in at.exception]
    token = at.code[0].value
    assert api(own_hub, "GET", "/api/me", token).json()["id"] == "maya"
    assert "maya" in list(at.dataframe[0].value.Id) and at.selectbox(key="agents_select").value == "maya"
    next(b for b in at.button if b.label == "Done: hide it").click().run()
    assert token not in rendered(at) and not at.code


def test_disable_new_token_and_a_sign_in_code(own_hub):
    at = open_console("agents", token="dana")
    at.selectbox(key="agents_select").select("avi").run()
    at.button(key="disable_avi").click().run()
    assert "is disabled" in at.success[0].value
    assert api(own_hub, "GET", "/api/me", TOKENS["avi"]).status_code == 401
    at.button(key="enable_avi").click().run()
    at.button(key="token_avi").click().run()
    token = at.code[0].value
    assert api(own_hub, "GET", "/api/me", token).json()["id"] == "avi"
    assert api(own_hub, "GET", "/api/me", TOKENS["avi"]).status_code == 401
    at.button(key="code_avi").click().run()
    code, link = at.code[0].value, at.code[1].value
    assert signins.code_in(code) == code and link.endswith("#code=" + code)
    actions = list(at.dataframe[1].value.Action)
    assert actions[:4] == ["signin_code", "token", "enable", "disable"]
    # The console's own sign-in takes the code (here as the link) in place of a token.
    agent = open_console(token=None)
    agent.text_input(key="token_input").input(link)
    next(b for b in agent.button if b.label == "Sign in").click().run()
    assert not agent.exception and agent.session_state["agent"]["id"] == "avi"
    assert agent.session_state["token"] not in (token, code)
    again = open_console(token=None)
    again.text_input(key="token_input").input(code)
    next(b for b in again.button if b.label == "Sign in").click().run()
    assert "used already" in again.error[0].value


def test_an_edit_sends_only_what_changed(own_hub):
    at = open_console("agents", token="dana")
    at.selectbox(key="agents_select").select("noa").run()
    at.text_input(key="ext_noa").input("299")
    next(b for b in at.button if b.label == "Save changes").click().run()
    assert "Saved Noa Levi." in at.success[0].value
    changes = api(own_hub, "GET", "/api/agents/changes", TOKENS["dana"]).json()["changes"]
    assert changes[0]["action"] == "edit" and changes[0]["detail"] == {"extension": ["201", "299"]}
    assert agents_page.changed({"name": "Noa Levi", "extension": " 299 "}, {"name": "Noa Levi", "extension": "201"}) \
        == {"extension": "299"}


def test_codes_are_found_in_what_was_typed():
    assert signins.code_in(" abcd-efgh ") == "ABCD-EFGH"
    assert signins.code_in("https://hub.example.com/signin#code=WXYZ-2345") == "WXYZ-2345"
    for token in ("demo-token-noa", "a" * 43, "", "ABCD-EFGH-IJ"):
        assert signins.code_in(token) is None
