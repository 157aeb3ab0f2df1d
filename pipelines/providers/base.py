"""What a telephony provider is to the hub.

A provider turns its phone system's traffic into normalised ``CallEvent``s (handed to
``ProviderHost.ingest``) and places two-leg calls (``originate``), reporting their progress
through ``ProviderHost.dial_progress`` with the states of ``events.DIAL_STATES``. Providers
that receive HTTP (webhook, Voicenter) add routes to the hub's app; providers that hold a
connection (Asterisk AMI) run it between ``start`` and ``stop``.
"""

from __future__ import annotations

import abc
from typing import Any, Protocol

from ..dial import DialPlan
from ..events import CallEvent


class HangupUnsupported(Exception):
    """This provider (or this dial, as far as it knows) cannot be hung up from the hub: 409."""


class ProviderHost(Protocol):
    """The hub as providers see it."""

    async def ingest(self, event: CallEvent, provider: str, wait: bool = True) -> str:
        """Record and act on one event; returns 'accepted' or 'duplicate', once it is committed
        if ``wait`` (for a provider that acknowledges to the PBX)."""

    async def dial_progress(self, dial_id: str, state: str, error: str = "", reason: str = "") -> bool:
        """Report a dial's progress; False when the dial is unknown or already over."""

    def reject(self, source: str, reason: str, detail: str = "") -> None:
        """Log and record input the provider could not use (``rejects``); never a secret."""


class Provider(abc.ABC):
    name: str = "?"

    async def start(self, host: ProviderHost) -> None:
        self.host = host

    async def stop(self) -> None:
        pass

    @abc.abstractmethod
    async def originate(self, plan: DialPlan) -> None:
        """Ask the phone system to ring leg A, then connect it to leg B.

        Returns once the request is accepted; raise ``dial.DialRefused`` when the phone system
        refuses it at once. Later progress goes to ``host.dial_progress``."""

    async def hangup(self, plan: DialPlan) -> None:
        """Ask the phone system to end a dial (both legs); the hub then records it ``ended``.

        Raise ``HangupUnsupported`` (with the reason, for people) when it cannot."""
        raise HangupUnsupported(f"the {self.name} provider cannot hang up a dial; hang up on your phone")

    def status(self) -> dict[str, Any]:
        """For the console: {"name", "state": connected | connecting | down | n/a, "detail"}."""
        return {"name": self.name, "state": "connected", "detail": ""}
