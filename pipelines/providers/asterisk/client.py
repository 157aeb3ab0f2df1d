"""The AMI connection: log in, read the event stream, send actions, and stay connected.

Our own asyncio client rather than panoramisk (1.4, the current release): what callpop needs
from the connection is small and exact, and is easier to own than to bend a library to.

- A deadline on connect, on login and on every action (panoramisk waits on actions without one
  unless the caller wraps each call).
- Reconnection with capped, jittered exponential backoff and a state the console can show
  (connected / connecting / down, with the reason), plus a Ping every few seconds so a half-open
  TCP connection is noticed instead of waiting for the next call that never comes.
- A hook after each login, used to reconcile calls that ended while the connection was down.
- The same pure parser (``ami.py``) for the live stream and for the recorded transcripts the
  tests replay, so what is tested is what runs.
- The secret never crosses the wire when Asterisk offers the MD5 challenge (``Challenge`` then
  ``Login`` with ``Key: md5(challenge + secret)``); a plaintext ``Secret`` only when it refuses the
  challenge, said once at WARNING, and never again to a PBX that took MD5 before (a refusal then
  looks like someone in the middle asking for the secret). TLS (Asterisk's ``tlsenable``) with
  the caller's ``ssl.SSLContext``, which checks the certificate and the host name.

The whole client is ~250 lines on ``asyncio`` streams with no dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import random
import ssl
from typing import Awaitable, Callable, Mapping

from .ami import Malformed, Message, Parser, encode_action

log = logging.getLogger("callpop.ami")


class AmiError(Exception):
    """Asterisk answered an action with ``Response: Error``."""


class LoginFailed(AmiError):
    pass


class AmiClient:
    def __init__(self, host: str, port: int, username: str, secret: str, *,
                 on_event: Callable[[Message | Malformed], None],
                 on_login: Callable[[], Awaitable[None]] | None = None,
                 timeout_s: float = 5.0, ping_s: float = 20.0, tls: ssl.SSLContext | None = None,
                 backoff_min_s: float = 0.25, backoff_max_s: float = 30.0, rng: Callable[[], float] = random.random):
        self.host, self.port, self.username, self.secret = host, port, username, secret
        self.tls = tls
        self.auth = ""  # how the last login went: md5 | plain
        self._md5_before = False
        self._warned_plain = False
        self.on_event, self.on_login = on_event, on_login
        self.timeout_s, self.ping_s = timeout_s, ping_s
        self.backoff_min_s, self.backoff_max_s, self.rng = backoff_min_s, backoff_max_s, rng
        self.state, self.detail = "connecting", "not started"
        self.banner = ""
        self.connects = 0  # successful logins (the first one and every reconnection)
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[str, asyncio.Future[Message]] = {}
        self._lists: dict[str, tuple[list[Message], asyncio.Future]] = {}
        self._ids = itertools.count(1)
        self._closing = False
        self._was_connected = False

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    # --- life cycle
    async def run(self) -> None:
        """Connect, and reconnect whenever the connection drops, until ``close``."""
        attempt = 0
        while not self._closing:
            self._set("connecting", f"connecting to {self.host}:{self.port}")
            try:
                await self._session()
                why = "connection closed by Asterisk"
            except LoginFailed as e:
                why = f"login refused ({e}); check CALLPOP_AMI_USERNAME / CALLPOP_AMI_SECRET and manager.conf"
                attempt = max(attempt, 16)  # a wrong secret will not fix itself soon
            except ssl.SSLCertVerificationError as e:
                why = (f"TLS: {self.host}'s certificate is not trusted ({e.verify_message}); it must name "
                       f"CALLPOP_AMI_HOST and come from a CA of the system or CALLPOP_CA_BUNDLE")
                attempt = max(attempt, 16)
            except ssl.SSLError as e:
                why = (f"TLS handshake failed ({e.reason or type(e).__name__}); is CALLPOP_AMI_PORT Asterisk's TLS "
                       f"port (manager.conf tlsbindaddr, usually 5039)?")
            except (OSError, TimeoutError, ConnectionError, AmiError) as e:
                why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            except Exception as e:  # noqa: BLE001 - a bug must not end the connection for good
                log.exception("AMI session failed")
                why = f"internal error ({type(e).__name__})"
            if self._closing:
                break
            if self._was_connected:  # it worked until now: try again at once, then back off
                log.warning("AMI connection to %s:%s lost: %s", self.host, self.port, why)
                attempt = 0
            delay = min(self.backoff_max_s, self.backoff_min_s * 2 ** attempt) * (0.8 + 0.4 * self.rng())
            attempt += 1
            self._set("down", f"{why}; retrying in {delay:.1f} s")
            await asyncio.sleep(delay)
        self._set("down", "stopped")

    async def close(self) -> None:
        self._closing = True
        if self._writer is not None:
            self._writer.close()

    def _set(self, state: str, detail: str) -> None:
        if state != self.state:
            log.info("AMI %s: %s", state, detail)
        self.state, self.detail = state, detail

    async def _session(self) -> None:
        self._was_connected = False
        async with asyncio.timeout(self.timeout_s):
            # With ssl, asyncio checks the certificate against the context and the name against host.
            reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.tls)
        self._writer = writer
        parser = Parser()
        reading = asyncio.get_running_loop().create_task(self._read(reader, parser))
        try:
            await self._login()
            self.banner = parser.banner
            self._was_connected = True
            self.connects += 1
            how = ("TLS, " if self.tls else "") + ("MD5 login" if self.auth == "md5" else "plaintext login")
            self._set("connected", f"{self.host}:{self.port} ({self.banner or 'Asterisk'}; {how})")
            if self.on_login is not None:
                await self.on_login()
            while not reading.done():
                done, _ = await asyncio.wait({reading}, timeout=self.ping_s)
                if not done:  # quiet line: make sure the other end is still there
                    await self.action({"Action": "Ping"})
            reading.result()
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading
            self._writer = None
            writer.close()
            for fut in [*self._pending.values(), *(f for _, f in self._lists.values())]:
                if not fut.done():
                    fut.set_exception(ConnectionError("AMI connection closed"))
            self._pending.clear()
            self._lists.clear()

    async def _login(self) -> None:
        try:
            answer = await self.action({"Action": "Challenge", "AuthType": "MD5"})
            challenge = answer.get("Challenge")
        except AmiError:
            challenge = ""
        if challenge:
            key = hashlib.md5((challenge + self.secret).encode("utf-8")).hexdigest()
            login = {"Action": "Login", "Username": self.username, "AuthType": "MD5", "Key": key}
        elif self._md5_before:
            raise LoginFailed("Asterisk refused the MD5 challenge it answered before; the secret is not sent "
                              "in plain text")
        else:
            if not self._warned_plain:
                self._warned_plain = True
                log.warning("AMI at %s:%s refused the MD5 challenge: logging in with the secret in plain text%s",
                            self.host, self.port, "" if self.tls else " over an unencrypted link (CALLPOP_AMI_TLS)")
            login = {"Action": "Login", "Username": self.username, "Secret": self.secret}
        try:
            await self.action(login)
        except AmiError as e:
            raise LoginFailed(str(e) or "authentication failed") from None
        self.auth = "md5" if challenge else "plain"
        self._md5_before = self._md5_before or bool(challenge)

    async def _read(self, reader: asyncio.StreamReader, parser: Parser) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                for message in parser.flush():
                    self._dispatch(message)
                raise ConnectionError("closed by Asterisk")
            for message in parser.feed(data):
                self._dispatch(message)

    def _dispatch(self, message: Message | Malformed) -> None:
        if isinstance(message, Message):
            aid = message.action_id
            if message.kind == "response" and aid in self._pending:
                fut = self._pending[aid]
                if not fut.done():
                    fut.set_result(message)
                return
            if aid in self._lists:
                items, fut = self._lists[aid]
                if message.kind == "response":
                    if message.name.lower() == "error" and not fut.done():
                        fut.set_exception(AmiError(message.get("Message") or "error"))
                    return
                if message.get("EventList").lower() == "complete":
                    if not fut.done():
                        fut.set_result(items)
                else:
                    items.append(message)
                return
        try:
            self.on_event(message)
        except Exception:  # noqa: BLE001 - one bad event must not end the connection
            log.exception("AMI event handler failed")

    # --- actions
    def _next_id(self) -> str:
        return f"callpop-{next(self._ids)}"

    async def action(self, fields: Mapping[str, object], timeout_s: float | None = None) -> Message:
        """Send one action; its response, or AmiError (Response: Error), TimeoutError, ConnectionError."""
        if self._writer is None:
            raise ConnectionError("not connected to Asterisk")
        fields = dict(fields)
        aid = str(fields.setdefault("ActionID", self._next_id()))
        fut: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._pending[aid] = fut
        try:
            self._writer.write(encode_action(fields))
            async with asyncio.timeout(timeout_s or self.timeout_s):
                response = await fut
        finally:
            self._pending.pop(aid, None)
        if response.name.lower() == "error":
            raise AmiError(response.get("Message") or "error")
        return response

    async def action_list(self, fields: Mapping[str, object], timeout_s: float | None = None) -> list[Message]:
        """An action answered by a list of events (CoreShowChannels): the events, in order."""
        if self._writer is None:
            raise ConnectionError("not connected to Asterisk")
        fields = dict(fields)
        aid = str(fields.setdefault("ActionID", self._next_id()))
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._lists[aid] = ([], fut)
        try:
            self._writer.write(encode_action(fields))
            async with asyncio.timeout(timeout_s or self.timeout_s):
                return await fut
        finally:
            self._lists.pop(aid, None)
