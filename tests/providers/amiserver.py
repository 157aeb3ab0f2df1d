"""A small Asterisk for tests: an AMI server on a free port, on its own thread.

It greets with the banner, answers Challenge (``AuthType: MD5``) and Login with either the
challenge's ``Key`` (md5 of challenge + secret) or a plaintext ``Secret`` (refusing a wrong one,
then hanging up), Ping, CoreShowChannels and Originate as Asterisk does; ``challenge=False``
refuses Challenge as a server without it would, ``tls`` serves AMI over TLS. It plays recorded transcripts
(``tests/fixtures/ami/*.raw``) to every connected client with ``\\r\\n`` line ends, cut into
odd-sized TCP writes so the client's parser sees blocks split anywhere. An Originate plays
``originate_script`` if one is set: the transcript's own ``Action: Originate`` block is
skipped and its ActionID (and ChannelId, if it has one) are replaced by the client's.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import secrets
import ssl
import threading
from pathlib import Path

from pipelines.providers.asterisk.ami import Message, Parser

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ami"


def wire(text: str) -> bytes:
    """A stored transcript (\\n line ends) as it travels (\\r\\n), every block ended."""
    blocks = [b.strip("\n") for b in text.replace("\r\n", "\n").split("\n\n") if b.strip("\n")]
    return "".join(b.replace("\n", "\r\n") + "\r\n\r\n" for b in blocks).encode("utf-8")


def transcript(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


class AmiServer:
    def __init__(self, username: str = "callpop", secret: str = "s3cret",
                 banner: str = "Asterisk Call Manager/5.0.1", challenge: bool = True, tls: ssl.SSLContext | None = None):
        self.username, self.secret, self.banner = username, secret, banner
        self.challenge, self.tls = challenge, tls
        self.login_auth: list[str] = []  # md5 | plain, for every accepted login
        self.originate_script: str | None = None
        self.originate_error = ""  # answer Originate with Response: Error and this message
        self.live_channels: list[dict[str, str]] = []
        self.ignore: set[str] = set()  # actions (lower case) left unanswered, as a hung Asterisk would
        self.actions: list[Message] = []
        self.logins = 0
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._chunks = itertools.cycle((1, 7, 64, 3, 333, 41, 1500, 2, 97))
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ami-server", daemon=True)
        self.port = 0

    # --- life cycle
    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0, ssl=self.tls))
        self.port = self.server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    def __enter__(self) -> "AmiServer":
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc) -> None:
        self._call(self._shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    async def _shutdown(self) -> None:
        self.server.close()
        for w in list(self._writers):
            w.close()

    def _call(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # --- what tests do
    def play(self, text: str) -> None:
        """Send a transcript's blocks to every logged-in client."""
        self._call(self._send_all(wire(text)))

    def send_raw(self, data: bytes) -> None:
        self._call(self._send_all(data))

    def drop(self) -> None:
        """Close every client connection (as a restarting Asterisk would)."""
        self._call(self._shutdown_clients())

    def wait_logins(self, n: int, timeout: float = 10) -> None:
        deadline = self.loop.time() + timeout
        while self.logins < n:
            if self.loop.time() > deadline:
                raise TimeoutError(f"{self.logins} logins, expected {n}")
            threading.Event().wait(0.02)

    async def _shutdown_clients(self) -> None:
        for w in list(self._writers):
            w.close()
        self._writers.clear()

    async def _send_all(self, data: bytes) -> None:
        for w in list(self._writers):
            await self._send(w, data)

    async def _send(self, w: asyncio.StreamWriter, data: bytes) -> None:
        i = 0
        while i < len(data):
            n = next(self._chunks)
            w.write(data[i:i + n])
            i += n
            await w.drain()

    # --- one client
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(f"{self.banner}\r\n".encode())
        parser = Parser(banner=False)
        issued = {"challenge": ""}  # this connection's challenge, as Asterisk keeps one per session
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                for action in parser.feed(data):
                    if isinstance(action, Message):
                        self.actions.append(action)
                        if not await self._answer(action, writer, issued):
                            writer.close()
                            return
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self._writers.discard(writer)

    async def _answer(self, action: Message, w: asyncio.StreamWriter, issued: dict[str, str]) -> bool:
        aid = action.action_id
        name = action.get("Action").lower()
        if name in self.ignore:
            return True
        if name == "challenge" and self.challenge:
            if action.get("AuthType").lower() != "md5":
                await self._send(w, f"Response: Error\r\nActionID: {aid}\r\nMessage: Must specify AuthType\r\n\r\n".encode())
                return True
            issued["challenge"] = str(secrets.randbelow(10**9))
            await self._send(w, f"Response: Success\r\nActionID: {aid}\r\nChallenge: {issued['challenge']}\r\n\r\n".encode())
        elif name == "login":
            if action.get("AuthType").lower() == "md5":
                expected = hashlib.md5((issued["challenge"] + self.secret).encode()).hexdigest()
                ok, auth = bool(issued["challenge"]) and action.get("Key") == expected, "md5"
            else:
                ok, auth = action.get("Secret") == self.secret, "plain"
            if action.get("Username") != self.username or not ok:
                await self._send(w, f"Response: Error\r\nActionID: {aid}\r\nMessage: Authentication failed\r\n\r\n".encode())
                return False
            self.login_auth.append(auth)
            self.logins += 1
            self._writers.add(w)
            await self._send(w, (f"Response: Success\r\nActionID: {aid}\r\nMessage: Authentication accepted\r\n\r\n"
                                 "Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 18\r\nLastReload: 18\r\n"
                                 "Status: Fully Booted\r\n\r\n").encode())
        elif name == "ping":
            await self._send(w, f"Response: Success\r\nActionID: {aid}\r\nPing: Pong\r\nTimestamp: 1770888534.000000\r\n\r\n".encode())
        elif name == "coreshowchannels":
            out = f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n"
            for ch in self.live_channels:
                out += f"Event: CoreShowChannel\r\nActionID: {aid}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in ch.items()) + "\r\n"
            out += (f"Event: CoreShowChannelsComplete\r\nActionID: {aid}\r\nEventList: Complete\r\n"
                    f"ListItems: {len(self.live_channels)}\r\n\r\n")
            await self._send(w, out.encode())
        elif name == "originate":
            await self._originate(action, w)
        else:
            await self._send(w, f"Response: Error\r\nActionID: {aid}\r\nMessage: Invalid/unknown command\r\n\r\n".encode())
        return True

    async def _originate(self, action: Message, w: asyncio.StreamWriter) -> None:
        aid = action.action_id
        if self.originate_error:
            await self._send(w, f"Response: Error\r\nActionID: {aid}\r\nMessage: {self.originate_error}\r\n\r\n".encode())
            return
        if not self.originate_script:
            await self._send(w, f"Response: Success\r\nActionID: {aid}\r\nMessage: Originate successfully queued\r\n\r\n".encode())
            return
        text = self.originate_script
        head, _, rest = text.partition("\n\n")
        recorded = Parser(banner=False).feed((head + "\n\n").encode())[0]
        rest = rest.replace(recorded.action_id, aid)
        if recorded.get("ChannelId") and action.get("ChannelId"):
            rest = rest.replace(recorded.get("ChannelId"), action.get("ChannelId"))
        await self._send(w, wire(rest))
