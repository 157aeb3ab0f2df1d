"""Phone numbers: parse once with libphonenumber, then match, display and send in any format.

Pure functions, no I/O. The CRM gets the format the settings ask for (``for_crm``); matching uses
E.164; people see the national format for home-country numbers and the international one else.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from functools import lru_cache
from urllib.parse import unquote

import phonenumbers
from phonenumbers import PhoneNumberFormat

# What a person may type around a number: digits, spaces, dots, dashes, brackets, a leading +
# (ASCII only: ``ascii_digits`` has folded every other spelling by then).
_DIALLABLE = re.compile(r"^\+?[0-9 ().\-/]{3,40}$")
_NOT_DIGITS = re.compile(r"[^0-9]")


def fold_digits(text: str) -> str:
    """``text`` with the decimal digits of every script as ASCII digits, and nothing else changed."""
    if text.isascii():
        return text
    return "".join(str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in text)


def ascii_digits(text: str) -> str:
    """``text`` with every spelling of a digit, space, plus and dash folded to ASCII.

    A number pasted from a web page or a phone's contact card may use any script's digits
    (Arabic-Indic ٠-٩, Extended Arabic-Indic ۰-۹, Devanagari ०-९, fullwidth ０-９...), NBSP or
    thin spaces, fullwidth ＋, Unicode dashes, and invisible bidi marks (Hebrew and Arabic pages).
    Folding first means every check after it sees the one number the phone system will dial.
    (Not NFKC: that would also read ¼ or ① as digits.)"""
    out = []
    for ch in text or "":
        if ch.isascii():
            out.append(ch)
        elif ch.isdecimal():  # a decimal digit of any script, fullwidth ones included
            out.append(str(unicodedata.decimal(ch)))
        elif ch.isspace() or unicodedata.category(ch) == "Zs":  # NBSP, thin and narrow spaces
            out.append(" ")
        elif "\uff01" <= ch <= "\uff5e":  # fullwidth ＋ （ ） ． ／ －
            out.append(chr(ord(ch) - 0xFEE0))
        elif unicodedata.category(ch) == "Pd" or ch in "\u2212\ufe62":  # dashes, minus, small plus
            out.append("+" if ch == "\ufe62" else "-")
        elif unicodedata.category(ch) != "Cf":  # bidi marks and zero-width joiners vanish
            out.append(ch)
    return "".join(out)


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
    text = ascii_digits(raw).strip()
    digits = _NOT_DIGITS.sub("", text)
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        number = None
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164) \
        if number is not None and phonenumbers.is_valid_number(number) else ""
    # E.164 holds at most 15 digits; libphonenumber's metadata lets a few longer ones through
    # (German extensions), which no network delivers as a caller ID.
    if not e164 or len(e164) > 16:
        # Networks deliver international numbers without '+', e.g. Voicenter's "972722776772".
        if number is not None and not text.startswith("+") and len(digits) > 10:
            retry = normalise("+" + digits, region)
            if retry.valid:
                return dataclasses.replace(retry, raw=text, digits=digits)
        # 00 is the international prefix of most of the world, also where the home region's is
        # another (011 in the US): "00 1 900..." is +1 900 wherever the hub is.
        if text.startswith("00") and len(digits) > 4:
            retry = normalise("+" + text[2:], region)
            if retry.valid:
                return dataclasses.replace(retry, raw=text, digits=digits)
        return Phone(text, None, digits or text, digits or text, None, digits, region)
    return Phone(
        raw=text,
        e164=e164,
        national=phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL),
        international=phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL),
        region=phonenumbers.region_code_for_number(number),
        digits=digits,
        _home=region,
    )


def parse_diallable(text: str, region: str) -> Phone:
    """A number a person asked to dial; raises NotAPhoneNumber with the reason if it is not one."""
    text = ascii_digits(text).strip()
    if text.lower().startswith(("tel:", "callto:")):  # a link on a web page (RFC 3966: params after ';')
        text = ascii_digits(unquote(text.split(":", 1)[1].split(";", 1)[0])).strip()
    if not text:
        raise NotAPhoneNumber("no number given")
    if not _DIALLABLE.match(text):
        raise NotAPhoneNumber(f"{text[:40]!r} is not a phone number (only digits, spaces, + - . ( ) are allowed)")
    phone = normalise(text, region)
    if not phone.valid:
        raise NotAPhoneNumber(f"{text!r} is not a valid phone number for region {region}")
    return phone


def for_crm(phone: Phone, fmt: str) -> str:
    """The number in the format the customer's CRM expects (settings crm_phone_format and
    crm_phone_formats; ``last9``: the last 9 digits, which a CRM that stored the number with or
    without a country code or trunk prefix still ends with)."""
    if fmt == "last9":
        return (phone.e164 or phone.digits).lstrip("+")[-9:]
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
    digits = _NOT_DIGITS.sub("", ascii_digits(text))
    keys = {digits} if len(digits) >= 3 else set()
    phone = normalise(text, region)
    if phone.valid:
        keys |= {phone.e164.lstrip("+"), _NOT_DIGITS.sub("", phone.national)}
    return keys
