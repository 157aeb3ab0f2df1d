"""The sidebar on every page: the hub's state (refreshing by itself) and who is signed in."""

from __future__ import annotations

import streamlit as st

from console import session
from console.hubclient import HubError

STATUS_EVERY_S = 2  # as often as the Live page, so the two never disagree for long


def hub_status() -> None:
    """Connected or not, agents online, calls ringing now, the provider's state."""
    c = session.client()
    st.subheader("Hub")
    try:
        c.health()
    except HubError as e:
        st.error("Not reachable")
        st.caption(f"{e.message} {session.START_HINT}")
        return
    if not st.session_state.get("token"):
        st.success("Connected")
        st.caption(f"{c.base_url} · sign in to see agents and calls")
        return
    if (session.agent() or {}).get("role") != "supervisor":  # the team's figures are a supervisor's
        st.success("Connected")
        st.caption(c.base_url)
        return
    try:
        status = c.status()
    except HubError as e:
        st.warning(e.message)
        return
    provider = status.get("provider") or {}
    st.success(f"Connected · up {_duration(status.get('uptime_s', 0))}")
    left, right = st.columns(2)
    left.metric("Agents online", status.get("agents_online", 0),
                help="Agents whose browser extension is connected to the hub right now.")
    right.metric("Ringing now", status.get("calls_ringing", 0), help="Calls ringing at any extension.")
    st.caption(session.md_escape(
        f"Provider {provider.get('name', '?')}: {provider.get('state', '?')}"
        + (f" ({provider['detail']})" if provider.get("detail") else "")))


def sign_in_box() -> None:
    st.subheader("Agent")
    who = session.agent()
    if who:
        # The name, never the token.
        st.markdown(f"Signed in as **{session.md_escape(who.get('name'))}**")
        st.caption(session.md_escape(f"ext {who.get('extension') or '-'} · {who.get('role', 'agent')}"))
        if st.button("Sign out", key="sign_out"):
            session.sign_out()
            st.rerun()
        return
    with st.form("sign_in", clear_on_submit=True, border=False):
        token = st.text_input("Agent token or sign-in code", type="password", key="token_input",
                              help="A one-time sign-in code (ABCD-EFGH) from a supervisor's Agents page, or a "
                                   "token; `make run` prints the demo agents' tokens.")
        if st.form_submit_button("Sign in"):
            problem = session.sign_in(token)
            if problem:
                st.error(problem)
            else:
                st.rerun()


def render() -> None:
    with st.sidebar:
        st.fragment(run_every=STATUS_EVERY_S)(hub_status)()
        st.divider()
        sign_in_box()


def _duration(seconds: float) -> str:
    seconds = int(seconds or 0)
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
