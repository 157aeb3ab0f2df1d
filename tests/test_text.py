"""Text that reaches an agent's screen or the database, against the real hub: a CRM's names
without bidi or zero-width tricks, its URLs without a user name before the host, and event
fields only as a PBX sends them."""

from __future__ import annotations

import pytest

from tests.support.crm import FakeCrm, contract
from tests.support.hub import TOKENS, Agent, post_event, wait_rows


@pytest.fixture
def crm():
    with FakeCrm() as server:
        yield server


def test_a_name_cannot_reverse_or_hide_text_in_the_bubble(start_hub, crm):
    # U+202E turns the rest around on screen ("Bank of Evil" shown as "liv..."), U+200B/U+2066
    # hide or isolate parts; newlines would add lines to the bubble.
    crm.respond("0545550123", contract(name="John\u202e\u200b Doe\u2066\nOK", company="Acme\u200d Ltd"))
    hub = start_hub(crm_url=crm.url)
    noa = Agent(hub, TOKENS["noa"])
    assert post_event(hub, call_id="bidi-1", type="ringing", caller="0545550123", extension="201").status_code == 202
    pop = noa.recv("pop")
    assert pop["name"] == "John Doe OK" and pop["company"] == "Acme Ltd"
    row = wait_rows(hub, "SELECT client_name FROM lookups WHERE call_id = 'bidi-1'").iloc[0]
    assert row.client_name == "John Doe OK"


@pytest.mark.parametrize("url", ["https://crm.example.com@evil.example/c/1", "https://user:pw@crm.example.com/c/1",
                                 "javascript:alert(1)", "file:///etc/passwd"])
def test_a_pop_never_carries_a_url_with_userinfo_or_another_scheme(start_hub, crm, url):
    crm.respond("0545550124", contract(name="Jane Roe", url=url))
    hub = start_hub(crm_url=crm.url)
    noa = Agent(hub, TOKENS["noa"])
    assert post_event(hub, call_id="url-1", type="ringing", caller="0545550124", extension="201").status_code == 202
    pop = noa.recv("pop")
    assert pop["name"] == "Jane Roe" and not pop.get("url")
    row = wait_rows(hub, "SELECT url, contract_faults FROM lookups WHERE call_id = 'url-1'").iloc[0]
    assert not row.url and "dropped" in row.contract_faults


@pytest.mark.parametrize("field, value", [
    ("call_id", "abc\x7f"), ("call_id", "abc\x85def"), ("call_id", "line1\nline2"), ("call_id", "ＡＢＣ"),
    ("call_id", "a\u202eb"), ("extension", "20\x001"), ("id", "e\x9b1"), ("caller", "054\n5550123"),
    ("caller", "=HYPERLINK(1)"), ("cause", "NORMAL\r\nX-Forged: 1"),
])
def test_event_fields_take_only_what_a_pbx_sends(hub, field, value):
    event = {"call_id": "text-1", "type": "ringing", "caller": "0545550123", "extension": "201", field: value}
    r = post_event(hub, **event)
    assert r.status_code == 422 and r.json()["error"] == "invalid_request", r.text
    assert field in r.json()["message"]
    assert hub.hub.store.query("SELECT * FROM events WHERE call_id = 'text-1'").empty


def test_digits_of_any_script_are_stored_as_ascii(hub):
    noa = Agent(hub, TOKENS["noa"])
    # Arabic-Indic caller, fullwidth extension, an NBSP: the number the network meant
    r = post_event(hub, call_id="digits-1", type="ringing", caller="٠٧٢\u00a0٢٧٧٦٧٧٢", extension="２０１")
    assert r.status_code == 202, r.text
    pop = noa.recv("pop")
    assert pop["name"] == "John Doe" and pop["extension"] == "201"
    row = wait_rows(hub, "SELECT caller, extension FROM events WHERE call_id = 'digits-1'").iloc[0]
    assert (row.caller, row.extension) == ("072 2776772", "201")
