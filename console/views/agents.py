"""Agents (supervisors): the team as the hub has it, add and edit agents, disable them, issue a
new token, or make a one-time sign-in code for the agent's extension.

Everything goes through the hub's ``/api/agents`` routes (pipelines/agent_admin.py), which write
the agents file and record each change. A token or a code is shown once, right after it was
made, and kept only in this tab's session until the supervisor dismisses it.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from console import session
from console.hubclient import HubError

ROLES = ("agent", "supervisor")
EDITABLE = ("name", "extension", "mobile", "home", "role", "voicenter_user")
COLUMNS = ["Id", "Name", "Extension", "Mobile", "Home", "Role", "Voicenter user", "State", "Tokens", "Sockets"]
SHOWN_ONCE = "agents_shown_once"  # session key: what to show once (a token or a code), then forget


def agents_frame(agents: list[dict]) -> pd.DataFrame:
    rows = [{"Id": a["id"], "Name": a["name"], "Extension": a["extension"], "Mobile": a["mobile"], "Home": a["home"],
             "Role": a["role"], "Voicenter user": a.get("voicenter_user", ""),
             "State": "disabled" if a.get("disabled") else "active", "Tokens": a.get("tokens", 0),
             "Sockets": a.get("sockets", 0)} for a in agents]
    return pd.DataFrame(rows, columns=COLUMNS)


def changes_frame(changes: list[dict], tz: str | None) -> pd.DataFrame:
    rows = [{"At": session.clock_time(c["changed_at"], tz), "Day": c["changed_at"][:10], "By": c["actor"],
             "Action": c["action"], "Agent": c["agent_id"],
             "What": "; ".join(f"{k}: {v[0] or '-'} → {v[1] or '-'}" if isinstance(v, list) else f"{k}: {v}"
                               for k, v in (c.get("detail") or {}).items())} for c in changes]
    return pd.DataFrame(rows, columns=["Day", "At", "By", "Action", "Agent", "What"])


def changed(fields: dict, agent: dict) -> dict:
    """Only the fields the form changed (an edit sends nothing else)."""
    return {k: v.strip() for k, v in fields.items() if v.strip() != str(agent.get(k) or "")}


def act(what: str, call) -> dict | None:
    """Run one hub call; its refusal said on the page."""
    try:
        return call()
    except HubError as e:
        st.session_state["agents_problem"] = f"{what}: {e.message}"
        return None


def show_once() -> None:
    shown = st.session_state.get(SHOWN_ONCE)
    if not shown:
        return
    with st.container(border=True):
        if shown["kind"] == "token":
            st.warning(f"The token for **{session.md_escape(shown['agent'])}**, shown this once: the hub keeps only "
                       "its digest. Give it to the agent; the old token has stopped working.")
            st.code(shown["value"], language=None)
        else:
            minutes = max(1, round(shown.get("expires_in_s", 600) / 60))
            st.info(f"One-time sign-in code for **{session.md_escape(shown['agent'])}**, valid {minutes} min, for "
                    "one sign-in: the agent enters it in the extension's options (Sign-in code) or the console's "
                    "sign-in, or pastes the link.")
            st.code(shown["value"], language=None)
            st.code(shown["link"], language=None)
        if st.button("Done: hide it", key="agents_hide"):
            st.session_state.pop(SHOWN_ONCE, None)
            st.rerun()


def edit_panel(c, agent: dict) -> None:
    aid = agent["id"]
    with st.form(f"edit_{aid}", border=True):
        st.markdown(f"**Edit {session.md_escape(agent['name'])}** ({session.md_escape(aid)})")
        left, right = st.columns(2)
        fields = {"name": left.text_input("Name", agent["name"], key=f"name_{aid}"),
                  "extension": right.text_input("Extension", agent["extension"], key=f"ext_{aid}"),
                  "mobile": left.text_input("Mobile", agent["mobile"], key=f"mobile_{aid}"),
                  "home": right.text_input("Home phone", agent["home"], key=f"home_{aid}"),
                  "voicenter_user": left.text_input("Voicenter user", agent.get("voicenter_user", ""),
                                                    key=f"vc_{aid}")}
        fields["role"] = right.selectbox("Role", ROLES, index=ROLES.index(agent["role"]), key=f"role_{aid}")
        if st.form_submit_button("Save changes"):
            if todo := changed(fields, agent):
                if act("Not saved", lambda: c.edit_agent(aid, todo)):
                    st.session_state["agents_done"] = f"Saved {agent['name']}."
            st.rerun()
    a, b, d = st.columns(3)
    if agent.get("disabled"):
        if a.button("Enable", key=f"enable_{aid}", icon=":material/person_check:"):
            if act("Not enabled", lambda: c.set_agent_disabled(aid, False)):
                st.session_state["agents_done"] = f"{agent['name']} may sign in again."
            st.rerun()
    elif a.button("Disable", key=f"disable_{aid}", icon=":material/person_off:",
                  help="Its sockets close at once; its tokens stop working until it is enabled again."):
        if done := act("Not disabled", lambda: c.set_agent_disabled(aid, True)):
            st.session_state["agents_done"] = f"{agent['name']} is disabled ({done['sockets_closed']} socket(s) closed)."
        st.rerun()
    if b.button("New token", key=f"token_{aid}", icon=":material/key:",
                help="Replaces every token of the agent: its browsers are signed out."):
        if done := act("No token", lambda: c.new_token(aid)):
            st.session_state[SHOWN_ONCE] = {"kind": "token", "agent": agent["name"], "value": done["token"]}
        st.rerun()
    if d.button("Sign-in code", key=f"code_{aid}", icon=":material/pin:", disabled=bool(agent.get("disabled")),
                help="A one-time code the agent enters instead of a token (adds a token for that browser)."):
        if done := act("No code", lambda: c.signin_code(aid)):
            st.session_state[SHOWN_ONCE] = {"kind": "code", "agent": agent["name"], "value": done["code"],
                                            "link": done["link"], "expires_in_s": done["expires_in_s"]}
        st.rerun()


def add_panel(c) -> None:
    with st.expander("Add an agent", icon=":material/person_add:"):
        with st.form("add_agent", clear_on_submit=True, border=False):
            left, right = st.columns(2)
            fields = {"id": left.text_input("Id (letters, digits, . _ -)", key="add_id"),
                      "name": right.text_input("Name", key="add_name"),
                      "extension": left.text_input("Extension", key="add_ext"),
                      "mobile": right.text_input("Mobile", key="add_mobile"),
                      "home": left.text_input("Home phone", key="add_home"),
                      "voicenter_user": right.text_input("Voicenter user", key="add_vc")}
            fields["role"] = left.selectbox("Role", ROLES, key="add_role")
            if st.form_submit_button("Add"):
                body = {k: v.strip() for k, v in fields.items() if v.strip()}
                if done := act("Not added", lambda: c.add_agent(body)):
                    st.session_state[SHOWN_ONCE] = {"kind": "token", "agent": done["agent"]["name"],
                                                    "value": done["token"]}
                    st.session_state["agents_next"] = done["agent"]["id"]  # picked on the next run
                st.rerun()


def main() -> None:
    st.title("Agents")
    me = session.require_agent()
    if me is None:
        return
    if me.get("role") != "supervisor":
        st.warning("The Agents page is for supervisors.")
        return
    c = session.client()
    try:
        agents = c.agents()
    except HubError as e:
        session.show_error(e)
        return
    if problem := st.session_state.pop("agents_problem", None):
        st.error(problem)
    if done := st.session_state.pop("agents_done", None):
        st.success(done)
    show_once()
    st.dataframe(agents_frame(agents), hide_index=True, width="stretch")
    st.caption("From the agents file on the hub (CALLPOP_AGENTS_CSV): edits here are written to it, and edits made "
               "to the file by hand show here.")
    ids = [a["id"] for a in agents]
    if ids:
        if "agents_next" in st.session_state:
            st.session_state["agents_select"] = st.session_state.pop("agents_next")
        if st.session_state.get("agents_select") not in ids:
            st.session_state.pop("agents_select", None)
        names = {a["id"]: f"{a['name']} ({a['id']})" for a in agents}
        pick = st.selectbox("Agent", ids, key="agents_select", format_func=names.get)
        edit_panel(c, next(a for a in agents if a["id"] == pick))
    add_panel(c)
    st.subheader("Changes")
    try:
        st.dataframe(changes_frame(c.agent_changes(), session.browser_tz()), hide_index=True, width="stretch")
    except HubError as e:
        session.show_error(e)


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import it without rendering
    main()
