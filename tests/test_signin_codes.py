"""One-time sign-in codes, pure: readable, once, until they expire, one live code per agent."""

from __future__ import annotations

from pipelines.signin_codes import ALPHABET, Codes


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_code_is_readable_and_works_once_until_it_expires():
    clock = Clock()
    codes = Codes(ttl_s=600, clock=clock)
    code = codes.make("noa", "dana")
    assert len(code) == 9 and code[4] == "-" and set(code.replace("-", "")) <= set(ALPHABET)
    assert not set(code) & set("01OI")
    found, why = codes.take(code.lower().replace("-", ""))
    assert why == "" and (found.agent_id, found.made_by) == ("noa", "dana")
    assert codes.take(code) == (None, "used")
    late = codes.make("avi", "dana")
    clock.now += 600
    assert codes.take(late) == (None, "expired")
    assert codes.take(late) == (None, "unknown")  # forgotten once found expired


def test_a_new_code_replaces_the_agents_last_and_shapes_are_checked():
    codes = Codes(ttl_s=600)
    first, second = codes.make("noa", "dana"), codes.make("noa", "dana")
    assert codes.take(first) == (None, "unknown")
    assert codes.take(second)[1] == ""
    for bad in ("", "ABC", "ABCD-EFGH-IJKL", "ABCD_EFGH", None, 42):
        assert codes.take(bad) == (None, "malformed")
    kept = codes.make("avi", "dana")
    codes.forget("avi")
    assert codes.take(kept) == (None, "unknown")


def test_the_table_stays_bounded():
    codes = Codes(ttl_s=600, max_codes=3)
    made = [codes.make(f"a{i}", "dana") for i in range(5)]
    assert [codes.take(c)[1] for c in made] == ["unknown", "unknown", "", "", ""]
