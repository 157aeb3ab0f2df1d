"""The lookup contract (docs/crm-contract.md) applied to real-world answers."""

import json

import pytest

from pipelines.crm_contract import parse_lookup


def ok(**fields):
    return parse_lookup(200, json.dumps(fields).encode())


def test_the_seed_answer():
    r = ok(STATUS="OK", URL="http://www.yourdomain.com/contact_search.asp?user_phone=0722776772",
           CLIENTNAME="John Doe", TOTAL="1", COMPANY="Voicenter")
    assert (r.outcome, r.name, r.company, r.total, r.faults) == ("found", "John Doe", "Voicenter", 1, ())
    assert r.url.startswith("http://www.yourdomain.com/")


@pytest.mark.parametrize("total, outcome", [("0", "not_found"), (0, "not_found"), ("1", "found"), (3, "multiple"),
                                            ("12", "multiple")])
def test_total_as_string_or_number(total, outcome):
    assert ok(STATUS="OK", TOTAL=total, CLIENTNAME="x" if total not in ("0", 0) else "").outcome == outcome


def test_missing_total_with_a_name_is_one_match_and_extra_fields_are_ignored():
    r = ok(STATUS="OK", CLIENTNAME="Dana", EXTRA={"a": 1})
    assert r.outcome == "found" and r.total == 1 and r.company == "" and r.url == ""


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,hi", "file:///etc/passwd", "/relative/page",
                                 "ftp://x.example.com/", "http://"])
def test_only_absolute_http_urls_survive(url):
    r = ok(STATUS="OK", CLIENTNAME="Eve", TOTAL="1", URL=url)
    assert r.url == "" and r.outcome == "found" and any("dropped" in f for f in r.faults)


def test_names_are_text_without_control_characters_and_capped():
    r = ok(STATUS="OK", TOTAL=1, CLIENTNAME="Ann\x00\x1b[31m\nSmith" + "x" * 500, COMPANY=42)
    assert "\x00" not in r.name and "\x1b" not in r.name and "\n" not in r.name
    assert r.name.startswith("Ann [31m Smith") and len(r.name) <= 121 and r.company == "42"


def test_utf8_with_bom_and_hebrew():
    body = "\ufeff" + json.dumps({"STATUS": "OK", "CLIENTNAME": "יוסי כהן", "COMPANY": "בזק", "TOTAL": "1"},
                                 ensure_ascii=False)
    r = parse_lookup(200, body.encode("utf-8"))
    assert (r.name, r.company) == ("יוסי כהן", "בזק")


def test_a_declared_legacy_charset_is_honoured():
    body = json.dumps({"STATUS": "OK", "CLIENTNAME": "יוסי", "TOTAL": "1"}, ensure_ascii=False).encode("cp1255")
    assert parse_lookup(200, body, "application/json; charset=windows-1255").name == "יוסי"


@pytest.mark.parametrize("status, body, outcome, needle", [
    (500, b'{"STATUS":"OK"}', "http_error", "HTTP 500"),
    (404, b"", "http_error", "HTTP 404"),
    (200, b"<!DOCTYPE html><p>oops", "bad_response", "not JSON"),
    (200, b"", "bad_response", "empty"),
    (200, b"[1, 2]", "bad_response", "list"),
    (200, b"\xff\xfe{bad", "bad_response", "UTF-8"),
    (200, b'{"STATUS":"ERROR","MESSAGE":"db down"}', "bad_response", "STATUS"),
    (200, b'{"CLIENTNAME":"x"}', "bad_response", "STATUS is missing"),
])
def test_broken_answers_get_their_own_outcome_and_reason(status, body, outcome, needle):
    r = parse_lookup(status, body)
    assert r.outcome == outcome and needle in r.error and r.pop_status == "error"


def test_lowercase_fields_are_understood_but_flagged():
    r = ok(status="ok", clientname="Low Case", total="1")
    assert r.outcome == "found" and r.name == "Low Case"
    assert len(r.faults) == 2  # field names, and STATUS not in capitals


def test_bad_total_is_a_fault_not_a_failure():
    r = ok(STATUS="OK", CLIENTNAME="X", TOTAL="many")
    assert r.outcome == "found" and "TOTAL" in r.faults[0]
