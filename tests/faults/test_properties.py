"""Properties of the two parsers that see the outside world's input: phone numbers (from PBXs,
web pages, people) and CRM answers (from whatever the customer's CRM sends)."""

from __future__ import annotations

import json
import unicodedata

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipelines.crm_contract import OUTCOMES, TEXT_CAP, clean_text, parse_lookup, safe_url
from pipelines.phone import NotAPhoneNumber, for_crm, match_key, normalise, parse_diallable, search_keys

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REGIONS = st.sampled_from(["IL", "US", "GB", "FR", "DE"])
FORMATS = st.sampled_from(["raw", "national", "e164", "digits"])
# Text shaped like phone numbers (digits, separators, a leading + or 00) and text that is not.
NUMBERISH = st.one_of(
    st.from_regex(r"\A(\+|00)?[\d\s().\-/]{0,25}\Z"),
    st.text(max_size=40),
    st.builds(lambda cc, n: f"+{cc} {n}", st.integers(1, 999), st.integers(0, 10 ** 12)),
)


def control_free(text: str) -> bool:
    return not any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text)


# --- phone numbers
@SETTINGS
@given(NUMBERISH, REGIONS)
@example("0722776772", "IL")
@example("972722776772", "IL")
@example("", "IL")
@example("+", "IL")
@example("\x00", "IL")
def test_normalise_never_raises_and_keeps_the_digits(raw, region):
    phone = normalise(raw, region)
    # Any script's digits, as ASCII (a number written in Arabic-Indic digits is the same number).
    assert phone.digits == "".join(str(unicodedata.decimal(ch)) for ch in raw.strip() if ch.isdecimal())
    if phone.valid:
        assert phone.e164.startswith("+") and phone.e164[1:].isdigit() and 8 <= len(phone.e164) <= 16
        assert normalise(phone.e164, region).e164 == phone.e164  # E.164 is a fixed point
        assert match_key(phone.international, region) == phone.e164  # every spelling meets on one key
    else:
        assert match_key(raw, region) == phone.digits


@SETTINGS
@given(NUMBERISH, REGIONS, FORMATS)
def test_the_crm_gets_a_plain_value_in_the_format_asked(raw, region, fmt):
    value = for_crm(normalise(raw, region), fmt)
    assert isinstance(value, str)
    if fmt in ("digits", "national"):
        assert value == "" or value.isdigit()
    if fmt == "e164" and normalise(raw, region).valid:
        assert value.startswith("+") and value[1:].isdigit()


@SETTINGS
@given(NUMBERISH, REGIONS)
def test_parse_diallable_gives_a_valid_number_or_a_reason(text, region):
    try:
        phone = parse_diallable(text, region)
    except NotAPhoneNumber as e:
        assert str(e)  # always a reason for the agent
        return
    assert phone.valid and phone.e164.startswith("+")


@SETTINGS
@given(st.text(max_size=60), REGIONS)
def test_search_keys_are_digit_strings(text, region):
    assert all(k.isdigit() for k in search_keys(text, region))


# --- the CRM contract parser
JSONISH = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
                       lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
                       max_leaves=10)
FIELD = st.sampled_from(["STATUS", "status", "URL", "Url", "CLIENTNAME", "TOTAL", "COMPANY", "EXTRA", "url "])
ANSWER = st.dictionaries(FIELD, st.one_of(
    JSONISH, st.sampled_from(["OK", "ok", " OK ", "ERROR", "0", "1", "2", "-1", "1e3", "NaN"]),
    st.sampled_from(["https://crm.example.com/c/1", "http://x", "javascript:alert(1)", "JavaScript:alert(1)",
                     "data:text/html,hi", "file:///etc/passwd", "/relative", "//evil.example", "https://",
                     "https://a b", "http://ok.example/\r\nSet-Cookie: x", " https://spaces.example "]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=200),
), max_size=7)


def bodies():
    """Bytes a CRM may answer: contract-like JSON, JSON of any shape, any bytes."""
    return st.one_of(
        ANSWER.map(lambda d: json.dumps(d).encode()),
        ANSWER.map(lambda d: b"\xef\xbb\xbf" + json.dumps(d, ensure_ascii=False).encode()),
        JSONISH.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=300),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )


CONTENT_TYPES = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/html",
                                 "application/json; charset=latin-1", "application/json; charset=nonsense",
                                 "application/json; charset=utf-16", ""])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(100, 599), bodies(), CONTENT_TYPES)
@example(200, b'{"STATUS":"OK","URL":"javascript:alert(1)","CLIENTNAME":"Eve\\u0000\\u2028x","TOTAL":"1"}',
         "application/json")
@example(200, b"\xff\xfe{", "application/json")
@example(200, b"[1,2]", "application/json")
def test_parse_lookup_never_raises_and_only_lets_safe_values_through(status, body, content_type):
    r = parse_lookup(status, body, content_type)
    assert r.outcome in OUTCOMES
    assert r.url == "" or (r.url.lower().startswith(("http://", "https://")) and
                           not any(c in r.url for c in "\r\n\t "))
    for text in (r.name, r.company):
        assert isinstance(text, str) and control_free(text) and len(text) <= TEXT_CAP + 1
    assert isinstance(r.total, int) and r.total >= 0
    if r.outcome in ("found", "multiple", "not_found"):
        assert 200 <= status < 300
        assert r.outcome == ("not_found" if r.total == 0 else "found" if r.total == 1 else "multiple")
    else:
        assert r.error  # every failure says why
    assert r.pop_status in ("found", "multiple", "not_found", "error")


@SETTINGS
@given(JSONISH)
def test_clean_text_is_one_line_of_plain_text(value):
    text = clean_text(value)
    assert control_free(text) and text == text.strip() and "  " not in text and len(text) <= TEXT_CAP + 1


@SETTINGS
@given(st.one_of(st.text(max_size=80), JSONISH))
def test_safe_url_keeps_only_absolute_http_urls(value):
    url, fault = safe_url(value)
    assert (url == "") or (url.split(":", 1)[0].lower() in ("http", "https") and fault is None)
    if url == "" and value not in (None, ""):
        assert fault
