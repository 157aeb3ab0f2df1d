"""The toll-fraud dial rules, pure: every tricky number, in every spelling, on either leg.

A PBX rings leg A first, so each number is tried three ways: as leg B (``to``), typed as leg A,
and as the agent's own mobile from the agents CSV (``leg_a: "mobile"``). All three must refuse
it with the same code.
"""

from __future__ import annotations

import pytest

from pipelines.agents import Agent
from pipelines.dial import DialRefused, DialRules, plan_dial
from pipelines.events import DialRequest

RULES = DialRules("IL", blocked_prefixes=("+9721919",))  # the demo region; defaults otherwise
NOA = Agent("noa", "Noa", "t", extension="201", mobile="054-812-4567", home="03-987-6543")
FINE = "054-555-7777"  # an ordinary Israeli mobile: the other leg of every case

ARABIC, PERSIAN, FULLWIDTH, DEVANAGARI = "٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵۶۷۸۹", "０１２３４５６７８９", "०१२३४५६७८९"


def script(text: str, digits: str) -> str:
    return text.translate(str.maketrans("0123456789", digits))


def spellings(e164_spaced: str) -> list[str]:
    """'+1 900 555 0123' as people, web pages and phones write it."""
    bare = e164_spaced[1:]
    return [e164_spaced, "00" + bare, e164_spaced.replace(" ", "\u00a0"), e164_spaced.replace(" ", "\u2009"),
            script(e164_spaced, ARABIC), "00" + script(bare, PERSIAN), "＋" + script(bare, FULLWIDTH),
            script(e164_spaced, DEVANAGARI), "tel:" + e164_spaced.replace(" ", "-"), "\u200e" + e164_spaced]


# (number as E.164 with spaces, the code every leg gets). 22 numbers x 10 spellings.
REFUSED = [
    ("+1 900 555 0123", "premium_rate"),         # US 1-900
    ("+44 909 876 5432", "premium_rate"),        # UK 09
    ("+44 871 234 5678", "premium_rate"),        # UK 087 (libphonenumber types it premium)
    ("+44 844 123 4567", "premium_rate"),        # UK 084
    ("+49 900 1 234567", "premium_rate"),        # DE 0900
    ("+972 1 900 72 72 72", "premium_rate"),     # IL 1-900
    ("+33 8 91 23 45 67", "premium_rate"),       # FR 089
    ("+979 1 2345 6789", "premium_rate"),         # international premium rate
    ("+49 137 1234567", "number_type_not_allowed"),   # DE 0137 shared cost (televoting)
    ("+49 180 1234567", "number_type_not_allowed"),   # DE 0180 shared cost
    ("+972 1 700 700 700", "number_type_not_allowed"),  # IL 1-700 shared cost
    ("+44 70 1234 5678", "number_type_not_allowed"),  # UK 070 personal number
    ("+49 700 12345678", "number_type_not_allowed"),  # DE 0700 personal number
    ("+44 55 1234 5678", "number_type_not_allowed"),  # UK 055 UAN
    ("+881 6 1234 5678", "high_cost_network"),   # Iridium
    ("+870 773 111 632", "high_cost_network"),   # Inmarsat
    ("+882 342 1234", "high_cost_network"),      # international networks
    ("+883 5100 1234 5678", "high_cost_network"),
    ("+53 5 123 4567", "country_not_allowed"),   # Cuba
    ("+252 61 1234567", "country_not_allowed"),  # Somalia
    ("+682 71 234", "country_not_allowed"),      # Cook Islands
    ("+688 901234", "country_not_allowed"),      # Tuvalu
    ("+1 809 234 5678", "country_not_allowed"),  # Dominican Republic: +1, yet not the US
    ("+1 876 210 1234", "country_not_allowed"),  # Jamaica
    ("+1 212 555 7777", "country_not_allowed"),  # the US itself: not the default region
]
CASES = [(text, code) for number, code in REFUSED for text in spellings(number)]
# The national spellings an Israeli agent types, and the hub's own prefix list.
CASES += [("1-900-72-72-72", "premium_rate"), ("1700-700-700", "number_type_not_allowed"),
          ("+972 1 919 555 555", "blocked_prefix"), ("001 900 555 0123", "premium_rate"),
          ("tel:+1-900-555-0123;phone-context=x", "premium_rate"), ("tel:%2B1%20900%20555%200123", "premium_rate")]


def plan(to=FINE, leg_a="extension", agent=NOA, rules=RULES):
    return plan_dial(agent, DialRequest(to=to, leg_a=leg_a), rules)


def refused(**kw) -> DialRefused:
    with pytest.raises(DialRefused) as e:
        plan(**kw)
    return e.value


@pytest.mark.parametrize("text, code", CASES)
def test_leg_b_is_refused(text, code):
    e = refused(to=text)
    assert (e.code, e.status) == (code, 422) and e.reason


@pytest.mark.parametrize("text, code", CASES)
def test_a_typed_leg_a_is_refused_with_the_same_code(text, code):
    assert refused(leg_a=text).code == code


@pytest.mark.parametrize("text, code", CASES)
def test_the_agents_own_mobile_from_the_csv_is_refused_too(text, code):
    crook = Agent("x", "X", "t", extension="209", mobile=text)
    e = refused(leg_a="mobile", agent=crook)
    assert e.code == code and "your mobile" in e.reason


@pytest.mark.parametrize("text, code", CASES)
def test_the_same_numbers_typed_as_leg_a_are_refused_even_when_allow_listed(text, code):
    """An admin's '*' for leg A does not open it to premium, satellite or foreign numbers."""
    assert refused(leg_a=text, rules=DialRules("IL", ("+9721919",), leg_a_allowed=("*",))).code == code


# --- what must still dial
@pytest.mark.parametrize("to, e164", [
    ("054-555-7777", "+972545557777"), ("03-555-7777", "+97235557777"), ("072-277-6772", "+972722776772"),
    ("٠٥٤-٥٥٥-٧٧٧٧", "+972545557777"), ("+972\u00a054\u00a0555\u00a07777", "+972545557777"),
    ("tel:+972-3-555-7777", "+97235557777"), ("1-800-72-72-72", "+9721800727272"),
    ("+800 1234 5678", "+80012345678"),  # international freephone: region 001, yet free
])
def test_ordinary_numbers_of_the_home_region_dial(to, e164):
    assert plan(to=to).leg_b == e164


def test_the_agents_own_phones_ring_first():
    assert plan(leg_a="mobile").leg_a == "+972548124567"
    assert plan(leg_a="home").leg_a == "+97239876543"
    typed = plan(leg_a="+972 54-812-4567")  # the own mobile, typed in
    assert (typed.leg_a, typed.leg_a_kind) == ("+972548124567", "number")


def test_a_typed_leg_a_must_be_the_agents_own_or_allow_listed():
    e = refused(leg_a="054-521-9999")
    assert (e.code, e.status) == ("leg_a_not_allowed", 422) and "054-521-9999" in e.reason
    listed = DialRules("IL", leg_a_allowed=("+972545219999", "+9723555"))
    assert plan(leg_a="054-521-9999", rules=listed).leg_a == "+972545219999"
    assert plan(leg_a="03-555-0100", rules=listed).leg_a == "+97235550100"  # a prefix
    assert refused(leg_a="03-556-0100", rules=listed).code == "leg_a_not_allowed"


def test_opted_in_countries_and_types_dial():
    assert plan(to="+1 212 555 7777", rules=DialRules("IL", allowed_countries=("IL", "US"))).leg_b == "+12125557777"
    assert refused(to="+1 876 210 1234", rules=DialRules("IL", allowed_countries=("IL", "US"))).code \
        == "country_not_allowed"
    anywhere = DialRules("IL", allowed_countries=("*",))
    assert plan(to="+53 5 123 4567", rules=anywhere).leg_b == "+5351234567"
    assert plan(to="+44 70 1234 5678", rules=DialRules("IL", allowed_countries=("GB",),
                                                       allowed_types=("PERSONAL_NUMBER",))).leg_b == "+447012345678"
    premium = DialRules("IL", allowed_types=("PREMIUM_RATE",))
    assert plan(to="1-900-72-72-72", rules=premium).leg_b == "+9721900727272"
    assert refused(to="1700-700-700", rules=premium).code == "number_type_not_allowed"
    assert plan(to="+881 6 1234 5678", rules=DialRules("IL", allowed_types=("NON_GEOGRAPHIC",))).leg_b \
        == "+881612345678"


def test_a_foreign_agents_own_mobile_needs_its_country_allowed():
    sarah = Agent("sarah", "Sarah", "t", extension="203", mobile="+1 212-555-0147")
    assert refused(leg_a="mobile", agent=sarah).code == "country_not_allowed"
    assert plan(leg_a="mobile", agent=sarah, rules=DialRules("IL", allowed_countries=("IL", "US"))).leg_a \
        == "+12125550147"


def test_blocked_prefixes_hold_even_for_opted_in_types():
    rules = DialRules("IL", blocked_prefixes=("+1900",), allowed_countries=("*",), allowed_types=("PREMIUM_RATE",))
    assert refused(to="+1 900 555 0123", rules=rules).code == "blocked_prefix"
    assert refused(leg_a="mobile", agent=Agent("x", "X", "t", mobile="+1 900 555 0123"), rules=rules).code \
        == "blocked_prefix"
