"""Contacts: search, pick a row, Dial (click-to-call from the console); import contacts from CSV.

The hub does the searching (``/api/contacts?q=``: name, company, email, or the number in any
spelling), so the console and the sample CRM agree on who matches. A dial (a selected contact,
or a number typed in) is ``POST /api/dial`` with ``source: console``; its progress is polled from
``/api/dials/{id}`` by a fragment beside the grid until it has ended or failed, with a Hang up
button (``POST /api/dials/{id}/hangup``) while it lasts, and the time it ended.
"""

from __future__ import annotations

import hashlib
import time

import pandas as pd
import streamlit as st

from console import session
from console.hubclient import HubClient, HubError

GRID_KEY = "contacts_grid"
SEARCH_KEY = "contacts_q"
LIMIT = 5000  # the most /api/contacts returns at once; the grid stays fast well past this
GRID_COLUMNS = ["name", "company", "phone", "email"]
DIAL_POLL_S = 1
GRID_HEIGHT, ROW_PX = 460, 35  # the grid shrinks to fit a short result instead of showing empty rows
STEPS = ("requested", "leg_a_ringing", "leg_a_answered", "leg_b_ringing", "bridged")
STEP_TEXT = {"requested": "Asking the phone system…", "leg_a_ringing": "Ringing your phone…",
             "leg_a_answered": "You answered", "leg_b_ringing": "Ringing {to}…", "bridged": "Connected to {to}",
             "ended": "Call ended", "failed": "Failed"}
DONE = ("ended", "failed")  # polled through "bridged": the call ends later, maybe by Hang up
# /api/dials/{id} gives the error code once a dial is over; these say it for people.
FAILURE_TEXT = {
    "leg_a_no_answer": "your phone was not answered", "leg_a_busy": "your phone is busy",
    "leg_b_busy": "the number is busy", "leg_b_no_answer": "the number did not answer",
    "ended_before_bridge": "the call ended before the two phones were connected",
    "provider_error": "the phone system could not place the call", "rate_limited": "too many calls in a minute",
    "hung_up": "you hung up before the call was connected",
}


# --- data
def search(client: HubClient, q: str) -> tuple[pd.DataFrame, int]:
    """(matching contacts, how many the hub has). Raises HubError."""
    answer = client.contacts(q, limit=LIMIT)
    frame = pd.DataFrame(answer.get("contacts", []), columns=["id", *GRID_COLUMNS, "e164"])
    return frame, int(answer.get("total", 0))


def cached_search(client: HubClient, q: str) -> tuple[pd.DataFrame, int]:
    """One search per distinct query and import generation: a row click reruns the page, and
    the grid must not be refetched (or reshuffled) for it."""
    key = data_key(q)
    cached = st.session_state.get("contacts_cache")
    if cached is None or cached[0] != key:
        cached = (key, *search(client, q))
        st.session_state["contacts_cache"] = cached
    return cached[1], cached[2]


def data_key(q: str) -> tuple:
    """What the grid currently shows: the search and the import generation."""
    return (q, st.session_state.get("contacts_gen", 0))


def selected_row(frame: pd.DataFrame, shown: tuple) -> dict | None:
    """The contact of the selected grid row, if the selection was made on this very data.

    Streamlit keeps a keyed grid's selection when its data changes (a new search), so row 3 of
    the old results would silently become row 3 of the new ones: a selection is remembered with
    the search it was made on, and ignored once the search changed."""
    state = st.session_state.get(GRID_KEY)
    try:
        rows = tuple(state["selection"]["rows"]) if state is not None else ()
    except (KeyError, TypeError):
        rows = ()
    seen = st.session_state.get("grid_selection")
    if seen is None or seen[0] != rows:
        st.session_state["grid_selection"] = seen = (rows, shown)
    if not rows or seen[1] != shown or not 0 <= rows[0] < len(frame):
        return None
    return frame.iloc[rows[0]].to_dict()


def leg_a_options(me: dict) -> dict[str, str]:
    """The phones the agent can be rung on first: label -> leg_a value."""
    options = {}
    if me.get("extension"):
        options[f"My extension ({me['extension']})"] = "extension"
    if me.get("mobile"):
        options[f"My mobile ({me['mobile']})"] = "mobile"
    if me.get("home"):
        options[f"My home phone ({me['home']})"] = "home"
    options["Another number…"] = ""
    return options



def start_dial(client: HubClient, contact: dict, leg_a: str) -> dict:
    """POST /api/dial for a contact; the dial record kept in the session (also when refused)."""
    dial = {"name": contact.get("name", ""), "to": contact.get("phone", ""), "leg_a": leg_a,
            "state": "requested", "started": time.time()}
    try:
        answer = client.dial(contact["phone"], leg_a)
    except HubError as e:
        return dial | {"state": "failed", "error": e.code or e.kind, "reason": e.message}
    return dial | {"dial_id": answer["dial_id"], "to": answer.get("to") or dial["to"],
                   "leg_a_shown": answer.get("leg_a", "")}


def poll_dial(client: HubClient, dial: dict) -> dict:
    """The dial's state from the hub; progress never goes backwards while the hub's row is written."""
    if dial.get("state") in DONE or not dial.get("dial_id"):
        return dial
    try:
        answer = client.dial_state(dial["dial_id"])
    except HubError as e:
        if e.kind == "unreachable":
            return dial | {"note": e.message}
        return dial | {"state": "failed", "error": e.code, "reason": e.message}
    return apply_answer(dial, answer)


def hang_up(client: HubClient, dial: dict) -> dict:
    """Ask the hub to end the dial; its answer is the dial's new state (or why it cannot)."""
    try:
        answer = client.hangup(dial["dial_id"])
    except HubError as e:
        if e.code == "dial_over":
            return poll_dial(client, dial)
        return dial | {"hangup_note": e.message}  # e.g. a provider that cannot: hang up on the phone
    return apply_answer(dial, answer)


def apply_answer(dial: dict, answer: dict) -> dict:
    """A ``/api/dials/{id}`` answer folded into the session's dial record."""
    state = answer.get("state", dial["state"])
    if state not in DONE and state in STEPS and dial["state"] in STEPS \
            and STEPS.index(state) < STEPS.index(dial["state"]):
        state = dial["state"]
    out = dial | {"state": state, "note": "", "ended_at": answer.get("ended_at")}
    if state == "bridged" and "to_bridge_s" not in dial:
        out["to_bridge_s"] = time.time() - dial["started"]  # as the operator waited for it
    if state == "failed":
        code = answer.get("error") or "failed"
        out |= {"error": code, "reason": FAILURE_TEXT.get(code, code.replace("_", " "))}
    return out


# --- rendering
def dial_status(dial: dict) -> None:
    st.text(f"{dial.get('name') or 'Dial'}: {dial.get('to', '')}")
    state = dial.get("state", "requested")
    ended = session.clock_time(dial.get("ended_at"), session.browser_tz())
    if state == "failed":
        st.error(f"Failed: {session.md_escape(dial.get('reason') or dial.get('error') or 'the call could not be placed')}")
        if ended:
            st.caption(f"Ended at {ended}")
        return
    if state == "ended":
        st.info(f"The call ended at {ended}." if ended else "The call ended.")
        return
    step = STEPS.index(state) if state in STEPS else 0
    text = STEP_TEXT.get(state, state).format(to=session.md_escape(dial.get("to", "")))
    st.progress((step + 1) / len(STEPS), text=text)
    if state == "bridged":
        waited = f" ({dial['to_bridge_s']:.0f} s to connect)" if "to_bridge_s" in dial else ""
        st.success(f"Connected: talk on your phone.{waited}")
    if dial.get("hangup_note"):
        st.warning(session.md_escape(dial["hangup_note"]))
    if dial.get("note"):
        st.caption(session.md_escape(dial["note"]))


def dial_progress() -> None:
    """Beside the grid: the current dial, re-polled by a fragment until it is over."""
    dial = st.session_state.get("dial")
    if not dial:
        return
    was = dial.get("state")
    if dial.get("dial_id") and dial.get("state") not in DONE and \
            st.button("Hang up", key="hangup_button", icon=":material/call_end:"):
        dial = hang_up(session.client(), dial)
    else:
        dial = poll_dial(session.client(), dial)
    st.session_state["dial"] = dial
    dial_status(dial)
    if was not in DONE and dial.get("state") in DONE:
        st.rerun()  # a full run redraws the panel without the timer: nothing left to poll


def dial_panel(frame: pd.DataFrame, me: dict, shown: tuple) -> None:
    st.subheader("Dial")
    contact = selected_row(frame, shown)
    if contact is None:
        st.caption("Select a contact in the grid (the box at the start of its row), or type a number, then Dial.")
    else:
        st.text(f"{contact['name']}" + (f" · {contact['company']}" if contact.get("company") else ""))
        st.text(contact["phone"])
    typed = st.text_input("Number to call", key="dial_to", placeholder="or type a number, e.g. 03-555-1234",
                          help="A number typed here is dialled instead of the selected contact.").strip()
    if typed:
        contact = {"name": "", "phone": typed}
    options = leg_a_options(me)
    choice = st.selectbox("Ring me first on", list(options), key="leg_a_choice",
                          help="Your phone rings first; when you answer, the contact's number is called.")
    leg_a = options[choice]
    if not leg_a:
        leg_a = st.text_input("My number", key="leg_a_number", placeholder="e.g. 054-812-4567").strip()
    if st.button("Dial", type="primary", disabled=contact is None or not leg_a, key="dial_button",
                 icon=":material/call:"):
        st.session_state["dial"] = start_dial(session.client(), contact, leg_a)
    dial = st.session_state.get("dial")
    if dial:
        st.divider()
        if dial.get("state") in DONE:
            dial_status(dial)
        else:
            st.fragment(run_every=DIAL_POLL_S)(dial_progress)()


def import_section() -> None:
    with st.expander("Import contacts from a CSV file", expanded=False):
        st.caption("A header row with at least `name` and `phone`; `company`, `email` and `id` are used "
                   "when present. UTF-8 text. You see a preview and the rows that would be skipped first.")
        upload = st.file_uploader("CSV file", type=["csv"], key="import_file")
        if upload is None:
            return
        data = upload.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            st.error("This file is not UTF-8 text. Save it as \"CSV UTF-8\" and upload it again.")
            return
        client = session.client()
        preview = st.session_state.get("import_preview")
        if preview is None or preview[0] != digest:
            try:
                preview = (digest, client.import_contacts(text, dry_run=True))
            except HubError as e:
                session.show_error(e)
                return
            st.session_state["import_preview"] = preview
        result = preview[1]
        problems = result.get("problems", [])
        st.text(f"{result['valid']} contact(s) ready to import; {len(problems)} row(s) will be skipped.")
        if result.get("preview"):
            st.dataframe(pd.DataFrame(result["preview"], columns=["id", *GRID_COLUMNS]), hide_index=True,
                         width="stretch", key="import_preview_grid")
        if problems:
            st.warning("These rows have problems and will not be imported:")
            st.dataframe(pd.DataFrame(problems, columns=["line", "reason"]), hide_index=True, width="stretch",
                         key="import_problems_grid")
        done = st.session_state.setdefault("imported", {})
        if digest in done:
            st.success(f"Imported {done[digest]} contact(s) from this file.")
            return
        if st.button(f"Import {result['valid']} contact(s)", disabled=not result["valid"], key="import_button"):
            try:
                answer = client.import_contacts(text, dry_run=False)
            except HubError as e:
                session.show_error(e)
                return
            done[digest] = answer["imported"]
            st.session_state["contacts_gen"] = st.session_state.get("contacts_gen", 0) + 1
            st.rerun()


def render() -> None:
    st.title("Contacts")
    me = session.require_agent()
    if me is None:
        return
    q = st.text_input("Search contacts", key=SEARCH_KEY, placeholder="name, company or number, in any spelling",
                      icon=":material/search:")
    try:
        frame, total = cached_search(session.client(), q.strip())
    except HubError as e:
        session.show_error(e)
        return
    grid, side = st.columns([3, 1.3], gap="medium")
    with grid:
        if total == 0:
            st.info("No contacts yet. Import a CSV file below, or point CALLPOP_CONTACTS_CSV at yours "
                    "and restart the hub.")
        elif frame.empty:
            st.info("No contact matches. Search by name, company, e-mail, or any part of the number "
                    "(054-812, 972548, +972 54 …).")
        else:
            shown = f"{len(frame):,} of {total:,} contacts" if q.strip() else f"{total:,} contacts"
            if len(frame) >= LIMIT:
                shown += f" (the first {LIMIT:,}: search to narrow)"
            st.caption(shown)
            st.dataframe(frame[GRID_COLUMNS], key=GRID_KEY, on_select="rerun", selection_mode="single-row",
                         hide_index=True, width="stretch", height=min(GRID_HEIGHT, ROW_PX * (len(frame) + 1) + 3),
                         column_config={
                             "name": st.column_config.TextColumn("Name"),
                             "company": st.column_config.TextColumn("Company"),
                             "phone": st.column_config.TextColumn("Phone"),
                             "email": st.column_config.TextColumn("E-mail"),
                         })
    with side:
        dial_panel(frame, me, data_key(q.strip()))
    if me.get("role") == "supervisor":  # the hub allows imports to supervisors only
        import_section()


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import it without rendering
    render()
