import os

import pytest

from pipelines.server import BackgroundHub
from tests.support.hub import hub_settings


# A test's hub gets the settings the test gives it, never those of the shell that runs the suite.
for _name in [n for n in os.environ if n.startswith("CALLPOP_") and n != "CALLPOP_CHROMIUM"]:
    del os.environ[_name]


@pytest.fixture
def start_hub(tmp_path):
    """Start real hubs with setting overrides; all are stopped after the test."""
    hubs = []

    def start(**overrides):
        bg = BackgroundHub(hub_settings(tmp_path, **overrides)).__enter__()
        hubs.append(bg)
        return bg

    yield start
    for bg in hubs:
        bg.stop()


@pytest.fixture
def hub(start_hub):
    return start_hub()
