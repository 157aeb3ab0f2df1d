"""What a setting's value must be: the field types of ``Settings`` (``settings.py``) with their
validators, and the checks its model validators share. The table itself (names, defaults, help)
is ``settings.py``'s alone."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, SecretStr
from pydantic_settings import NoDecode


def require_shared_secret(name: str, secret: SecretStr, host: str, why: str, then: str) -> None:
    """A shared secret is required unless ``host`` is this machine, and never short."""
    value = secret.get_secret_value()
    if not value and not is_loopback(host):
        raise ValueError(f"{name} is required when {why}: set {name} to a long random value "
                         f"(openssl rand -hex 24) and {then}")
    if value and len(value) < MIN_SHARED_SECRET:
        raise ValueError(f"{name} must be at least {MIN_SHARED_SECRET} characters (openssl rand -hex 24)")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: reachable from this machine only."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split(value: Any) -> Any:
    """A comma-separated list as written in the environment or .env."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _one_line(value: str) -> str:
    if any(ch in value for ch in "\r\n\0"):
        raise ValueError("must be one line (no CR, LF or NUL)")
    return value


def _http_url(value: str) -> str:
    value = value.strip()
    if value and not re.match(r"^https?://[^\s/?#]+", value, re.IGNORECASE):
        raise ValueError(f"{value[:60]!r} is not an absolute http(s) URL")
    return value


def _none_if_empty(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _known_provider(value: str) -> str:
    from .providers.registry import available  # here, not above: the registry imports the settings
    if value not in (names := available()):
        raise ValueError(f"must be one of {', '.join(names)}")
    return value


def _host(value: str) -> str:
    value = value.strip()
    if not value or not re.fullmatch(r"[\w.\-:\[\]]+", value):
        raise ValueError(f"{value[:60]!r} is not a host name or IP address")
    return value


# Number types a dial refuses unless CALLPOP_DIAL_ALLOWED_TYPES opts in (NON_GEOGRAPHIC is not a
# libphonenumber type: it names the networks of region "001").
DIAL_OPT_IN_TYPES = ("PREMIUM_RATE", "SHARED_COST", "PERSONAL_NUMBER", "UAN", "NON_GEOGRAPHIC")


def _countries(values: list[str]) -> list[str]:
    values = [v.upper() for v in values]
    bad = [v for v in values if v != "*" and not re.fullmatch(r"[A-Z]{2}", v)]
    if bad:
        raise ValueError(f"{bad[0][:20]!r} is not a two-letter country code (or '*' for every country)")
    return values


def _dial_types(values: list[str]) -> list[str]:
    values = [v.upper() for v in values]
    bad = [v for v in values if v not in DIAL_OPT_IN_TYPES]
    if bad:
        raise ValueError(f"{bad[0][:30]!r} is not one of {', '.join(DIAL_OPT_IN_TYPES)}")
    return values


CRM_FORMATS = ("raw", "national", "e164", "digits", "last9")  # what phone.for_crm writes


def _phone_formats(values: list[str]) -> list[str]:
    values = [v.lower() for v in values]
    bad = [v for v in values if v not in CRM_FORMATS]
    if bad:
        raise ValueError(f"{bad[0][:30]!r} is not one of {', '.join(CRM_FORMATS)}")
    return list(dict.fromkeys(values))  # a format twice would only ask the CRM the same again


def _e164_prefixes(values: list[str]) -> list[str]:
    out = [re.sub(r"[\s\-().]", "", v) for v in values]
    bad = [v for v in out if v != "*" and not re.fullmatch(r"\+[1-9]\d{0,14}", v)]
    if bad:
        raise ValueError(f"{bad[0][:20]!r} is not an E.164 number or prefix (+ then digits) or '*'")
    return out


def _networks(values: list[str]) -> list[str]:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"{value[:60]!r} is not an IP address or network (e.g. 203.0.113.7, 10.0.0.0/8)") \
                from None
    return values


# A shared secret an outsider must not guess by trying: 16 characters at least (openssl rand -hex 24).
MIN_SHARED_SECRET = 16
CsvList = Annotated[list[str], NoDecode, BeforeValidator(_split)]
Networks = Annotated[list[str], NoDecode, BeforeValidator(_split), AfterValidator(_networks)]
OneLine = Annotated[str, AfterValidator(_one_line)]
HttpUrl = Annotated[str, AfterValidator(_one_line), AfterValidator(_http_url)]
Region = Annotated[str, BeforeValidator(_upper), Field(pattern=r"^[A-Z]{2}$")]
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)]
LogFormat = Annotated[Literal["text", "json"], BeforeValidator(_lower)]
Host = Annotated[str, AfterValidator(_host)]
ProviderName = Annotated[str, BeforeValidator(_lower), AfterValidator(_known_provider)]
OptionalPath = Annotated[Path | None, BeforeValidator(_none_if_empty)]
Countries = Annotated[list[str], NoDecode, BeforeValidator(_split), AfterValidator(_countries)]
DialTypes = Annotated[list[str], NoDecode, BeforeValidator(_split), AfterValidator(_dial_types)]
PhoneFormats = Annotated[list[str], NoDecode, BeforeValidator(_split), AfterValidator(_phone_formats)]
E164Prefixes = Annotated[list[str], NoDecode, BeforeValidator(_split), AfterValidator(_e164_prefixes)]
