"""The Asterisk Manager Interface wire format, pure: bytes in, messages out, and actions back.

AMI is line-oriented text over TCP: after a one-line banner (``Asterisk Call Manager/5.0.1``)
every message is a block of ``Key: Value`` lines ended by an empty line, each line ended by
``\\r\\n``. ``Parser.feed`` takes whatever the socket delivered (blocks split anywhere, ``\\n``
or ``\\r\\n`` line ends) and returns the complete messages; nothing here knows about sockets, so
recorded transcripts and the live stream go through the same code.

A block with lines that are not ``Key: Value`` keeps its good lines and lists what was wrong in
``Message.problems``; a block without ``Event``, ``Response`` or ``Action`` cannot be acted on
and comes back as ``Malformed``. Neither stops the stream: the next block is read as usual.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Mapping

MAX_BLOCK = 256 * 1024  # bytes; a block this long without an empty line is not AMI
KINDS = ("event", "response", "action")


@dataclasses.dataclass(frozen=True)
class Message:
    """One AMI block. Keys keep their spelling but are looked up case-insensitively, because
    Asterisk spells some of them differently across versions (``Uniqueid`` / ``UniqueID``)."""

    headers: tuple[tuple[str, str], ...]
    problems: tuple[str, ...] = ()

    def get(self, key: str, default: str = "") -> str:
        key = key.lower()
        for k, v in self.headers:
            if k.lower() == key:
                return v
        return default

    def all(self, key: str) -> list[str]:
        """Every value of a key that may repeat (``Variable``, ``ChanVariable``)."""
        key = key.lower()
        return [v for k, v in self.headers if k.lower() == key]

    def __contains__(self, key: str) -> bool:
        key = key.lower()
        return any(k.lower() == key for k, _ in self.headers)

    @property
    def kind(self) -> str:
        """event | response | action (an event that answers an action is still an event)."""
        for name in KINDS:
            if name in self:
                return name
        return ""

    @property
    def name(self) -> str:
        """The event's name, the response's status (Success, Error, Follows) or the action."""
        return self.get(self.kind) if self.kind else ""

    @property
    def action_id(self) -> str:
        return self.get("ActionID")

    def text(self) -> str:
        return "".join(f"{k}: {v}\n" for k, v in self.headers)


@dataclasses.dataclass(frozen=True)
class Malformed:
    """A block that could not be read as a message: what it was and why."""

    text: str
    reason: str


def parse_block(text: str) -> Message | Malformed:
    """One block (without its ending empty line) as a message."""
    headers: list[tuple[str, str]] = []
    problems: list[str] = []
    for n, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line:
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or not key or any(c.isspace() for c in key):
            problems.append(f"line {n} is not 'Key: Value': {line[:60]!r}")
            continue
        headers.append((key, value[1:] if value.startswith(" ") else value))
    message = Message(tuple(headers), tuple(problems))
    if not message.kind:
        reason = "; ".join(problems) if problems and not headers else "no Event, Response or Action line"
        return Malformed(text[:2000], reason)
    return message


def parse_blocks(text: str) -> list[Message | Malformed]:
    """A whole transcript (as stored in files) as messages, in order."""
    parser = Parser(banner=False)
    out = parser.feed(text.encode("utf-8"))
    return out + parser.flush()


class Parser:
    """Incremental: ``feed`` raw bytes as they arrive; get the complete messages back."""

    def __init__(self, banner: bool = True, max_block: int = MAX_BLOCK):
        self.expect_banner = banner
        self.banner = ""
        self.max_block = max_block
        self._buf = b""
        self._skipping = False  # inside an oversized block: drop until its end

    def feed(self, data: bytes) -> list[Message | Malformed]:
        # Line ends become \n; a \r left at the very end may be the first half of a \r\n.
        self._buf = (self._buf + data).replace(b"\r\n", b"\n")
        out: list[Message | Malformed] = []
        if self.expect_banner:
            line, sep, rest = self._buf.partition(b"\n")
            if not sep:
                return out
            self.expect_banner = False
            text = line.decode("utf-8", "replace").strip()
            if ":" in text:  # no banner (a proxy, or a server that skips it): it is a header line
                rest = self._buf
            else:
                self.banner = text
            self._buf = rest
        while True:
            block, sep, rest = self._buf.partition(b"\n\n")
            if not sep:
                break
            self._buf = rest
            if self._skipping:
                self._skipping = False
                continue
            text = block.decode("utf-8", "replace").strip("\n")
            if text:
                out.append(parse_block(text))
        if len(self._buf) > self.max_block:
            if not self._skipping:
                out.append(Malformed(self._buf[:200].decode("utf-8", "replace"),
                                     f"block longer than {self.max_block} bytes without an end"))
            self._skipping, self._buf = True, self._buf[-1:]  # keep a possible half line end
        return out

    def flush(self) -> list[Message | Malformed]:
        """What is left when the stream ends (a last block without its empty line)."""
        text, self._buf = self._buf.decode("utf-8", "replace").strip("\r\n"), b""
        if not text or self._skipping:
            return []
        return [parse_block(text)]


class UnsafeAction(ValueError):
    pass


def encode_action(fields: Mapping[str, object] | Iterable[tuple[str, object]]) -> bytes:
    """An action as it goes on the wire. Values with line breaks are refused: they would let a
    number typed in a browser inject headers (or a whole second action) into the stream."""
    pairs = fields.items() if isinstance(fields, Mapping) else fields
    lines = []
    for key, value in pairs:
        text = str(value)
        if any(c in text for c in "\r\n") or any(c in key for c in "\r\n:"):
            raise UnsafeAction(f"AMI field {key!r} contains a line break")
        lines.append(f"{key}: {text}\r\n")
    return ("".join(lines) + "\r\n").encode("utf-8")


def encode_message(message: Message) -> bytes:
    """A message back on the wire (the test server replays transcripts with this)."""
    return encode_action(message.headers)
