"""The callpop operator console: ``streamlit run console/app.py`` (``make run`` starts it).

A client of the hub (``CALLPOP_HUB_URL``): it reads and acts only through the hub's HTTP API
and never opens the hub's database. This file is the router; each page is in ``views/``.
"""

import sys
from pathlib import Path

# `streamlit run console/app.py` puts console/ on sys.path, not the project: the pages import
# `console.*` (and never hub code: everything comes through the hub's HTTP API).
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from console import session, sidebar  # noqa: E402

st.set_page_config(page_title="callpop console", page_icon=":material/call:", layout="wide")
st.set_option("client.toolbarMode", "viewer")  # operators get no Deploy / Rerun / Clear cache

page = st.navigation([
    st.Page("views/live.py", title="Live", icon=":material/call:", default=True),
    st.Page("views/contacts.py", title="Contacts", icon=":material/contacts:"),
    st.Page("views/analytics.py", title="Analytics", icon=":material/monitoring:"),
    st.Page("views/crm.py", title="CRM check", icon=":material/fact_check:"),
])
session.restore()  # a reload or a new tab: signed in again from the session cookie, if it is live
sidebar.render()
with st.sidebar:
    session.keep_cookie()
page.run()
