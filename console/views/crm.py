"""CRM check: paste a lookup URL and a number; see the raw answer, what the hub makes of it,
each rule of the CRM contract (pass / fail, with the reason) and the latency.

Everything the CRM sent is shown as text (``st.code``, dataframes), never as markdown or HTML.
The CRM credential of the settings is never shown and is only sent to the configured CRM.
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from console import crmcheck, session
from console.hubclient import hub_url
from pipelines import settings as settings_mod

PHONE_FORMATS = ("raw", "national", "e164", "digits")
MARK = {True: "pass", False: "FAIL", None: "not checked"}
MARK_STYLE = {"pass": "color: #1a7f37", "FAIL": "color: #cf222e; font-weight: 600", "not checked": "color: #8c959f"}
ROW_PX = 35


def default_url(settings: settings_mod.Settings) -> str:
    """The configured CRM (masked: its URL may carry a key), else this hub's sample CRM."""
    return crmcheck.shown_crm_url(settings) or f"{hub_url()}/crm/lookup"


def rules_frame(report: crmcheck.CheckReport) -> pd.DataFrame:
    return pd.DataFrame([{"Rule": r.rule, "Result": MARK[r.passed], "Why": r.reason} for r in report.rules],
                        columns=["Rule", "Result", "Why"])


def parsed_frame(report: crmcheck.CheckReport) -> pd.DataFrame:
    r = report.result
    rows = [("Outcome (recorded in lookups)", r.outcome), ("Pop status (sent to the agent)", r.pop_status),
            ("Name", r.name), ("Company", r.company), ("URL opened on click", r.url), ("Matches (TOTAL)", str(r.total)),
            ("HTTP status", "" if r.http_status is None else str(r.http_status)), ("Error", r.error),
            ("Contract faults recorded", "; ".join(r.faults))]
    return pd.DataFrame(rows, columns=["Field", "Value"])


def pretty_json(text: str) -> str:
    """The answer indented for reading, when it is JSON (else "")."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return ""


def show_report(report: crmcheck.CheckReport) -> None:
    broken = report.broken
    if broken:
        st.error(f"{len(broken)} contract rule{'s' if len(broken) != 1 else ''} broken: "
                 + ", ".join(session.md_escape(r.rule) for r in broken))
    else:
        st.success("The answer follows the CRM contract.")
    a, b, c, d = st.columns(4)
    a.metric("Outcome", report.result.outcome)
    b.metric("Latency", f"{report.latency_ms:.0f} ms")
    c.metric("HTTP status", "-" if report.answer is None else report.answer.status_code)
    d.metric("Answer size", "-" if report.answer is None else f"{len(report.answer.body)} B")
    st.caption("Request sent (secrets masked); the number went as " + session.md_escape(report.sent_as)
               + (" · with the configured auth header" if report.auth_sent else "")
               + (f" · after {report.redirects} redirect(s)" if report.redirects else ""))
    st.code(report.request, language=None, wrap_lines=True)
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
        if report.answer is None:
            st.caption("No HTTP answer: " + session.md_escape(report.result.error or report.result.outcome))
        else:
            st.caption(session.md_escape(f"HTTP {report.answer.status_code} · "
                                         f"{report.answer.content_type or 'no Content-Type'}"))
            raw = report.body_text()
            st.code(raw or "(empty body)", language=None, wrap_lines=True)
            formatted = pretty_json(raw)
            if formatted:
                st.caption("The same, formatted")
                st.code(formatted, language="json", wrap_lines=True)


def render() -> None:
    st.title("CRM check")
    st.caption("Runs one lookup exactly as the hub does (same HTTP client, limits, size cap and parser) "
               "and checks the answer against the CRM contract.")
    if session.require_agent() is None:
        return
    settings = settings_mod.load()
    with st.form("crm_check", border=True):
        url = st.text_input("Lookup URL", value=default_url(settings), key="crm_url",
                            help="The CRM's lookup page; callpop adds ?phone=<number>. "
                                 "The default is this hub's sample CRM (or CALLPOP_CRM_URL).")
        left, right = st.columns([2, 1])
        phone = left.text_input("Phone number", value="0722776772", key="crm_phone")
        fmt = right.selectbox("Number sent as", PHONE_FORMATS, key="crm_format",
                              index=PHONE_FORMATS.index(settings.crm_phone_format),
                              help="CALLPOP_CRM_PHONE_FORMAT: how the hub writes the number for the CRM.")
        run = st.form_submit_button("Run lookup", type="primary")
    if run:
        if not url.strip().lower().startswith(("http://", "https://")):
            st.error("The lookup URL must start with http:// or https://.")
            return
        if not phone.strip():
            st.error("Type the phone number to look up.")
            return
        with st.spinner("Asking the CRM…"):
            st.session_state["crm_report"] = crmcheck.check(settings, crmcheck.resolve_url(url, settings), phone,
                                                            phone_format=fmt)
    report = st.session_state.get("crm_report")
    if report is None:
        st.info("Paste your CRM's lookup URL and a caller's number, then press Run lookup. "
                "Try the built-in sample CRM first: it answers as the contract says.")
        return
    show_report(report)


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import it without rendering
    render()
