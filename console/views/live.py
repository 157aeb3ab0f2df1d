"""Live: calls ringing and in progress, the latest pops, a toast when a call rings for me, and my
missed calls (the inbox: call back or mark done).

The panel is a fragment that re-runs itself every ``EVERY_S`` seconds (polling the hub's
``/api/calls/live`` and ``/api/pops/recent``), so only it redraws, never the whole page.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from console import session
from console.hubclient import HubClient, HubError

EVERY_S = 2
STATE_TEXT = {"ringing": "ringing", "answered": "in progress"}
POP_TEXT = {"found": "found", "multiple": "several matches", "not_found": "not found",
            "pending": "CRM late (pending)", "error": "CRM error"}

CALL_COLUMNS = ["Caller", "Name", "Company", "Extension", "Agent", "State", "How long", "Lookup", "CRM page"]
POP_COLUMNS = ["At", "Caller", "Name", "Company", "Extension", "Lookup", "Matched", "Latency (ms)", "Cache"]
KIND_TEXT = {"missed": "missed", "unseen": "pop not seen"}


def clock(seconds: float | None) -> str:
    seconds = int(seconds or 0)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds < 3600 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}"


def calls_frame(calls: list[dict]) -> pd.DataFrame:
    """The live calls as the grid shows them (CRM strings stay plain text in a dataframe)."""
    rows = [{
        "Caller": c.get("phone") or "withheld",
        "Name": c.get("name") or "",
        "Company": c.get("company") or "",
        "Extension": ", ".join(c.get("extensions") or []),
        "Agent": c.get("agent_name") or "",
        "State": STATE_TEXT.get(c.get("status", ""), c.get("status", "")),
        "How long": clock(c.get("seconds")),
        "Lookup": POP_TEXT.get(c.get("lookup", ""), c.get("lookup", "")),
        "CRM page": c.get("url") or "",
    } for c in calls]
    return pd.DataFrame(rows, columns=CALL_COLUMNS)


def pops_frame(pops: list[dict], tz: str | None = None) -> pd.DataFrame:
    rows = [{
        "At": session.clock_time(p.get("at"), tz),
        "Caller": p.get("phone") or "withheld",
        "Name": p.get("name") or "",
        "Company": p.get("company") or "",
        "Extension": p.get("extension") or "",
        "Lookup": POP_TEXT.get(p.get("status", ""), p.get("status", "")),
        "Matched": matched_text(p.get("matched")),
        "Latency (ms)": "" if p.get("lookup_ms") is None else f"{p['lookup_ms']:.0f}",
        "Cache": p.get("cache") or "",
    } for p in pops]
    return pd.DataFrame(rows, columns=POP_COLUMNS)


def matched_text(matched: dict | None) -> str:
    """Why the caller was named (the pop's ``matched``), for people: "matched as +972722776772"."""
    if not isinstance(matched, dict):
        return ""
    if matched.get("how") == "chosen":
        return f"chosen by {matched.get('by', '?')} among {matched.get('total', 'several')}"
    if matched.get("how") == "format":
        return f"matched as {matched.get('as', '')} ({matched.get('format', '')})"
    return ""


def rings_for(agent: dict | None, calls: list[dict]) -> list[dict]:
    """Calls ringing now at the signed-in agent's extension."""
    ext = (agent or {}).get("extension")
    if not ext:
        return []
    return [c for c in calls if c.get("status") == "ringing" and ext in (c.get("extensions") or [])]


def toast_text(call: dict) -> str:
    """The toast for a call ringing for me: markdown, with the CRM's strings escaped."""
    who = " · ".join(session.md_escape(x) for x in (call.get("name"), call.get("company")) if x)
    text = f"Ringing for you: **{session.md_escape(call.get('phone') or 'withheld number')}**"
    text += f" {who}" if who else " (unknown caller)"
    url = call.get("url") or ""
    if url.startswith(("http://", "https://")):  # the hub only passes absolute http(s) URLs; check anyway
        text += f" — [open CRM page]({url.replace('(', '%28').replace(')', '%29').replace(' ', '%20')})"
    return text


def snapshot(client: HubClient) -> tuple[list[dict], list[dict]]:
    """What the panel shows: (live calls, latest pops). Raises HubError."""
    return client.live_calls(), client.recent_pops(limit=30)


def live_panel() -> None:
    """The self-refreshing part of the page (a fragment: AppTest calls it once per run)."""
    try:
        calls, pops = snapshot(session.client())
    except HubError as e:
        session.show_error(e)
        return
    me = st.session_state.get("agent")
    toasted: set = st.session_state.setdefault("toasted", set())
    for call in rings_for(me, calls):
        if call["call_id"] not in toasted:
            toasted.add(call["call_id"])
            st.toast(toast_text(call), icon=":material/ring_volume:", duration="long")
    ringing = sum(1 for c in calls if c.get("status") == "ringing")
    st.subheader(f"Calls now · {ringing} ringing · {len(calls) - ringing} in progress")
    if calls:
        st.dataframe(calls_frame(calls), hide_index=True, width="stretch", column_config={
            "CRM page": st.column_config.LinkColumn("CRM page", display_text="open"),
            "How long": st.column_config.TextColumn("How long", help="minutes:seconds since it started ringing"),
        })
    else:
        st.info("No calls ringing or in progress right now. They appear here by themselves as the "
                "phone system reports them; with `make run` the simulated PBX places several calls a minute.")
    st.subheader("Latest pops")
    if pops:
        st.dataframe(pops_frame(pops, session.browser_tz()), hide_index=True, width="stretch", column_config={
            "Latency (ms)": st.column_config.TextColumn("Latency (ms)", help="Time the CRM took to answer the "
                                                        "lookup (empty: nothing to look up, the number was withheld)"),
            "Cache": st.column_config.TextColumn("Cache", help="miss: asked the CRM; hit: answered from the cache"),
        })
    else:
        st.info("No pops yet: a pop is sent when a call rings at an agent's extension.")
    inbox_section(session.client(), me, session.browser_tz())


def _call_back(entry: dict) -> None:
    """The "Call back" button: a click-to-call from my extension, linked to the missed call."""
    try:
        answer = session.client().dial(entry.get("e164") or entry.get("caller") or "", "extension",
                                       callback_for=entry["call_id"])
    except HubError as e:
        st.session_state["inbox_note"] = ("error", f"Could not call back: {e.message}")
        return
    st.session_state["inbox_note"] = ("ok", f"Calling back {answer.get('to', '')}: your extension rings first.")


def _done(entry: dict, me: dict | None) -> None:
    mine = (me or {}).get("id") == entry.get("agent_id")
    try:
        session.client().missed_done(entry["call_id"], None if mine else entry.get("agent_id"))
    except HubError as e:
        st.session_state["inbox_note"] = ("error", f"Could not mark it done: {e.message}")
        return
    st.session_state["inbox_note"] = ("ok", "Marked done.")


def inbox_section(client: HubClient, me: dict | None, tz: str | None) -> None:
    """My missed calls (a supervisor: the team's), newest first, each with Call back and Done."""
    try:
        inbox = client.missed()
    except HubError as e:
        session.show_error(e)
        return
    entries = inbox.get("missed") or []
    st.subheader(f"Missed calls · {inbox.get('count', len(entries))}")
    note = st.session_state.pop("inbox_note", None)
    if note:
        (st.error if note[0] == "error" else st.success)(note[1])
    if not entries:
        st.caption("Nothing missed: a call that rings at you and is answered nowhere waits here until you call "
                   "back or mark it done.")
        return
    for e in entries:
        mine = (me or {}).get("id") == e.get("agent_id")
        who, number, when, actions = st.columns([3, 2, 2, 2], vertical_alignment="center")
        who.markdown(f"**{session.md_escape(e.get('name') or e.get('phone') or 'withheld number')}**"
                     + ("" if mine else f" · for {session.md_escape(e.get('agent_id'))}"))
        number.text(e.get("phone") or "withheld")
        when.text(f"{session.clock_time(e.get('missed_at'), tz)} · {KIND_TEXT.get(e.get('kind'), e.get('kind'))}")
        key = f"{e.get('agent_id')}-{e['call_id']}"
        back, done = actions.columns(2)
        back.button("Call back", key=f"callback-{key}", on_click=_call_back, args=(e,),
                    disabled=not mine or not (e.get("e164") or e.get("caller")),
                    help="Your extension rings first, then the caller" if mine else "Only its agent calls back")
        done.button("Done", key=f"done-{key}", on_click=_done, args=(e, me))


def render() -> None:
    st.title("Live")
    if session.require_agent() is None:
        return
    st.fragment(run_every=EVERY_S)(live_panel)()


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import it without rendering
    render()
