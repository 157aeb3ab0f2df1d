"""Number normalisation: match on E.164, show national at home, send the CRM its format."""

import pytest

from pipelines.phone import NotAPhoneNumber, for_crm, match_key, normalise, parse_diallable, search_keys


@pytest.mark.parametrize("raw", ["0722776772", "072-277-6772", "+972 72-277-6772", "972722776772", "+972722776772"])
def test_every_spelling_of_the_seed_number_matches(raw):
    p = normalise(raw, "IL")
    assert p.e164 == "+972722776772" and p.display == "072-277-6772" and match_key(raw, "IL") == "+972722776772"


def test_foreign_numbers_display_internationally_and_home_ones_nationally():
    assert normalise("+1 212-555-0147", "IL").display == "+1 212-555-0147"
    assert normalise("+1 212-555-0147", "US").display == "(212) 555-0147"
    assert normalise("(212) 555-0147", "US").e164 == "+12125550147"


@pytest.mark.parametrize("fmt, sent", [("raw", "072-277-6772"), ("national", "0722776772"),
                                       ("e164", "+972722776772"), ("digits", "972722776772")])
def test_the_crm_gets_the_format_the_settings_ask_for(fmt, sent):
    assert for_crm(normalise("072-277-6772", "IL"), fmt) == sent


def test_invalid_numbers_keep_their_digits():
    p = normalise("12345", "IL")
    assert not p.valid and p.digits == "12345" and for_crm(p, "e164") == "12345"


@pytest.mark.parametrize("text", ["", "hello", "0722776772; rm -rf /", "12", "+44 9 0912 3456"])
def test_undiallable_text_is_refused_with_a_reason(text):
    with pytest.raises(NotAPhoneNumber):
        parse_diallable(text, "IL")


def test_tel_links_are_diallable():
    assert parse_diallable("tel:+972-72-277-6772;ext=1", "IL").e164 == "+972722776772"


def test_search_keys_cover_national_and_international_spellings():
    assert {"0722776772", "972722776772"} <= search_keys("+972 72 277 6772", "IL")


@pytest.mark.parametrize("text", [
    "+972 72 277 6772", "00972 72 277 6772", "\u200e+972\u00a072\u2009277\u202f6772",  # bidi mark, NBSP, thin
    "+٩٧٢ ٧٢ ٢٧٧ ٦٧٧٢", "+۹۷۲ ۷۲ ۲۷۷ ۶۷۷۲", "＋９７２ ７２ ２７７ ６７７２", "+९७२ ७२ २७७ ६७७२",  # four scripts
    "tel:+972-72-277-6772", "tel:%2B972%2072%20277%206772", "072\u2013277\u20136772",
])
def test_every_script_and_spacing_of_a_number_is_one_number(text):
    phone = parse_diallable(text, "IL")
    assert phone.e164 == "+972722776772" and phone.digits.isascii()


def test_00_is_an_international_prefix_wherever_the_hub_is():
    assert parse_diallable("00 44 20 7946 0321", "US").e164 == "+442079460321"
    assert parse_diallable("011 44 20 7946 0321", "US").e164 == "+442079460321"
