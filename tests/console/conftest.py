"""The console under AppTest against the real hub (tests/conftest.py's ``hub`` / ``start_hub``)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.support import ROOT
from tests.support.hub import TOKENS

APP = ROOT / "console" / "app.py"


def open_console(page: str | None = None, token: str | None = "dana") -> AppTest:
    """The console as a browser tab would run it: signed in as ``token``'s agent, on ``page``."""
    at = AppTest.from_file(str(APP), default_timeout=30)
    if token:
        at.session_state["token"] = TOKENS.get(token, token)
    at.run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def rendered(at: AppTest) -> str:
    """Everything the page sent to the browser, every element's protobuf as text: the main area
    and the sidebar (each block iterates over itself and all below it) and the toasts (the only
    elements Streamlit puts anywhere else)."""
    nodes = (*at.main, *at.sidebar, *at.toast)
    return "\n".join(str(node.proto) for node in nodes if getattr(node, "proto", None) is not None)


@pytest.fixture
def console(hub, monkeypatch):
    """Open console pages against ``hub`` (a real hub, demo agents and contacts, no simulated calls)."""
    monkeypatch.setenv("CALLPOP_HUB_URL", hub.url)
    return open_console
