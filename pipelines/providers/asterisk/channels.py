"""Asterisk's channels, pure: names, caller id numbers, and a channel as the correlator holds it.

A channel is an extension's phone when its technology is not ``Local`` and its device name
(``PJSIP/201-0000001b`` → ``201``) matches the extension pattern; anything else that is not a
``Local`` channel is a trunk.
"""

from __future__ import annotations

import dataclasses
import re

from ...events import NUMBER_TEXT, WITHHELD

_CHANNEL = re.compile(r"^(?P<tech>[^/]+)/(?P<res>.+?)(?:-[0-9a-fA-F]+)?(?:;[12])?(?:<[A-Z]+>)*$")


def split_channel(name: str) -> tuple[str, str]:
    """(technology, device) of a channel name: ``PJSIP/201-0000001b`` → (PJSIP, 201),
    ``Local/259@default-00000000;1`` → (Local, 259@default)."""
    m = _CHANNEL.match(name.strip())
    return (m["tech"], m["res"]) if m else ("", name.strip())


def channel_base(requested: str) -> str:
    """What the channels of an Originate's ``Channel`` are called, without their suffix:
    ``Local/259`` → ``local/259@default`` (Asterisk's default context), ``PJSIP/201`` → ``pjsip/201``."""
    tech, _, rest = requested.strip().partition("/")
    device = rest.split("/", 1)[0]
    if tech.lower() == "local" and "@" not in device:
        device += "@default"
    return f"{tech.lower()}/{device}"


def clean_number(value: str) -> str:
    """A caller id number as the hub takes it: withheld spellings and non-numbers become ''."""
    value = (value or "").strip()
    if value.lower() in WITHHELD or not NUMBER_TEXT.match(value):
        return ""
    return value[:64]


@dataclasses.dataclass
class Chan:
    uid: str
    name: str
    call: str
    caller: str = ""  # CallerIDNum
    exten: str = ""   # Exten when created: the number dialled into the PBX
    last_dialled: str = ""  # uid of the last channel this one dialled (Asterisk 11 DialEnd has no dest)
    alive: bool = True

    @property
    def tech(self) -> str:
        return split_channel(self.name)[0]

    @property
    def local(self) -> bool:
        return self.tech.lower() == "local"
