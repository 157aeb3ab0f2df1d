import pytest

from pipelines.server import BackgroundHub
from tests.support import hub_settings


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
