"""The contract's optional CONTACTS list (docs/crm-contract.md): cleaned like the answer's own
fields, capped, and a bad entry a recorded fault, never a crash."""

import json

from pipelines.crm_contract import CONTACTS_CAP, Candidate, RawAnswer, check_contract, parse_lookup
from pipelines.phone import for_crm, normalise


def answer(contacts, total="3"):
    return parse_lookup(200, json.dumps({"STATUS": "OK", "URL": "https://crm.example.com/search", "TOTAL": total,
                                         "CLIENTNAME": "Several", "CONTACTS": contacts}).encode())


def entry(i, **kw):
    return {"NAME": f"Person {i}", "COMPANY": "Law", "URL": f"https://crm.example.com/c/{i}", **kw}


def test_good_contacts_are_kept_in_order():
    r = answer([entry(0), entry(1), {"name": "Lower Case", "url": "https://crm.example.com/c/9"}])
    assert r.outcome == "multiple" and not r.faults
    assert r.contacts == (Candidate("Person 0", "Law", "https://crm.example.com/c/0"),
                          Candidate("Person 1", "Law", "https://crm.example.com/c/1"),
                          Candidate("Lower Case", "", "https://crm.example.com/c/9"))


def test_names_are_cleaned_like_clientname():
    r = answer([entry(0, NAME="\u202eevil\u202c\nname\x07 " + "x" * 200, COMPANY=["not", "text"])])
    (c,) = r.contacts
    assert c.name.startswith("evil name") and "\u202e" not in c.name and len(c.name) <= 121
    assert c.company == ""


def test_unsafe_urls_and_bad_entries_are_dropped_as_faults():
    r = answer([entry(0, URL="javascript:alert(1)"), "Person 1", entry(2, URL="https://crm.example.com@evil.example/"),
                entry(3, NAME=""), entry(4, URL="")])
    assert r.contacts == () and r.outcome == "multiple" and r.url == "https://crm.example.com/search"
    assert len(r.faults) == 5
    assert [c.name for c in answer(["bad", entry(1)]).contacts] == ["Person 1"]
    assert any("entry 1" in f and "only absolute http(s)" in f for f in r.faults)
    assert any("entry 2" in f and "not an object" in f for f in r.faults)
    assert any("entry 3" in f and "user name" in f for f in r.faults)
    assert any("entry 4" in f and "no NAME" in f for f in r.faults)
    assert any("entry 5" in f and "no URL" in f for f in r.faults)


def test_over_the_cap_keeps_the_first_few():
    r = answer([entry(i) for i in range(CONTACTS_CAP + 3)], total="8")
    assert [c.name for c in r.contacts] == [f"Person {i}" for i in range(CONTACTS_CAP)]
    assert r.faults == (f"CONTACTS lists {CONTACTS_CAP + 3} contacts: the first {CONTACTS_CAP} are offered",)


def test_contacts_that_are_not_a_list_are_ignored_with_a_fault():
    for value in ({"NAME": "x"}, "Person", 3):
        r = answer(value)
        assert r.outcome == "multiple" and r.contacts == () and "not a list" in r.faults[0]


def test_contacts_only_count_for_several_matches():
    assert answer([entry(0)], total="1").contacts == ()
    assert answer([entry(0)], total="0").contacts == ()
    assert answer(None).contacts == () and not answer(None).faults


def test_last9_is_the_last_nine_digits_whatever_the_prefix():
    assert for_crm(normalise("0722776772", "IL"), "last9") == "722776772"
    assert for_crm(normalise("+972 72-277-6772", "IL"), "last9") == "722776772"


def test_the_crm_check_judges_contacts():
    def judged(contacts):
        body = json.dumps({"STATUS": "OK", "URL": "https://crm.example.com/s", "TOTAL": "2", "CLIENTNAME": "Two",
                           "CONTACTS": contacts}).encode()
        checks = check_contract(parse_lookup(200, body), RawAnswer(200, "application/json", body), latency_ms=10,
                                deadline_ms=1500, max_bytes=262144)
        return next(c for c in checks if c.rule.startswith("CONTACTS"))
    good = judged([entry(0), entry(1)])
    assert good.passed and good.reason == "2 offered to the agent"
    bad = judged([entry(0), entry(1, URL="data:text/html,x")])
    assert bad.passed is False and "entry 2" in bad.reason
