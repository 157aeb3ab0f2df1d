"""Console sign-ins that survive a reload or a new tab, without the agent token ever reaching the browser.

After a sign-in the console keeps the token here, server-side, under a random session id with an
expiry (``CALLPOP_CONSOLE_SESSION_H``, 12 h by default); the browser gets only that opaque id, in
a cookie. A reload sends the cookie back (``st.context.cookies``) and the session is found again.
Sign-out revokes the id, so a copied cookie is worth nothing afterwards; an id that is unknown
(forged, or from before a console restart: the table lives in this process) or expired asks for
a sign-in. The table is keyed by the id's SHA-256, so a lookup compares digests, not secrets.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import threading
import time
from typing import Callable

COOKIE = "callpop_console_session"
DEFAULT_HOURS = 12.0
MAX_SESSIONS = 10_000  # a bound on memory: the oldest go first
CODE = re.compile(r"^[A-Za-z0-9]{4}[- ]?[A-Za-z0-9]{4}$")  # a one-time sign-in code (pipelines/signin_codes.py)


def lifetime_s() -> float:
    """CALLPOP_CONSOLE_SESSION_H in seconds (the settings table documents it; the console reads
    the environment, as it does CALLPOP_HUB_URL), between 5 minutes and 30 days."""
    try:
        hours = float(os.environ.get("CALLPOP_CONSOLE_SESSION_H") or DEFAULT_HOURS)
    except ValueError:
        hours = DEFAULT_HOURS
    return min(max(hours, 1 / 12), 24 * 30) * 3600


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SignIns:
    """Session id -> (agent token, expiry). Thread-safe: every browser tab runs on its own thread."""

    def __init__(self, lifetime: float, clock: Callable[[], float] = time.time, max_sessions: int = MAX_SESSIONS):
        self.lifetime, self.clock, self.max_sessions = lifetime, clock, max_sessions
        self._lock = threading.Lock()
        self._by_digest: dict[str, tuple[str, float]] = {}

    def open(self, token: str) -> tuple[str, float]:
        """A new session for ``token``: (its id, for the cookie; when it expires, epoch seconds)."""
        session_id = secrets.token_urlsafe(32)
        expires = self.clock() + self.lifetime
        with self._lock:
            self._prune()
            while len(self._by_digest) >= self.max_sessions:
                self._by_digest.pop(next(iter(self._by_digest)))
            self._by_digest[_digest(session_id)] = (token, expires)
        return session_id, expires

    def token(self, session_id: str | None) -> str | None:
        """The token of a live session; None for an unknown, revoked or expired id."""
        if not isinstance(session_id, str) or not session_id or len(session_id) > 200:
            return None
        key = _digest(session_id)
        with self._lock:
            found = self._by_digest.get(key)
            if found is None:
                return None
            if self.clock() >= found[1]:
                del self._by_digest[key]
                return None
            return found[0]

    def close(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._by_digest.pop(_digest(session_id), None)

    def _prune(self) -> None:
        now = self.clock()
        for key in [k for k, (_, expires) in self._by_digest.items() if now >= expires]:
            del self._by_digest[key]


def code_in(text: str) -> str | None:
    """The one-time sign-in code in what was typed ("ABCD-EFGH", or the sign-in link the
    Agents page gives, ``https://hub/signin#code=ABCD-EFGH``), else None (then it is a token)."""
    text = (text or "").strip()
    if "#code=" in text:
        text = text.split("#code=", 1)[1].split("&", 1)[0]
    return text.upper() if CODE.match(text) else None


def cookie_script(session_id: str | None, max_age_s: float = 0) -> str:
    """The page script that stores the id in a cookie (``None``: deletes it). SameSite=Strict, and
    Secure when the console is served over HTTPS. Not HttpOnly (script-set): the id alone, never
    the token, and revocable."""
    value = session_id or ""
    age = int(max_age_s) if session_id else 0
    if any(c not in "-_" and not c.isalnum() for c in value):  # token_urlsafe's alphabet only
        raise ValueError("not a session id")
    return ("<script>document.cookie = '" + COOKIE + "=" + value + "; Path=/; Max-Age=" + str(age)
            + "; SameSite=Strict' + (location.protocol === 'https:' ? '; Secure' : '');</script>")
