"""The Voicenter provider: pop-ups and CDRs become events and records through the hub's
``ProviderHost``; click-to-call goes to the Click2Call API (see the package's docstring)."""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import TYPE_CHECKING, Any, Mapping

import httpx
from pydantic import ValidationError

from ...dialplan import DialPlan, DialRefused
from ...events import DIAL_STATES, CallEvent
from ..base import CallRecord, DialRecord, Provider, ProviderHost
from .wire import (CDR_CAUSES, CDR_OK, EMPTY_ANSWER, LEG_FAILURES, Cdr, click2call_request, contract_answer,
                   parse_cdr, parse_click2call, parse_popup)

if TYPE_CHECKING:
    from fastapi import APIRouter

log = logging.getLogger("callpop.voicenter")


# --- the provider
class VoicenterProvider(Provider):
    name = "voicenter"

    def __init__(self, host: ProviderHost, settings):
        # The host is kept from the start: the routes (built before ``start``) answer through it.
        self.host, self.settings = host, settings
        self.user_of = {a.id: a.voicenter_user for a in host.agents if a.voicenter_user}  # agent id -> extenUser
        self.extension_of_user = {}
        for agent_id, user in self.user_of.items():
            agent = host.agents.get(agent_id)
            if agent is not None and agent.extension:
                self.extension_of_user[user] = agent.extension
        self._dials: collections.OrderedDict[str, str] = collections.OrderedDict()  # CALLID -> dial id
        self._reported: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()
        self.popups = 0
        self.cdrs = 0

    def routes(self) -> "APIRouter":
        from .routes import router
        return router(self)

    def status(self) -> dict:
        detail = f"pop-ups at /voicenter/popup, CDRs at /voicenter/cdr; {self.popups} pop-ups, {self.cdrs} CDRs"
        if not self.settings.voicenter_code:
            detail += "; click-to-call off (no CALLPOP_VOICENTER_CODE)"
        return {"name": self.name, "state": "connected", "detail": detail}

    def extension_for(self, exten_user: str) -> str:
        """Our extension for Voicenter's extenUser ('' when nobody has it)."""
        if exten_user in self.extension_of_user:
            return self.extension_of_user[exten_user]
        return exten_user if self.host.agents.by_extension(exten_user) else ""

    def _once(self, source: str, reason: str, what: str, detail: str) -> None:
        """Record a problem the first time it is seen (a field Voicenter added would otherwise
        fill ``rejects`` with one row per call)."""
        if (reason, what) in self._reported:
            self._reported.move_to_end((reason, what))
            log.debug("%s %s: %s", reason, what, detail)
            return
        self._reported[(reason, what)] = None
        while len(self._reported) > 10000:
            self._reported.popitem(last=False)
        self.host.reject(source, reason, detail)

    # --- pop-up requests
    async def popup(self, fields: Mapping[str, Any], shape: str) -> dict[str, Any]:
        self.popups += 1
        p = parse_popup(fields)
        for name in p.unknown:
            self._once("/voicenter/popup", "unknown_field", name, f"field {name!r} in a {shape} pop-up request")
        if not p.ivrid:
            self.host.reject("/voicenter/popup", "missing_ivrid", f"{shape} pop-up without ivrid (status {p.status!r})")
            return dict(EMPTY_ANSWER)
        if p.phase is None:
            self._once("/voicenter/popup", "unknown_status", p.status, f"call {p.ivrid}: status {p.status!r}")
            return contract_answer(await self.host.crm_answer(p.ivrid))
        extension = self.extension_for(p.exten_user)
        if not p.exten_user:  # e.g. a pop-up set on a DID, while the call is still in the IVR
            self._once("/voicenter/popup", "missing_extenuser", p.ivrid,
                       f"call {p.ivrid} {p.status}: no extenUser, nobody to pop (the CRM answer still goes back)")
        elif not extension:
            self._once("/voicenter/popup", "unknown_extenuser", p.exten_user,
                       f"extenUser {p.exten_user!r} is no agent's voicenter_user or extension (call {p.ivrid})")
            extension = p.exten_user  # kept on the call's row, so the team sees which extension it was
        direction = "outbound" if p.ivrid in self._dials else p.direction
        try:  # stamped on arrival: a pop-up comes as it happens (and Voicenter's epochs are local time)
            event = CallEvent(call_id=p.ivrid, type=p.phase, direction=direction, caller=p.phone, callee=p.did,
                              extension=extension, cause=p.cause)
        except ValidationError as e:
            self.host.reject("/voicenter/popup", "invalid_popup", f"call {p.ivrid}: {e.errors()[0].get('msg', '')}")
            return dict(EMPTY_ANSWER)
        await self.host.ingest(event, self.name)
        # Ringing: the call's lookup within the hub's deadline; later phases: what it said already.
        return contract_answer(await self.host.crm_answer(p.ivrid, extension, ringing=p.phase == "ringing"))

    # --- call records
    async def cdr(self, body: Any) -> dict[str, Any]:
        self.cdrs += 1
        if not isinstance(body, dict):
            self.host.reject("/voicenter/cdr", "invalid_cdr", f"a JSON {type(body).__name__}, not an object")
            return {"err": 1, "errdesc": "the CDR must be a JSON object"}
        try:
            cdr = parse_cdr(body, self.settings.voicenter_timezone)
        except ValueError as e:
            self.host.reject("/voicenter/cdr", "invalid_cdr", str(e))
            return {"err": 1, "errdesc": str(e)}
        for name in cdr.unknown:
            self._once("/voicenter/cdr", "unknown_field", name, f"field {name!r} in a CDR")
        if cdr.click2call_leg:
            await self._dial_cdr(cdr)
        else:
            await self.host.complete_call(call_record(cdr, self.extension_for(cdr.exten_user) if cdr.exten_user
                                                      else ""), self.name)
        return dict(CDR_OK)

    async def _dial_cdr(self, cdr: Cdr) -> None:
        dial_id = self._dials.get(cdr.call_id) or cdr.dial_id or await self.host.dial_of(cdr.call_id)
        if not dial_id:
            self.host.reject("/voicenter/cdr", "unknown_click2call",
                             f"{cdr.type} CDR {cdr.call_id}: no click-to-call of ours has that CALLID")
            return
        leg, ok = cdr.click2call_leg, cdr.status == "ANSWER"
        progress = self.host.dial_progress
        if leg == 1:
            if ok:
                await self._advance(dial_id, "leg_a_answered")
            else:
                await progress(dial_id, "failed", f"leg_a_{LEG_FAILURES.get(cdr.status, 'failed')}",
                               f"your phone did not take the call (Voicenter: {cdr.status or 'no status'})")
        elif ok:  # the records may come in any order: move forward only
            for state in ("leg_a_answered", "bridged", "ended"):
                await self._advance(dial_id, state)
        else:
            await progress(dial_id, "failed", f"leg_b_{LEG_FAILURES.get(cdr.status, 'failed')}",
                           f"the number did not take the call (Voicenter: {cdr.status or 'no status'})")
        await self.host.record_dial(dial_id, DialRecord(cdr.call_id, leg, cdr.status, cdr.duration, cdr.record))

    async def _advance(self, dial_id: str, state: str) -> None:
        current = self.host.dial_state(dial_id)
        if current is not None and DIAL_STATES.index(state) > DIAL_STATES.index(current):
            await self.host.dial_progress(dial_id, state)

    # --- click-to-call
    async def originate(self, plan: DialPlan) -> None:
        if not self.settings.voicenter_code:
            raise DialRefused("click2call_not_configured", "click-to-call is not set up: CALLPOP_VOICENTER_CODE is empty")
        body = click2call_request(plan, self.settings.voicenter_code.get_secret_value(), self.user_of.get(plan.agent_id, ""))
        try:
            async with asyncio.timeout(self.settings.voicenter_timeout_s):
                resp = await self.host.http.post(self.settings.voicenter_click2call_url, json=body)
                content = resp.content
        except (httpx.HTTPError, TimeoutError) as e:
            raise DialRefused("click2call_unreachable", f"Voicenter's Click2Call API did not answer "
                                                        f"({type(e).__name__})") from None
        call_id = parse_click2call(resp.status_code, content)
        if call_id:
            self._dials[call_id] = plan.dial_id
            while len(self._dials) > 10000:
                self._dials.popitem(last=False)
            await self.host.record_dial(plan.dial_id, DialRecord(call_id))
        await self.host.dial_progress(plan.dial_id, "leg_a_ringing")


def call_record(cdr: Cdr, extension: str) -> CallRecord:
    """A (non-Click2Call) CDR as the hub completes a call with; ``extension`` is ours."""
    cause = CDR_CAUSES.get(cdr.status, cdr.status.lower())
    return CallRecord(
        call_id=cdr.call_id, direction=cdr.direction, customer=cdr.target if cdr.direction == "outbound" else cdr.caller,
        callee=cdr.did or (cdr.caller if cdr.direction == "outbound" else cdr.target), extension=extension,
        answered=cdr.status == "ANSWER", started=cdr.started, duration_s=cdr.duration, ring_s=cdr.ring,
        talk_s=cdr.talk, status=cdr.status, cause=cause, recording_url=cdr.record)


def create(settings, host: ProviderHost) -> VoicenterProvider:
    """The entry point (``providers.registry``)."""
    return VoicenterProvider(host, settings)
