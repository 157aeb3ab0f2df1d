"""The console's sign-in table: what a session cookie may bring back, and when it may not."""

from __future__ import annotations

import pytest

from console import signins


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_id_brings_the_token_back_until_it_expires():
    clock = Clock()
    table = signins.SignIns(lifetime=12 * 3600, clock=clock)
    session_id, expires = table.open("demo-token-noa")
    assert "demo-token-noa" not in session_id and len(session_id) >= 40 and expires == clock.now + 12 * 3600
    assert table.token(session_id) == "demo-token-noa"
    clock.now += 12 * 3600 - 1
    assert table.token(session_id) == "demo-token-noa"
    clock.now += 1
    assert table.token(session_id) is None


def test_forged_revoked_and_missing_ids_bring_nothing():
    table = signins.SignIns(lifetime=3600)
    session_id, _ = table.open("demo-token-noa")
    other, _ = table.open("demo-token-avi")
    assert session_id != other
    for forged in ("", None, 42, b"bytes", "x" * 43, session_id[:-1] + ("A" if session_id[-1] != "A" else "B"), "y" * 5000):
        assert table.token(forged) is None
    table.close(session_id)
    assert table.token(session_id) is None and table.token(other) == "demo-token-avi"


def test_the_table_stays_bounded():
    table = signins.SignIns(lifetime=3600, max_sessions=3)
    ids = [table.open(f"t{i}")[0] for i in range(5)]
    assert [table.token(i) for i in ids] == [None, None, "t2", "t3", "t4"]


def test_the_lifetime_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("CALLPOP_CONSOLE_SESSION_H", raising=False)
    assert signins.lifetime_s() == 12 * 3600
    monkeypatch.setenv("CALLPOP_CONSOLE_SESSION_H", "2")
    assert signins.lifetime_s() == 7200
    monkeypatch.setenv("CALLPOP_CONSOLE_SESSION_H", "nonsense")
    assert signins.lifetime_s() == 12 * 3600


def test_the_cookie_script_carries_only_an_id():
    script = signins.cookie_script("abc-DEF_123", 60)
    assert f"{signins.COOKIE}=abc-DEF_123; Path=/; Max-Age=60; SameSite=Strict" in script
    assert "Max-Age=0" in signins.cookie_script(None)
    with pytest.raises(ValueError):
        signins.cookie_script("x'; alert(1); '")
