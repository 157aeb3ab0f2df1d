"""CRM check: each rule of the contract judged (pure), and the console page, which asks the hub
(``POST /api/crm/check``; the lookup itself and what it refuses: tests/test_hub_crm_check.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from console.views import crm as crm_page
from pipelines import crm_contract as contract
from tests.console.conftest import open_console, rendered
from tests.support import ROOT
from tests.support.crm import FakeCrm

SEED = {"STATUS": "OK", "URL": "http://www.yourdomain.com/contact_search.asp?user_phone=0722776772",
        "CLIENTNAME": "John Doe", "TOTAL": "1", "COMPANY": "Voicenter"}


# --- the rules, pure ------------------------------------------------------------------------------

def judge(body: bytes | str, status: int = 200, content_type: str = "application/json", latency_ms: float = 50):
    body = body.encode() if isinstance(body, str) else body
    result = contract.parse_lookup(status, body, content_type)
    return contract.check_contract(result, contract.RawAnswer(status, content_type, body), latency_ms=latency_ms,
                                   deadline_ms=1500, max_bytes=262144)


def test_the_seed_answer_passes_every_rule():
    checks = judge(json.dumps(SEED))
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]


@pytest.mark.parametrize("body, rule, why", [
    ("<html><body>Error</body></html>", "Answer is a JSON object", "not JSON"),
    ("[1, 2]", "Answer is a JSON object", "a JSON list"),
    ({**SEED, "STATUS": "ERROR"}, 'STATUS is "OK"', "reports an error"),
    ({**SEED, "STATUS": "ok"}, 'STATUS is "OK"', "in capitals"),
    ({"status": "OK", "url": SEED["URL"], "clientname": "x", "total": "1"}, "Field names are in capitals", "status"),
    ({**SEED, "TOTAL": "lots"}, "TOTAL is a count", "not a count"),
    ({**SEED, "URL": "javascript:alert(1)"}, "URL is an absolute http(s) URL", "dropped"),
    ({**SEED, "URL": "/contacts/1"}, "URL is an absolute http(s) URL", "dropped"),
    ({**SEED, "CLIENTNAME": "<b>John</b>"}, "CLIENTNAME is plain text", "markup"),
    ({**SEED, "CLIENTNAME": "John\x07Doe"}, "CLIENTNAME is plain text", "control characters"),
    ({**SEED, "COMPANY": "x" * 500}, "COMPANY is plain text", "500 characters"),
    ({**SEED, "COMPANY": {"name": "x"}}, "COMPANY is plain text", "dropped"),
    ({**SEED, "CLIENTNAME": ""}, "TOTAL agrees with CLIENTNAME", "CLIENTNAME is empty"),
    ({**SEED, "TOTAL": "0"}, "TOTAL agrees with CLIENTNAME", "does not know"),
])
def test_each_broken_rule_is_named_with_its_reason(body, rule, why):
    checks = {c.rule: c for c in judge(json.dumps(body) if isinstance(body, dict) else body)}
    assert checks[rule].passed is False and why in checks[rule].reason, checks[rule]


def test_http_errors_and_encodings():
    checks = {c.rule: c for c in judge("oops", status=503)}
    assert checks["HTTP status is 2xx"].passed is False and checks['STATUS is "OK"'].passed is None
    bom = {c.rule: c for c in judge(b"\xef\xbb\xbf" + json.dumps(SEED).encode())}
    assert bom["Answer is UTF-8 text (BOM allowed)"].passed and "BOM" in bom["Answer is UTF-8 text (BOM allowed)"].reason
    latin = {c.rule: c for c in judge(json.dumps({**SEED, "CLIENTNAME": "José"}, ensure_ascii=False).encode("latin-1"),
                                      content_type="application/json; charset=latin-1")}
    assert latin["Answer is UTF-8 text (BOM allowed)"].passed is False
    assert latin["CLIENTNAME is plain text"].passed  # read with the declared charset, as the hub does
    slow = {c.rule: c for c in judge(json.dumps(SEED), latency_ms=2400)}
    assert slow["Answers within the deadline (1500 ms)"].passed is False


# --- the page ------------------------------------------------------------------------------------

def run_page(at, url: str, phone: str):
    at.text_input(key="crm_url").input(url)
    at.text_input(key="crm_phone").input(phone)
    run_button(at).click()
    return at.run()


def run_button(at):
    return next(b for b in at.button if b.label == "Run lookup")


def test_the_page_checks_the_sample_crm_by_default(hub, console):
    at = console("crm", token="dana")  # a supervisor
    assert at.text_input(key="crm_url").value == f"{hub.url}/crm/lookup"
    assert "Paste your CRM's lookup URL" in at.info[0].value
    run_button(at).click().run()
    assert not at.exception
    assert at.main.success[0].value == "The answer follows the CRM contract."
    rules = at.dataframe[0].value
    assert set(rules["Result"]) == {crm_page.MARK[True]}
    parsed = dict(at.dataframe[1].value.values.tolist())
    assert parsed["Name"] == "John Doe" and parsed["Pop status (sent to the agent)"] == "found"


@pytest.fixture
def console_on(start_hub, monkeypatch):
    """Open the CRM check of a hub started with these settings, as its supervisor."""
    def open_page(**settings):
        hub = start_hub(**settings)
        monkeypatch.setenv("CALLPOP_HUB_URL", hub.url)
        return open_console("crm", token="dana")
    return open_page


def test_the_page_flags_a_broken_answer(console_on):
    with FakeCrm() as fake:
        fake.respond("0527654000", {"status": "OK", "URL": "javascript:alert(1)", "CLIENTNAME": "<img src=x>",
                                    "TOTAL": "many"})
        at = console_on(crm_url=fake.url, crm_auth_header="X-Api-Key: sekrit-789")
        run_page(at, fake.url, "0527654000")
        assert fake.requests[-1]["header:x-api-key"] == "sekrit-789"  # sent by the hub, to its CRM only
    assert not at.exception
    assert at.main.error[0].value.startswith("4 contract rules broken"), [e.value for e in at.error]
    rules = at.dataframe[0].value.set_index("Rule")
    assert rules.loc["URL is an absolute http(s) URL", "Result"] == crm_page.MARK[False]
    assert rules.loc["TOTAL is a count", "Result"] == crm_page.MARK[False]
    assert rules.loc["CLIENTNAME is plain text", "Result"] == crm_page.MARK[False]
    assert rules.loc["Field names are in capitals", "Result"] == crm_page.MARK[False]
    assert '"CLIENTNAME": "<img src=x>"' in at.code[-1].value  # the raw answer, as text
    assert {m.label: m.value for m in at.metric}["Outcome"] == "found"
    assert "sekrit-789" not in rendered(at)


def test_a_key_in_the_configured_crm_url_is_masked_on_the_page_but_still_sent(console_on):
    with FakeCrm() as fake:
        fake.respond("0722776772", SEED)
        at = console_on(crm_url=fake.url + "?key=topsecret-42")
        assert at.text_input(key="crm_url").value == fake.url + "?key=%2A%2A%2A"
        run_button(at).click().run()
        assert fake.requests[-1]["key"] == "topsecret-42" and fake.requests[-1]["phone"] == "0722776772"
    assert at.main.success[0].value == "The answer follows the CRM contract."
    assert "topsecret-42" not in rendered(at)


def test_an_internal_address_is_refused_by_the_hub_and_said_on_the_page(console):
    at = console("crm", token="dana")
    run_page(at, "http://169.254.169.254/latest/meta-data/", "0722776772")
    assert not at.exception
    assert "refused" in at.main.error[0].value and "metadata" in at.main.error[0].value
    assert not at.dataframe  # no report


def test_the_page_needs_a_sign_in(console):
    at = console("crm", token=None)
    assert not at.main.text_input and "Sign in" in at.info[0].value


def test_the_page_is_for_supervisors(console):
    at = console("crm", token="noa")
    assert not at.main.text_input and "for supervisors" in at.info[0].value


def test_a_url_that_is_not_http_is_refused_before_any_request(console):
    at = console("crm", token="dana")
    run_page(at, "file:///etc/passwd", "0722776772")
    assert "must start with http" in at.main.error[0].value, [e.value for e in at.error]


def test_the_page_imports_no_hub_code():
    code = ("import sys, console.views.crm, console.session, console.sidebar; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pipelines'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
