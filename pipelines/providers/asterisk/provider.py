"""The Asterisk provider: FreePBX, or any Asterisk from 11 on, over the Manager Interface (AMI).

The connection (``client.AmiClient``) logs in and stays up; every event goes through the
pure correlator (``correlator.Correlator``), and what it makes of the events (call events,
click-to-call progress) is handed to the hub in order by one task, so a slow disk never stalls
the socket. Blocks that are not AMI are logged and recorded in ``rejects`` (at most one a
second) and the stream goes on. After every reconnection the provider asks Asterisk which
channels still exist (``CoreShowChannels``) and ends the calls that ended while it was away.

Click-to-call is one ``Originate`` (``Async: true``): leg A is a channel made from a template
(``PJSIP/{extension}`` for the agent's desk phone, ``Local/{number}@from-internal`` for a mobile
or any number), which once answered runs the dialplan at ``CALLPOP_AMI_CONTEXT`` / leg B's
number. The channel gets ``ChannelId: callpop-<dial id>`` so its events are tied to the dial
exactly (Asterisk 12+); older versions are matched by channel name.

Login uses Asterisk's MD5 challenge when offered; ``CALLPOP_AMI_TLS`` puts the link in TLS.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from typing import Any

import phonenumbers

from ...dialplan import DialPlan, DialRefused
from ...events import CallEvent
from ...settings import Settings, SettingsError
from ..base import HangupUnsupported, Provider, ProviderHost
from .ami import Malformed, Message, UnsafeAction
from .client import AmiClient, AmiError
from .correlator import Correlator, Output

log = logging.getLogger("callpop.asterisk")
_NOT_DIGITS = re.compile(r"\D")


def dial_string(e164: str, region: str, fmt: str) -> str:
    """A number as the PBX's dialplan expects it: ``dialable`` (as a phone in ``region`` dials
    it: 0722776772 at home, +12125550147 abroad), ``e164`` or ``digits`` (E.164 without +)."""
    if fmt == "e164":
        return e164
    if fmt == "digits":
        return e164.lstrip("+")
    try:
        text = phonenumbers.format_out_of_country_calling_number(phonenumbers.parse(e164), region)
    except phonenumbers.NumberParseException:
        return e164
    return ("+" if text.startswith("+") else "") + _NOT_DIGITS.sub("", text)


class _Strict(dict):
    def __missing__(self, key: str) -> str:
        raise DialRefused("pbx_config", f"unknown {{{key}}} in an Asterisk template setting")


def originate_action(plan: DialPlan, s: Settings) -> dict[str, Any]:
    """The Originate action for a dial (pure)."""
    region, fmt = s.default_region, s.ami_dial_format
    if plan.leg_a_kind == "extension":
        template, number = s.ami_leg_a_extension, plan.leg_a
    else:
        template, number = s.ami_leg_a_number, dial_string(plan.leg_a, region, fmt)
    values = _Strict(extension=plan.extension if plan.leg_a_kind != "extension" else plan.leg_a,
                     number=number, to=plan.leg_b_display)
    exten = dial_string(plan.leg_b, region, fmt)
    callerid = s.ami_callerid.format_map(values).replace("<>", "").strip()
    action: dict[str, Any] = {
        "Action": "Originate", "ActionID": f"callpop-originate-{plan.dial_id}",
        "Channel": template.format_map(values), "Context": s.ami_context, "Exten": exten, "Priority": 1,
        "Timeout": int(s.ami_ring_timeout_s * 1000), "Async": "true",
        "ChannelId": f"callpop-{plan.dial_id}", "Variable": f"CALLPOP_DIAL_ID={plan.dial_id}",
    }
    if callerid:
        action["CallerID"] = callerid
    return action


def ami_tls(s: Settings) -> ssl.SSLContext | None:
    """The TLS context for AMI when CALLPOP_AMI_TLS is on: the system's CAs or CALLPOP_CA_BUNDLE,
    the certificate and host name checked (the defaults of ``create_default_context``)."""
    if not s.ami_tls:
        return None
    try:
        return ssl.create_default_context(cafile=str(s.ca_bundle) if s.ca_bundle else None)
    except (OSError, ssl.SSLError) as e:
        raise SettingsError(f"CALLPOP_CA_BUNDLE could not be read as PEM certificates ({e})") from None


class AsteriskProvider(Provider):
    name = "asterisk"

    def __init__(self, settings: Settings):
        self.settings = s = settings
        try:
            self.correlator = Correlator(s.ami_extension_pattern, s.ami_internal_calls)
        except re.error as e:
            raise SettingsError(f"CALLPOP_AMI_EXTENSION_PATTERN is not a regular expression: {e}") from None
        self.client = AmiClient(s.ami_host, s.ami_port, s.ami_username, s.ami_secret.get_secret_value(),
                                on_event=self._on_event, on_login=self._on_login, timeout_s=s.ami_timeout_s,
                                ping_s=s.ami_ping_s, backoff_max_s=s.ami_reconnect_max_s, tls=ami_tls(s))
        self._queue: asyncio.Queue[Output] | None = None
        self._tasks: set[asyncio.Task] = set()
        self.events = 0      # AMI events read
        self.malformed = 0   # blocks that were not (fully) AMI
        self._last_reject = 0.0
        self._unrecorded = 0

    # --- life cycle
    async def start(self, host) -> None:
        await super().start(host)
        self._queue = asyncio.Queue()
        for coro in (self.client.run(), self._deliver(), self._tick()):
            task = asyncio.get_running_loop().create_task(coro)
            self._tasks.add(task)

    async def stop(self) -> None:
        await self.client.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def status(self) -> dict:
        detail = f"{self.client.detail}; {self.correlator.live_calls()} calls followed, {self.events} events read"
        if self.malformed:
            detail += f", {self.malformed} malformed blocks"
        return {"name": self.name, "state": self.client.state, "detail": detail}

    # --- events in
    def _on_event(self, message: Message | Malformed) -> None:
        """Every block from the socket, in order (called by the client's reader)."""
        if isinstance(message, Malformed):
            self._reject("malformed_ami", f"{message.reason}: {message.text[:300]!r}")
            return
        self.events += 1
        if message.problems:
            self._reject("malformed_ami", f"{message.name}: {'; '.join(message.problems)[:300]}")
        try:
            outputs = self.correlator.feed(message)
        except Exception:  # noqa: BLE001 - a surprise in one event must not stop the others
            log.exception("AMI event %s could not be followed", message.name)
            self._reject("ami_event_failed", message.text()[:400])
            return
        for output in outputs:
            self._queue.put_nowait(output)

    def _reject(self, reason: str, detail: str) -> None:
        self.malformed += reason == "malformed_ami"
        now = time.monotonic()
        if now - self._last_reject < 1.0:  # a broken stream must not flood the rejects table
            self._unrecorded += 1
            return
        if self._unrecorded:
            detail, self._unrecorded = f"{detail} (and {self._unrecorded} more not recorded)", 0
        self._last_reject = now
        self.host.reject("asterisk", reason, detail)

    async def _deliver(self) -> None:
        """Hand the outputs to the hub one by one, in the order the events came."""
        while True:
            output = await self._queue.get()
            try:
                if isinstance(output, CallEvent):
                    # AMI has no acknowledgement to give: do not hold the next event for the commit.
                    await self.host.ingest(output, self.name, wait=False)
                else:
                    await self.host.dial_progress(output.dial_id, output.state, output.error, output.reason)
            except Exception:  # noqa: BLE001 - one event the hub could not take; go on with the rest
                log.exception("could not deliver %r", output)

    async def _on_login(self) -> None:
        """After a reconnection: end what ended while we were away."""
        if not (self.correlator.live_calls() or self.correlator.pending):
            return
        try:
            listed = await self.client.action_list({"Action": "CoreShowChannels"})
        except (AmiError, TimeoutError, ConnectionError) as e:
            log.warning("could not list Asterisk's channels after reconnecting (%s); "
                        "calls that ended meanwhile end when their hangup would have come", e)
            return
        live = {m.get("Uniqueid") for m in listed if m.name.lower() == "coreshowchannel"}
        for output in self.correlator.resync(live):
            self._queue.put_nowait(output)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(2)
            for output in self.correlator.expire():
                self._queue.put_nowait(output)

    # --- click-to-call
    async def originate(self, plan: DialPlan) -> None:
        if not self.client.connected:
            raise DialRefused("pbx_unavailable", f"the phone system is not connected ({self.client.detail})")
        action = originate_action(plan, self.settings)
        self.correlator.expect_originate(plan.dial_id, action["ActionID"], action["Channel"], action["ChannelId"],
                                         to=plan.leg_b_display, wait_s=self.settings.ami_ring_timeout_s + 30)
        try:
            await self.client.action(action)
        except AmiError as e:
            self.correlator.cancel_originate(plan.dial_id)
            raise DialRefused("pbx_refused", f"Asterisk refused the call: {e}") from None
        except (TimeoutError, ConnectionError) as e:
            self.correlator.cancel_originate(plan.dial_id)
            raise DialRefused("pbx_unavailable", f"Asterisk did not take the call ({type(e).__name__})") from None
        except UnsafeAction as e:
            self.correlator.cancel_originate(plan.dial_id)
            raise DialRefused("pbx_config", str(e)) from None
        log.info("originate %s queued: %s -> %s", plan.dial_id, action["Channel"], action["Exten"])

    async def hangup(self, plan: DialPlan) -> None:
        """AMI ``Hangup`` on each live channel of the dial (leg A's first; leg B follows it out of
        the bridge). The hub records ``ended``; the Hangup events that follow find it over."""
        channels = self.correlator.channels_of(plan.dial_id)
        if not channels:
            raise HangupUnsupported("Asterisk has not reported a channel for this dial yet; try again in a moment")
        for channel in channels:
            try:
                await self.client.action({"Action": "Hangup", "Channel": channel, "Cause": 16})
            except AmiError as e:  # already gone: nothing to end
                log.info("Hangup %s for dial %s: %s", channel, plan.dial_id, e)
            except (TimeoutError, ConnectionError, UnsafeAction) as e:
                raise HangupUnsupported(f"Asterisk did not take the hang-up ({type(e).__name__})") from None


def create(settings: Settings, host: ProviderHost) -> AsteriskProvider:
    """The entry point (``providers.registry``)."""
    return AsteriskProvider(settings)
