"""One operator's session: the hub client, who is signed in, and how hub failures are shown.

The agent token lives only in ``st.session_state["token"]`` (server-side, this browser tab) and
in the console's sign-in table (``console/signins.py``), which lets a reload or a new tab find it
again from an opaque, expiring session id in a cookie. The token is sent to the hub as a bearer
token and never written back to the page; the page shows the agent's name instead.
"""

from __future__ import annotations

import re
import time

import httpx
import pandas as pd
import streamlit as st

from console import signins
from console.hubclient import TIMEOUT_S, HubClient, HubError, hub_url

START_HINT = ("Start the whole system with `make run` (hub, simulated PBX, sample CRM and this console), "
              "or the hub alone with `callpop serve`. The console looks for it at "
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


@st.cache_resource(show_spinner=False)
def _sign_ins() -> signins.SignIns:
    # One table for every tab of this console process: a reload opens a new Streamlit session.
    return signins.SignIns(signins.lifetime_s())


def _cookie(name: str) -> str | None:
    try:
        value = st.context.cookies.get(name)
    except Exception:  # noqa: BLE001 - no browser behind this run (AppTest, bare mode)
        return None
    return value if isinstance(value, str) else None


def restore() -> None:
    """Once per browser session: sign back in from the session cookie, if it names a live sign-in."""
    if st.session_state.get("token") or st.session_state.get("restore_tried"):
        return
    st.session_state["restore_tried"] = True
    session_id = _cookie(signins.COOKIE)
    token = _sign_ins().token(session_id)
    if token:
        st.session_state["token"], st.session_state["session_id"] = token, session_id


def keep_cookie() -> None:
    """Write (or, after a sign-out, delete) the session cookie. Runs in the page: Streamlit's
    cookies are read-only, so a tiny script sets it."""
    session_id = st.session_state.get("session_id")
    if session_id and st.session_state.get("token"):
        expires = st.session_state.get("session_expires") or time.time() + signins.lifetime_s()
        st.html(signins.cookie_script(session_id, expires - time.time()), unsafe_allow_javascript=True)
    elif st.session_state.get("forget_cookie"):
        st.html(signins.cookie_script(None), unsafe_allow_javascript=True)


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
    """Check the token with the hub (or first trade a one-time sign-in code for one); None when
    signed in, else why not (for the operator)."""
    token = token.strip()
    if not token:
        return "Paste an agent token or a sign-in code."
    if code := signins.code_in(token):
        try:
            token = client().exchange_code(code)["token"]
        except HubError as e:
            return e.message
    try:
        me = client().with_token(token).me()
    except HubError as e:
        return "The hub refused this token." if e.kind == "unauthorized" else e.message
    st.session_state["token"], st.session_state["agent"] = token, me
    session_id, expires = _sign_ins().open(token)
    st.session_state["session_id"], st.session_state["session_expires"] = session_id, expires
    st.session_state.pop("forget_cookie", None)
    return None


def sign_out() -> None:
    """Forget the agent here and revoke the session id, whoever else holds a copy of it."""
    _sign_ins().close(st.session_state.get("session_id"))
    for key in ("token", "agent", "dial", "toasted", "session_id", "session_expires", "crm_report", "crm_defaults"):
        st.session_state.pop(key, None)
    st.session_state["forget_cookie"] = True


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


def browser_tz() -> str | None:
    """The browser's time zone, if there is a browser (AppTest runs have none)."""
    try:
        return st.context.timezone
    except Exception:  # noqa: BLE001 - outside a browser session there is none
        return None


def clock_time(iso: str | None, tz: str | None) -> str:
    """HH:MM:SS of an ISO 8601 UTC time, in the zone ``tz`` (UTC when unknown)."""
    if not iso:
        return ""
    try:
        at = pd.Timestamp(iso)
        at = at.tz_localize("UTC") if at.tzinfo is None else at
        return at.tz_convert(tz or "UTC").strftime("%H:%M:%S")
    except (ValueError, TypeError):
        return str(iso)[11:19]
