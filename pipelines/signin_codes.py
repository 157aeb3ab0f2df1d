"""One-time sign-in codes: a supervisor makes one for an agent; the agent's extension (or the
console) trades it once for a token of its own (``POST /api/signin``, pipelines/agent_admin.py).

A code is eight letters and digits people can read aloud and type (``ABCD-EFGH``: no 0/O or 1/I),
about 40 bits; it lives ``CALLPOP_SIGNIN_CODE_TTL_S`` (10 minutes by default), works once, and
tries are throttled per client, so it cannot be guessed in its lifetime. Only the codes'
digests are kept, in memory: a hub restart forgets them (a supervisor makes another). In cluster
mode the hubs share them in Redis instead (``cluster/counters.py``: the same rules, digests too).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
import time
from typing import Callable

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read over the phone
LENGTH = 8
MAX_CODES = 1000  # a bound on memory: the oldest go first
SHAPE = re.compile(r"^[A-Za-z0-9]{4}[- ]?[A-Za-z0-9]{4}$")
ASK = " (ask your supervisor for a new one)"
WHY = {  # why a code was refused -> (HTTP status, what the person is told)
    "malformed": (422, "a sign-in code is 8 letters and digits, like ABCD-EFGH"),
    "unknown": (404, "no such sign-in code" + ASK),
    "expired": (410, "this sign-in code has expired" + ASK),
    "used": (410, "this sign-in code was used already" + ASK),
}


def normalise(text: str) -> str:
    """What a person typed, as the code it means: upper case, without spaces or the dash."""
    return re.sub(r"[\s-]", "", str(text)).upper()


def digest(code: str) -> str:
    """What is kept of a code: never the code itself."""
    return hashlib.sha256(normalise(code).encode()).hexdigest()


def new_code() -> str:
    """A fresh code as people see it: "ABCD-EFGH"."""
    code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return f"{code[:4]}-{code[4:]}"


def well_formed(text: object) -> bool:
    return isinstance(text, str) and bool(SHAPE.match(text.strip()))


@dataclasses.dataclass
class Code:
    agent_id: str
    made_by: str
    expires: float  # on the monotonic clock
    used: bool = False


class Codes:
    """Digest of a code -> whose it is and until when. One live code per agent: a new one
    replaces the agent's last."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic, max_codes: int = MAX_CODES):
        self.ttl_s, self.clock, self.max_codes = ttl_s, clock, max_codes
        self._by_digest: dict[str, Code] = {}

    def make(self, agent_id: str, made_by: str) -> str:
        """A new code for ``agent_id`` ("ABCD-EFGH"), shown once to the supervisor who asked."""
        self._prune()
        for key in [k for k, c in self._by_digest.items() if c.agent_id == agent_id]:
            del self._by_digest[key]
        while len(self._by_digest) >= self.max_codes:
            del self._by_digest[next(iter(self._by_digest))]
        code = new_code()
        self._by_digest[digest(code)] = Code(agent_id, made_by, self.clock() + self.ttl_s)
        return code

    def take(self, text: str) -> tuple[Code | None, str]:
        """(the code's record, "") the first time a live code is given; else (None, why not):
        one of ``WHY``'s keys."""
        if not well_formed(text):
            return None, "malformed"
        key = digest(text)
        found = self._by_digest.get(key)
        if found is None:
            return None, "unknown"
        if self.clock() >= found.expires:
            del self._by_digest[key]
            return None, "expired"
        if found.used:
            return None, "used"
        found.used = True  # kept until it expires, to say "used" rather than "unknown"
        return found, ""

    def forget(self, agent_id: str) -> None:
        """Drop the agent's codes (it was disabled or removed)."""
        for key in [k for k, c in self._by_digest.items() if c.agent_id == agent_id]:
            del self._by_digest[key]

    def _prune(self) -> None:
        now = self.clock()
        for key in [k for k, c in self._by_digest.items() if now >= c.expires]:
            del self._by_digest[key]
