"""CRM check: paste a lookup URL and a number; see the raw answer, what the hub makes of it,
each rule of the CRM contract (pass / fail, with the reason) and the latency.

Everything the CRM sent is shown as text (``st.code``, dataframes), never as markdown or HTML.
The hub runs the lookup (``POST /api/crm/check``, pipelines/crmcheck.py): this page only shows
its answer, so it needs no hub code, no CRM credential and no ``.env`` of its own.
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from console import session
from console.hubclient import HubError

PHONE_FORMATS = ("raw", "national", "e164", "digits")
MARK = {True: "pass", False: "FAIL", None: "not checked"}
MARK_STYLE = {"pass": "color: #1a7f37", "FAIL": "color: #cf222e; font-weight: 600", "not checked": "color: #8c959f"}
ROW_PX = 35


def rules_frame(report: dict) -> pd.DataFrame:
    return pd.DataFrame([{"Rule": r["rule"], "Result": MARK[r["passed"]], "Why": r["reason"]}
                         for r in report.get("rules", [])], columns=["Rule", "Result", "Why"])


def parsed_frame(report: dict) -> pd.DataFrame:
    r = report.get("result", {})
    rows = [("Outcome (recorded in lookups)", r.get("outcome", "")), ("Pop status (sent to the agent)",
            r.get("pop_status", "")), ("Name", r.get("name", "")), ("Company", r.get("company", "")),
            ("URL opened on click", r.get("url", "")), ("Matches (TOTAL)", str(r.get("total", 0))),
            ("HTTP status", "" if r.get("http_status") is None else str(r["http_status"])),
            ("Error", r.get("error", "")), ("Contract faults recorded", "; ".join(r.get("faults", [])))]
    return pd.DataFrame(rows, columns=["Field", "Value"])


def pretty_json(text: str) -> str:
    """The answer indented for reading, when it is JSON (else "")."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return ""


def show_report(report: dict) -> None:
    broken = report.get("broken", [])
    if broken:
        st.error(f"{len(broken)} contract rule{'s' if len(broken) != 1 else ''} broken: "
                 + ", ".join(session.md_escape(rule) for rule in broken))
    else:
        st.success("The answer follows the CRM contract.")
    answer, result = report.get("answer"), report.get("result", {})
    a, b, c, d = st.columns(4)
    a.metric("Outcome", result.get("outcome", ""))
    b.metric("Latency", f"{report.get('latency_ms', 0):.0f} ms")
    c.metric("HTTP status", "-" if answer is None else answer["status_code"])
    d.metric("Answer size", "-" if answer is None else f"{answer['size']} B")
    st.caption("Request sent (secrets masked); the number went as " + session.md_escape(report.get("sent_as"))
               + (" · with the configured auth header" if report.get("auth_sent") else "")
               + (f" · after {report['redirects']} redirect(s)" if report.get("redirects") else ""))
    st.code(report.get("request", ""), language=None, wrap_lines=True)
    st.subheader("Contract rules")
    rules = rules_frame(report)
    styled = rules.style.map(lambda mark: MARK_STYLE.get(mark, ""), subset=["Result"])
    st.dataframe(styled, hide_index=True, width="stretch", key="crm_rules", height=ROW_PX * (len(rules) + 1) + 3,
                 column_config={
        "Rule": st.column_config.TextColumn("Rule", width="medium"),
        "Result": st.column_config.TextColumn("Result", width="small"),
        "Why": st.column_config.TextColumn("Why", width="large"),
    })
    left, right = st.columns(2)
    with left:
        st.subheader("Parsed result")
        st.caption("What the hub records and what the agent's pop shows.")
        parsed = parsed_frame(report)
        st.dataframe(parsed, hide_index=True, width="stretch", key="crm_parsed", height=ROW_PX * (len(parsed) + 1) + 3,
                     column_config={"Field": st.column_config.TextColumn("Field", width="medium"),
                                    "Value": st.column_config.TextColumn("Value", width="large")})
    with right:
        st.subheader("Raw answer")
        if answer is None:
            st.caption("No HTTP answer: " + session.md_escape(result.get("error") or result.get("outcome")))
        else:
            st.caption(session.md_escape(f"HTTP {answer['status_code']} · "
                                         f"{answer.get('content_type') or 'no Content-Type'}"))
            raw = answer.get("body", "")
            st.code(raw or "(empty body)", language=None, wrap_lines=True)
            formatted = pretty_json(raw)
            if formatted:
                st.caption("The same, formatted")
                st.code(formatted, language="json", wrap_lines=True)


def render() -> None:
    st.title("CRM check")
    st.caption("The hub runs one lookup exactly as it does for a call (same HTTP client, limits, size cap and "
               "parser) and checks the answer against the CRM contract. Supervisors only; the hub asks public "
               "addresses and the configured CRM, nothing else.")
    me = session.require_agent()
    if me is None:
        return
    if me.get("role") != "supervisor":
        st.info("The CRM check is for supervisors: ask one to run it, or to check your CRM's URL.")
        return
    client = session.client()
    try:
        defaults = st.session_state.get("crm_defaults") or client.crm_check_defaults()
    except HubError as e:
        session.show_error(e)
        return
    st.session_state["crm_defaults"] = defaults
    shown_format = defaults.get("phone_format", "raw")
    with st.form("crm_check", border=True):
        url = st.text_input("Lookup URL", value=defaults.get("url", ""), key="crm_url",
                            help="The CRM's lookup page; callpop adds ?phone=<number>. The default is the "
                                 "configured CRM (CALLPOP_CRM_URL, its secrets masked) or the hub's sample CRM.")
        left, right = st.columns([2, 1])
        phone = left.text_input("Phone number", value="0722776772", key="crm_phone")
        fmt = right.selectbox("Number sent as", PHONE_FORMATS, key="crm_format",
                              index=PHONE_FORMATS.index(shown_format) if shown_format in PHONE_FORMATS else 0,
                              help="CALLPOP_CRM_PHONE_FORMAT: how the hub writes the number for the CRM.")
        run = st.form_submit_button("Run lookup", type="primary")
    if run:
        if url.strip() and not url.strip().lower().startswith(("http://", "https://")):
            st.error("The lookup URL must start with http:// or https://.")
            return
        if not phone.strip():
            st.error("Type the phone number to look up.")
            return
        with st.spinner("Asking the CRM…"):
            try:
                st.session_state["crm_report"] = client.crm_check(url.strip(), phone.strip(), fmt)
            except HubError as e:
                st.session_state.pop("crm_report", None)
                session.show_error(e)
                return
    report = st.session_state.get("crm_report")
    if report is None:
        st.info("Paste your CRM's lookup URL and a caller's number, then press Run lookup. "
                "Try the built-in sample CRM first: it answers as the contract says.")
        return
    show_report(report)


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import it without rendering
    render()
