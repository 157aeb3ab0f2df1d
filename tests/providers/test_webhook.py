"""The webhook provider's dial POST: signed as docs/PROTOCOL.md says, checked by a real PBX-side
HTTP server with the recipe printed there, and refused at start when it would go unsigned to
another machine."""

import json
import re
import types

import pytest

from pipelines import settings as settings_mod
from tests.support import ROOT
from tests.support.hub import TOKENS, Agent, api
from tests.support.pbx import WebhookPbx

SECRET = "whsec-0123456789abcdef"


def documented_verify():
    """The verification function exactly as docs/PROTOCOL.md prints it."""
    text = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    code = re.search(r"<!-- verify-webhook .*?-->\n```python\n(.*?)```", text, re.S).group(1)
    scope: dict = {}
    exec(code, scope)  # noqa: S102 - our own documentation, run to prove it right
    return scope["verify"]


class Pbx(WebhookPbx):
    """The PBX's dial endpoint, answering 202 when the signature checks out with its secret (or
    when it checks nothing), else 401; its ``verify`` is the documented recipe."""

    def __init__(self, secret: str | None):
        self.verify = documented_verify()
        super().__init__(None if secret is None else lambda headers, body: self.verify(
            secret, headers.get("X-Callpop-Timestamp", ""), headers.get("X-Callpop-Signature", ""), body))


def test_the_dial_post_is_signed_and_the_documented_recipe_verifies_it(start_hub):
    with Pbx(SECRET) as pbx:
        hub = start_hub(provider="webhook", webhook_dial_url=pbx.url, webhook_secret=SECRET)
        noa = Agent(hub, TOKENS["noa"])
        dial_id = api(hub, "POST", "/api/dial", TOKENS["noa"], json={"to": "0722776772"}).json()["dial_id"]
        headers, body = pbx.last()
        assert json.loads(body)["dial_id"] == dial_id
        timestamp, signature = headers["X-Callpop-Timestamp"], headers["X-Callpop-Signature"]
        assert re.fullmatch(r"sha256=[0-9a-f]{64}", signature)
        assert pbx.verify(SECRET, timestamp, signature, body)
        assert not pbx.verify("another-secret-0123456789", timestamp, signature, body)
        assert not pbx.verify(SECRET, timestamp, signature, body.replace(b"+972722776772", b"+972722776773"))
        assert not pbx.verify(SECRET, str(int(timestamp) + 1), signature, body)  # the time is signed too
        clock = pbx.verify.__globals__  # the recipe's own module scope: replay the request 5 min later
        real = clock["time"]
        clock["time"] = types.SimpleNamespace(time=lambda: real.time() + 301)
        try:
            assert not pbx.verify(SECRET, timestamp, signature, body)
        finally:
            clock["time"] = real
        assert noa.recv("dial")["state"] == "requested"
        noa.nothing("dial", within=0.5)  # the PBX took it (202): no failure follows


def test_a_pbx_that_refuses_the_signature_fails_the_dial(start_hub):
    with Pbx("the-pbx-has-another-key") as pbx:
        hub = start_hub(provider="webhook", webhook_dial_url=pbx.url, webhook_secret=SECRET)
        noa = Agent(hub, TOKENS["noa"])
        api(hub, "POST", "/api/dial", TOKENS["noa"], json={"to": "0722776772"})
        failed = noa.recv("dial", where=lambda m: m["state"] == "failed")
        assert failed["error"] == "provider_refused" and "401" in failed["reason"]


def test_without_a_secret_only_a_dial_url_on_this_machine_is_allowed_and_it_goes_unsigned(start_hub):
    with pytest.raises(settings_mod.SettingsError, match="CALLPOP_WEBHOOK_SECRET is required.*pbx.example.com"):
        settings_mod.load(env_file=None, provider="webhook", webhook_dial_url="https://pbx.example.com/dial")
    with pytest.raises(settings_mod.SettingsError, match="CALLPOP_WEBHOOK_SECRET must be at least 16"):
        settings_mod.load(env_file=None, provider="webhook", webhook_dial_url="https://pbx.example.com/dial",
                          webhook_secret="short")
    assert settings_mod.load(env_file=None, provider="webhook", webhook_dial_url="https://pbx.example.com/dial",
                             webhook_secret=SECRET).webhook_dial_url
    with Pbx(None) as pbx:
        hub = start_hub(provider="webhook", webhook_dial_url=pbx.url)
        noa = Agent(hub, TOKENS["noa"])
        api(hub, "POST", "/api/dial", TOKENS["noa"], json={"to": "0722776772"})
        noa.recv("dial")
        headers, _ = pbx.last()
        assert "X-Callpop-Signature" not in headers and "X-Callpop-Timestamp" not in headers
        assert "unsigned" in api(hub, "GET", "/api/status", TOKENS["dana"]).json()["provider"]["detail"]
