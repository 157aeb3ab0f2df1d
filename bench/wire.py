"""Kept only for tests/test_http_pool.py (and tests/test_crm_client.py through it), which goes
with the hub's own HTTP pool: delete this module with it. Everything else imports testkit.wire."""

from testkit.wire import read_message  # noqa: F401
