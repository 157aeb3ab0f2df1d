"""CRM check: the hub's own lookup path run against real CRMs on port 0, each rule judged."""

from __future__ import annotations

import json

import pytest

from console import crmcheck
from console.views import crm as crm_page
from pipelines import crm
from pipelines import settings as settings_mod
from tests.console.conftest import rendered
from tests.crmserver import FakeCrm, contract

SEED = {"STATUS": "OK", "URL": "http://www.yourdomain.com/contact_search.asp?user_phone=0722776772",
        "CLIENTNAME": "John Doe", "TOTAL": "1", "COMPANY": "Voicenter"}


def settings(**overrides):
    return settings_mod.load(env_file=None, **overrides)


def verdicts(report) -> dict[str, bool | None]:
    return {r.rule: r.passed for r in report.rules}


def failed(report) -> set[str]:
    return {r.rule for r in report.broken}


# --- the rules, pure ------------------------------------------------------------------------------

def judge(body: bytes | str, status: int = 200, content_type: str = "application/json", latency_ms: float = 50):
    body = body.encode() if isinstance(body, str) else body
    result = crm.parse_lookup(status, body, content_type)
    return crm.check_contract(result, crm.RawAnswer(status, content_type, body), latency_ms=latency_ms,
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


# --- the lookup, as the hub runs it ---------------------------------------------------------------

def test_a_good_crm_passes_and_the_number_goes_in_the_chosen_format():
    with FakeCrm() as fake:
        fake.respond("0722776772", SEED)
        fake.respond("+972722776772", SEED)
        report = crmcheck.check(settings(), fake.url, "072-277-6772", phone_format="national")
        assert report.result.outcome == "found" and not report.broken
        assert report.sent_as == "0722776772" and fake.requests[-1]["phone"] == "0722776772"
        assert fake.requests[-1]["header:user-agent"] == "callpop"  # the hub's HTTP client
        report = crmcheck.check(settings(), fake.url, "0722776772", phone_format="e164")
        assert report.sent_as == "+972722776772" and report.result.name == "John Doe"
    assert json.loads(report.body_text()) == SEED
    assert report.request.startswith("GET http://127.0.0.1:") and "phone=%2B972722776772" in report.request


def test_broken_crms_are_flagged():
    with FakeCrm() as fake:
        fake.respond("1", "<html>Server Error</html>", content_type="text/html")
        fake.respond("2", "nope", status=500)
        fake.respond("3", redirect_loop=True)
        fake.respond("4", contract("Slow Sam"), delay=0.4)
        fake.respond("5", "x" * 5000)
        s = settings(crm_deadline_ms=200, crm_late_timeout_ms=2000, crm_max_bytes=1000)
        html = crmcheck.check(s, fake.url, "1", phone_format="raw")
        assert html.result.outcome == "bad_response" and failed(html) == {"Answer is a JSON object"}
        assert "<html>Server Error</html>" in html.body_text()
        assert failed(crmcheck.check(s, fake.url, "2", phone_format="raw")) == {"HTTP status is 2xx"}
        loop = crmcheck.check(s, fake.url, "3", phone_format="raw")
        assert loop.result.outcome == "http_error" and "redirect" in loop.rules[0].reason and loop.answer is None
        slow = crmcheck.check(s, fake.url, "4", phone_format="raw")
        assert slow.result.outcome == "found" and failed(slow) == {"Answers within the deadline (200 ms)"}
        big = crmcheck.check(s, fake.url, "5", phone_format="raw")
        assert big.result.outcome == "bad_response" and failed(big) == {"Answer is at most 1000 bytes"}
        url = fake.url
    refused = crmcheck.check(settings(), url, "0722776772")  # the server is gone: connection refused
    assert refused.result.outcome == "http_error" and refused.rules[0].passed is False
    assert "cannot connect" in refused.rules[0].reason


def test_the_crm_credential_goes_only_to_the_configured_crm_and_is_never_shown():
    secret = "Authorization: Bearer crm-secret-123"
    with FakeCrm() as mine, FakeCrm() as other:
        s = settings(crm_url=mine.url, crm_auth_header=secret)
        report = crmcheck.check(s, mine.url + "?apikey=k-456", "0722776772")
        assert mine.requests[-1]["header:authorization"] == "Bearer crm-secret-123" and report.auth_sent
        assert mine.requests[-1]["apikey"] == "k-456"  # the URL's own query survives (as in the hub)
        assert "k-456" not in report.request and "apikey=%2A%2A%2A" in report.request
        crmcheck.check(s, other.url, "0722776772")
        assert "header:authorization" not in other.requests[-1]


# --- the page ------------------------------------------------------------------------------------

def run_page(at, url: str, phone: str):
    at.text_input(key="crm_url").input(url)
    at.text_input(key="crm_phone").input(phone)
    run_button(at).click()
    return at.run()


def run_button(at):
    return next(b for b in at.button if b.label == "Run lookup")


def test_the_page_checks_the_sample_crm_by_default(hub, console):
    at = console("crm", token="noa")
    assert at.text_input(key="crm_url").value == f"{hub.url}/crm/lookup"
    assert "Paste your CRM's lookup URL" in at.info[0].value
    run_button(at).click().run()
    assert not at.exception
    assert at.main.success[0].value == "The answer follows the CRM contract."
    rules = at.dataframe[0].value
    assert set(rules["Result"]) == {crm_page.MARK[True]}
    parsed = dict(at.dataframe[1].value.values.tolist())
    assert parsed["Name"] == "John Doe" and parsed["Pop status (sent to the agent)"] == "found"


def test_the_page_flags_a_broken_answer(console, monkeypatch):
    monkeypatch.setenv("CALLPOP_CRM_AUTH_HEADER", "X-Api-Key: sekrit-789")
    with FakeCrm() as fake:
        fake.respond("0527654000", {"status": "OK", "URL": "javascript:alert(1)", "CLIENTNAME": "<img src=x>",
                                    "TOTAL": "many"})
        at = console("crm", token="noa")
        run_page(at, fake.url, "0527654000")
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


def test_a_key_in_the_configured_crm_url_is_masked_on_the_page_but_still_sent(console, monkeypatch):
    with FakeCrm() as fake:
        fake.respond("0722776772", SEED)
        monkeypatch.setenv("CALLPOP_CRM_URL", fake.url + "?key=topsecret-42")
        at = console("crm", token="noa")
        assert at.text_input(key="crm_url").value == fake.url + "?key=%2A%2A%2A"
        run_button(at).click().run()
        assert fake.requests[-1]["key"] == "topsecret-42" and fake.requests[-1]["phone"] == "0722776772"
    assert at.main.success[0].value == "The answer follows the CRM contract."
    assert "topsecret-42" not in rendered(at)


def test_the_page_needs_a_sign_in(console):
    at = console("crm", token=None)
    assert not at.main.text_input and "Sign in" in at.info[0].value


def test_a_url_that_is_not_http_is_refused_before_any_request(console):
    at = console("crm", token="noa")
    run_page(at, "file:///etc/passwd", "0722776772")
    assert "must start with http" in at.main.error[0].value, [e.value for e in at.error]
    assert crm_page.default_url(settings()).endswith("/crm/lookup")
