"""Phone numbers: parse once with libphonenumber, then match, display and send in any format.

Pure functions, no I/O. The CRM gets the format the settings ask for (``for_crm``); matching uses
E.164; people see the national format for home-country numbers and the international one else.
"""

from __future__ import annotations

import dataclasses
import re
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberFormat

# What a person may type around a number: digits, spaces, dots, dashes, brackets, a leading +.
_DIALLABLE = re.compile(r"^\+?[\d\s().\-/]{3,40}$")
_NOT_DIGITS = re.compile(r"\D")


@dataclasses.dataclass(frozen=True)
class Phone:
    raw: str            # as delivered or typed
    e164: str | None    # +972722776772, None when it is not a valid number
    national: str       # 072-277-6772 (or the digits when not valid)
    international: str  # +972 72-277-6772
    region: str | None  # IL, US, ...
    digits: str         # only the digits of raw

    @property
    def valid(self) -> bool:
        return self.e164 is not None

    @property
    def display(self) -> str:
        return self.national if self.region and self.region == self._home else self.international

    _home: str = dataclasses.field(default="", repr=False, compare=False)


class NotAPhoneNumber(ValueError):
    pass


@lru_cache(maxsize=8192)
def normalise(raw: str, region: str = "IL") -> Phone:
    """Parse what the network or a person gave us. Never raises: invalid numbers keep their digits."""
    text = (raw or "").strip()
    digits = _NOT_DIGITS.sub("", text)
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        # Networks deliver international numbers without '+', e.g. Voicenter's "972722776772".
        if number is not None and not text.startswith("+") and len(digits) > 10:
            retry = normalise("+" + digits, region)
            if retry.valid:
                return dataclasses.replace(retry, raw=text, digits=digits)
        return Phone(text, None, digits or text, digits or text, None, digits, region)
    return Phone(
        raw=text,
        e164=phonenumbers.format_number(number, PhoneNumberFormat.E164),
        national=phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL),
        international=phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL),
        region=phonenumbers.region_code_for_number(number),
        digits=digits,
        _home=region,
    )


def parse_diallable(text: str, region: str) -> Phone:
    """A number a person asked to dial; raises NotAPhoneNumber with the reason if it is not one."""
    text = (text or "").strip()
    if text.lower().startswith(("tel:", "callto:")):
        text = text.split(":", 1)[1].split(";", 1)[0]
    if not text:
        raise NotAPhoneNumber("no number given")
    if not _DIALLABLE.match(text):
        raise NotAPhoneNumber(f"{text[:40]!r} is not a phone number (only digits, spaces, + - . ( ) are allowed)")
    phone = normalise(text, region)
    if not phone.valid:
        raise NotAPhoneNumber(f"{text!r} is not a valid phone number for region {region}")
    return phone


def for_crm(phone: Phone, fmt: str) -> str:
    """The number in the format the customer's CRM expects (setting crm_phone_format)."""
    if fmt == "raw" or not phone.valid:
        return phone.raw if fmt == "raw" else phone.digits
    if fmt == "e164":
        return phone.e164 or phone.raw
    if fmt == "national":
        return _NOT_DIGITS.sub("", phone.national)
    if fmt == "digits":
        return (phone.e164 or phone.digits).lstrip("+")
    raise ValueError(f"unknown phone format {fmt!r}")


def match_key(raw: str, region: str) -> str:
    """The key two spellings of one number share: E.164 when valid, else the bare digits."""
    phone = normalise(raw, region)
    return phone.e164 or phone.digits


def search_keys(text: str, region: str) -> set[str]:
    """Keys a search box entry may match on: its digits, its E.164 and its national digits."""
    digits = _NOT_DIGITS.sub("", text)
    keys = {digits} if len(digits) >= 3 else set()
    phone = normalise(text, region)
    if phone.valid:
        keys |= {phone.e164.lstrip("+"), _NOT_DIGITS.sub("", phone.national)}
    return keys
