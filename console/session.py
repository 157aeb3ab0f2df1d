"""One operator's session: the hub client, who is signed in, and how hub failures are shown.

The agent token lives only in ``st.session_state["token"]`` (server-side, this browser tab). It
is sent to the hub as a bearer token and never written back to the page; the page shows the
agent's name instead.
"""

from __future__ import annotations

import re

import httpx
import streamlit as st

from console.hubclient import TIMEOUT_S, HubClient, HubError, hub_url

START_HINT = ("Start the whole system with `make run` (hub, simulated PBX, sample CRM and this console), "
              "or the hub alone with `python -m pipelines serve`. The console looks for it at "
              "`CALLPOP_HUB_URL`.")
SIGN_IN_HINT = ("Sign in with an agent token in the sidebar. `make run` prints the demo agents' tokens; "
                "your own come from the agents CSV (`CALLPOP_AGENTS_CSV`).")

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=&^\"'])")


def md_escape(text: object) -> str:
    """Text (a caller's name, a company) that markdown shows literally: never markup, links or
    colour directives, whatever a CRM put in it."""
    return _MD_SPECIAL.sub(r"\\\1", str(text or ""))


@st.cache_resource(show_spinner=False)
def _http() -> httpx.Client:
    # One connection pool for every session of this console process (httpx.Client is thread-safe).
    return httpx.Client(timeout=TIMEOUT_S, headers={"User-Agent": "callpop-console"})


def client() -> HubClient:
    """The hub client for this session (with the signed-in agent's token, if any)."""
    return HubClient(hub_url(), st.session_state.get("token", ""), http=_http())


def agent(report: bool = False) -> dict | None:
    """The signed-in agent (``/api/me``), checking a token set before the first run."""
    if st.session_state.get("token") and not st.session_state.get("agent"):
        try:
            st.session_state["agent"] = client().me()
        except HubError as e:
            if e.kind == "unauthorized":
                sign_out()
            if report:
                show_error(e)
            return None
    return st.session_state.get("agent")


def sign_in(token: str) -> str | None:
    """Check the token with the hub; None when signed in, else why not (for the operator)."""
    token = token.strip()
    if not token:
        return "Paste an agent token."
    try:
        me = client().with_token(token).me()
    except HubError as e:
        return "The hub refused this token." if e.kind == "unauthorized" else e.message
    st.session_state["token"], st.session_state["agent"] = token, me
    return None


def sign_out() -> None:
    for key in ("token", "agent", "dial", "toasted"):
        st.session_state.pop(key, None)


def show_error(e: HubError) -> None:
    """A hub failure, said for the operator, with what to do about it."""
    if e.kind == "unreachable":
        st.error(f"Hub not reachable. {e.message}")
        st.markdown(START_HINT)
    elif e.kind == "unauthorized":
        st.warning(f"{e.message} {SIGN_IN_HINT}")
    else:
        st.error(e.message)


def require_agent() -> dict | None:
    """The signed-in agent, or None after saying on the page what to do (start the hub, sign in)."""
    if not st.session_state.get("token"):
        try:
            client().health()
        except HubError as e:
            show_error(e)
            return None
        st.info(SIGN_IN_HINT)
        return None
    return agent(report=True)
