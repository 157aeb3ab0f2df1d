"""My calls: the signed-in agent's latest calls, a note and a disposition for any of them, and
whether the CRM took each call's log (the hub sends it: ``CALLPOP_CRM_LOG_URL``).

A note saved during a call goes with the call's log when it ends; one saved after it is sent as
the next revision of the call's entry (``POST /api/calls/{call_id}/log``).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from console import session
from console.hubclient import HubError

COLUMNS = ["Started", "Caller", "Name", "Status", "Disposition", "Notes", "Logged to CRM"]
LOGGED = {"delivered": "yes", "pending": "pending (retrying)", "failed": "failed", None: ""}


def calls_frame(calls: list[dict], tz: str | None) -> pd.DataFrame:
    rows = [{"Started": f"{(c.get('started_at') or '')[:10]} {session.clock_time(c.get('started_at'), tz)}",
             "Caller": c.get("caller") or "withheld", "Name": c.get("name") or "", "Status": c.get("status") or "",
             "Disposition": c.get("disposition") or "", "Notes": c.get("notes") or "",
             "Logged to CRM": LOGGED.get(c.get("logged"), c.get("logged") or "")} for c in calls]
    return pd.DataFrame(rows, columns=COLUMNS)


def label(call: dict, tz: str | None) -> str:
    who = call.get("name") or call.get("caller") or "withheld"
    return f"{session.clock_time(call.get('started_at'), tz)} · {who} · {call.get('status') or ''}"


def render() -> None:
    st.title("My calls")
    if session.require_agent() is None:
        return
    try:
        history = session.client().call_history(limit=100)
    except HubError as e:
        session.show_error(e)
        return
    calls, tz = history["calls"], session.browser_tz()
    if not calls:
        st.info("No calls of yours in the last 7 days. A call is yours when it rang at your extension.")
        return
    st.dataframe(calls_frame(calls, tz), hide_index=True, width="stretch")
    st.subheader("Note and disposition")
    by_id = {c["call_id"]: c for c in calls}
    call_id = st.selectbox("Call", list(by_id), format_func=lambda cid: label(by_id[cid], tz))
    call = by_id[call_id]
    choices = [""] + history["dispositions"]
    with st.form("note", clear_on_submit=False):
        disposition = st.selectbox("Disposition", choices, index=choices.index(call["disposition"])
                                   if call.get("disposition") in choices else 0)
        notes = st.text_area("Notes", value=call.get("notes") or "", max_chars=4000)
        if st.form_submit_button("Save"):
            try:
                saved = session.client().save_note(call_id, disposition, notes)
            except HubError as e:
                st.error(f"Not saved: {e.message}")
            else:
                st.success("Saved" + (f"; sent to the CRM as revision {saved['revision']}." if saved.get("revision")
                                      else f" ({saved['logged']})."))


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import it without rendering
    render()
