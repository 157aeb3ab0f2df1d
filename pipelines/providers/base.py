"""What a telephony provider is to the hub, and the hub to a provider.

A provider turns its phone system's traffic into normalised ``CallEvent``s (handed to
``ProviderHost.ingest``) and places two-leg calls (``originate``), reporting their progress
through ``ProviderHost.dial_progress`` with the states of ``events.DIAL_STATES``. Providers
that receive HTTP (Voicenter) give the hub their routes (``routes``); providers that hold a
connection (Asterisk AMI) run it between ``start`` and ``stop``.

``ProviderHost`` is everything a provider may ask of the hub: a provider never reaches into the
hub's parts (store, call book, popper, dialer), so each can change without the providers.
This module imports nothing of the hub's machinery, only the data it shares with providers.
"""

from __future__ import annotations

import abc
import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from ..crm_contract import LookupResult
from ..dialplan import DialPlan
from ..events import CallEvent

if TYPE_CHECKING:
    import httpx
    from fastapi import APIRouter

    from ..agents import Agents
    from ..contacts import Contacts
    from ..settings import Settings


class HangupUnsupported(Exception):
    """This provider (or this dial, as far as it knows) cannot be hung up from the hub: 409."""


@dataclasses.dataclass(frozen=True)
class CallRecord:
    """A phone system's record of a call that is over (a CDR), for ``ProviderHost.complete_call``."""
    call_id: str
    direction: str            # inbound | outbound
    customer: str             # the other party's number, as the phone system wrote it
    callee: str               # the number called (the DID for an inbound call)
    extension: str = ""       # ours (not the phone system's user name); '' when unknown
    answered: bool = False
    started: datetime | None = None  # naive UTC
    duration_s: int | None = None
    ring_s: int | None = None
    talk_s: int | None = None
    status: str = ""          # the phone system's final status word (e.g. ANSWER, NOANSWER)
    cause: str = ""           # why it ended, for people
    recording_url: str = ""


@dataclasses.dataclass(frozen=True)
class DialRecord:
    """What a phone system says about a dial, for ``ProviderHost.record_dial``: its own id for the
    call, and, from a leg's record (``leg`` 1 or 2), that leg's final status; leg 2's record (the
    call that followed the bridge) carries the duration and the recording."""
    provider_call_id: str
    leg: int = 0
    leg_status: str = ""
    duration_s: int | None = None
    recording_url: str = ""


class ProviderHost(Protocol):
    """The hub as providers see it. ``settings``, ``agents`` and ``contacts`` are there when the
    provider is made; ``http`` and the operations from ``Provider.start`` on."""

    settings: "Settings"
    agents: "Agents"
    contacts: "Contacts"
    http: "httpx.AsyncClient"  # the hub's client (its proxies, TLS and limits); closed by the hub

    async def ingest(self, event: CallEvent, provider: str, wait: bool = True) -> str:
        """Record and act on one event; returns 'accepted' or 'duplicate', once it is committed
        if ``wait`` (for a provider that acknowledges to the PBX)."""

    async def dial_progress(self, dial_id: str, state: str, error: str = "", reason: str = "") -> bool:
        """Report a dial's progress; False when the dial is unknown or already over."""

    def dial_state(self, dial_id: str) -> str | None:
        """The state of a dial in progress (or just over); None when the hub no longer holds it."""

    def reject(self, source: str, reason: str, detail: str = "") -> None:
        """Log and record input the provider could not use (``rejects``); never a secret."""

    async def crm_answer(self, call_id: str, extension: str = "", ringing: bool = False) -> LookupResult | None:
        """What the CRM says about a call's caller, for a phone system that waits for it.
        ``ringing``: the call rings ``extension`` now: its one lookup (started if need be) within
        the hub's deadline. Else what the CRM said already. None: no answer (yet), or no such call."""

    async def complete_call(self, record: CallRecord, provider: str) -> None:
        """A call is over, as its record says: end it if the hub still has it live, then write
        the record's figures to its ``calls`` row (or make the row, for a call nobody saw)."""

    async def record_dial(self, dial_id: str, record: DialRecord) -> None:
        """Write what the phone system says about a dial to its ``dials`` row (none: no-op)."""

    async def dial_of(self, provider_call_id: str) -> str:
        """The dial whose call the phone system calls ``provider_call_id``; '' when none."""


class Provider(abc.ABC):
    """A telephony provider. A provider is made by a factory ``(settings, host) -> Provider``
    (see ``providers.registry``); it may keep ``host`` but uses its I/O only from ``start``."""

    name: str = "?"

    async def start(self, host: ProviderHost) -> None:
        self.host = host

    async def stop(self) -> None:
        pass

    def routes(self) -> "APIRouter | None":
        """URLs of the hub the phone system calls (mounted on the hub's app), or None. Asked once,
        when the app is built, before ``start``."""
        return None

    @abc.abstractmethod
    async def originate(self, plan: DialPlan) -> None:
        """Ask the phone system to ring leg A, then connect it to leg B.

        Returns once the request is accepted; raise ``dialplan.DialRefused`` when the phone system
        refuses it at once. Later progress goes to ``host.dial_progress``."""

    async def hangup(self, plan: DialPlan) -> None:
        """Ask the phone system to end a dial (both legs); the hub then records it ``ended``.

        Raise ``HangupUnsupported`` (with the reason, for people) when it cannot."""
        raise HangupUnsupported(f"the {self.name} provider cannot hang up a dial; hang up on your phone")

    def status(self) -> dict[str, Any]:
        """For the console: {"name", "state": connected | connecting | down | n/a, "detail"}."""
        return {"name": self.name, "state": "connected", "detail": ""}
