"""The callpop operator console: ``streamlit run console/app.py`` (``make run`` starts it).

A client of the hub (``CALLPOP_HUB_URL``): it reads and acts only through the hub's HTTP API
and never opens the hub's database. This file is the router; each page is in ``views/``.
"""

# The pages import `console.*` as the installed package (pip install ., or make's editable
# install), wherever `streamlit run` is started from; never hub code: that goes through its HTTP API.
import streamlit as st

from console import session, sidebar

st.set_page_config(page_title="callpop console", page_icon=":material/call:", layout="wide")
st.set_option("client.toolbarMode", "viewer")  # operators get no Deploy / Rerun / Clear cache

session.restore()  # a reload or a new tab: signed in again from the session cookie, if it is live
pages = [
    st.Page("views/live.py", title="Live", icon=":material/call:", default=True),
    st.Page("views/calls.py", title="My calls", icon=":material/history:"),
    st.Page("views/contacts.py", title="Contacts", icon=":material/contacts:"),
    st.Page("views/analytics.py", title="Analytics", icon=":material/monitoring:"),
    st.Page("views/crm.py", title="CRM check", icon=":material/fact_check:"),
]
if (session.agent() or {}).get("role") == "supervisor":  # the hub refuses the others anyway (403)
    pages.append(st.Page("views/agents.py", title="Agents", icon=":material/manage_accounts:"))
page = st.navigation(pages)
sidebar.render()
with st.sidebar:
    session.keep_cookie()
page.run()
