import os

import pytest

from tests.deploy.running import CADDY
from tests.support import unavailable


@pytest.fixture(scope="module")
def caddy_path() -> str:
    """Under CI=true caddy must be there (make test installs it): missing, the test fails;
    elsewhere it is skipped."""
    if not os.access(CADDY, os.X_OK):
        unavailable(f"caddy not found at {CADDY}: apt-get install caddy (make test does)")
    return CADDY
