"""What a dial is, as the hub and its providers share it: the two legs planned (``DialPlan``)
and the refusal of one (``DialRefused``). Apart from ``dial.py`` so that providers can speak of
dials without importing the dialer (which holds the provider)."""

from __future__ import annotations

import dataclasses


class DialRefused(Exception):
    """A dial that must not be placed; ``code`` is stable, ``reason`` is for people."""

    def __init__(self, code: str, reason: str, status: int = 422):
        super().__init__(reason)
        self.code, self.reason, self.status = code, reason, status


@dataclasses.dataclass(frozen=True)
class DialPlan:
    dial_id: str
    agent_id: str
    source: str
    leg_a: str        # what the provider dials first: an extension as is, else E.164
    leg_a_kind: str   # extension | mobile | home | number
    leg_b: str        # E.164
    leg_b_display: str
    extension: str    # the agent's extension (providers that originate from a device need it)
