"""Every setting of the hub, in one table: a pydantic-settings model, each field with its type,
range, default and help (its ``description``).

Values come from the environment (``CALLPOP_<NAME>``), then from a ``.env`` file (python-dotenv
syntax: quotes, ``export``, trailing ``# comments``; ``CALLPOP_ENV_FILE`` or ``callpop --env-file``
names another), then the defaults. ``.env.example`` is
generated from this table (a test keeps them in step; ``python -m pipelines settings`` prints the
values in force). Secrets are ``SecretStr``: nothing prints them, not even ``repr``. What a value
must be (the field types and their validators) is ``settings_rules.py``'s.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .settings_rules import (Countries, CsvList, DialTypes, E164Prefixes, Host, HttpUrl, LogFormat, LogLevel, Networks,
                             OneLine, OptionalPath, PhoneFormats, ProviderName, Region, is_loopback, require_shared_secret)

PREFIX = "CALLPOP_"
ENV_FILE = Path(".env")  # when CALLPOP_ENV_FILE does not name one; relative to the working directory
# Which file to read: a variable of the environment only (`callpop --env-file` sets it), not a
# setting, since it cannot come from the file it names.
ENV_FILE_VAR = PREFIX + "ENV_FILE"
log = logging.getLogger("callpop.settings")


class SettingsError(ValueError):
    pass


def setting(default: Any, description: str, **constraints: Any) -> Any:
    """One row of the table: the default, the help text, the allowed range."""
    return Field(default, description=description, **constraints)


class Settings(BaseSettings):
    """The hub's settings. Attribute names are the environment names without ``CALLPOP_``."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_file=ENV_FILE, env_file_encoding="utf-8",
                                      extra="ignore", frozen=True, validate_default=True)

    # --- the hub process
    host: Host = setting(
        "127.0.0.1", "Interface the hub listens on (HTTP API and WebSocket on one port).")
    port: int = setting(8765, "Port the hub listens on; 0 picks a free port (the hub logs which).", ge=0, le=65535)
    public_url: HttpUrl = setting(
        "", "Base URL browsers use to reach the hub, if not http://HOST:PORT (behind a proxy). Its host is one "
        "the hub answers to (see CALLPOP_ALLOWED_HOSTS).")
    allowed_hosts: CsvList = setting(
        [], "Host names the hub answers to besides CALLPOP_PUBLIC_URL's, CALLPOP_HOST and loopback names, "
        "comma-separated (e.g. the name or address the PBX uses). Other Host headers get 400: a web page "
        "cannot reach the hub through DNS rebinding.")
    log_level: LogLevel = setting("INFO", "Log level: DEBUG, INFO, WARNING or ERROR.")
    log_format: LogFormat = setting(
        "text", "Log lines as text, or json: one JSON object a line (at, level, logger, message) for a log "
        "collector.")
    db_path: Path = setting(Path("data/callpop.duckdb"), "DuckDB file the hub owns (only the hub opens it while it runs).")
    backup_dir: OptionalPath = setting(
        None, "Folder the hub writes backups to (callpop backup, POST /api/backup); empty: 'backups' beside "
        "CALLPOP_DB_PATH.")
    store_commit_ms: float = setting(
        0.0, "How long a write that comes soon after a commit may wait to share the next one. 0: commit as soon "
        "as the writer is free (writes that come while it commits share the next commit). An event's 202 waits for "
        "its commit; more here means fewer commits (less CPU) and later 202s.", ge=0, le=1000)
    store_queue_max: int = setting(
        50_000, "Writes queued for DuckDB before events are refused with 503 (a disk that stopped taking them).",
        ge=100, le=10_000_000)
    event_window_h: float = setting(
        24.0, "Events whose 'at' is further than this many hours from the hub's clock are refused (422).",
        gt=0, le=24 * 366)
    max_body_bytes: int = setting(65536, "Largest HTTP request body accepted; larger ones get 413.", ge=1024,
                               le=64 << 20)
    # --- limits at the door (what one client may hold of the hub)
    max_connections: int = setting(
        12_000, "Connections (HTTP and WebSocket together) the hub serves at once; a request beyond gets 503 and "
        "its connection is closed. The hub raises its open-file limit to fit, up to the hard limit.",
        ge=16, le=1_000_000)
    max_header_bytes: int = setting(32768, "Largest request line and headers accepted; larger gets 431 and the "
                                    "connection is closed.", ge=1024, le=1 << 20)
    header_timeout_s: float = setting(
        10.0, "Seconds a connection has to send a request's line and headers (from connecting, or from the last "
        "answer on it); then it is closed (half-open and slowloris connections).", gt=0, le=300)
    keep_alive_s: float = setting(5.0, "Seconds an idle HTTP connection is kept open after an answer.", gt=0,
                                  le=300)
    rejects_window_s: float = setting(
        60.0, "Refused input of one kind (source, reason, detail) is recorded once and then counted for this "
        "long, and logged at most once per source and reason (a flood must not fill the disk).", ge=1, le=3600)
    # --- who may connect
    agents_csv: Path = setting(Path("data/agents.csv"),
                            "Agents: CSV with id,name,token,extension,mobile,home[,role,expires_at,disabled,"
                            "voicenter_user]; supervisors edit it through /api/agents, and edits made by hand are "
                            "read again.")
    agents_check_s: float = setting(2.0, "Seconds between two looks at the agents file for an edit made by hand "
                                    "(a changed size or time: read again; the sockets of a disabled agent close).",
                                    gt=0, le=300)
    signin_code_ttl_s: int = setting(600, "Seconds a one-time sign-in code made by a supervisor stays valid.",
                                     ge=1, le=86400)
    signin_try_every_s: float = setting(1.0, "One try at a sign-in code per client address per this many seconds "
                                        "(others get 429): a code cannot be guessed in its lifetime.", gt=0, le=60)
    ingest_token: SecretStr = setting(
        SecretStr(""), "Bearer token a PBX must send to POST /api/events; empty refuses every event.")
    metrics_token: SecretStr = setting(
        SecretStr(""), "Bearer token a monitoring system sends to GET /metrics (Prometheus text); empty: "
        "supervisors' tokens only.")
    contacts_csv: Path = setting(Path("data/contacts.csv"),
                              "Contacts served by the sample CRM and the console's contact grid.")
    # --- telephony provider
    provider: ProviderName = setting(
        "sim", "Telephony provider: sim (simulated PBX), webhook, voicenter, asterisk, or one an installed package "
        "adds (entry points 'callpop.providers').")
    default_region: Region = setting("IL", "Country (ISO 3166 code) for numbers written without an international "
                                        "prefix.")
    sim_calls_per_minute: float = setting(4.0, "sim: inbound calls the simulated PBX makes per minute (0 = none).",
                                       ge=0, le=6000)
    sim_seed: OneLine = setting("", "sim: random seed for a repeatable run (empty = different every run).")
    sim_speed: float = setting(1.0, "sim: time scale of simulated rings and talk (2 = twice as fast).", gt=0, le=1000)
    webhook_dial_url: HttpUrl = setting("", "webhook: URL the hub POSTs {dial_id, leg_a, leg_b} to for click-to-call.")
    webhook_secret: SecretStr = setting(
        SecretStr(""), "webhook: key the hub signs each dial POST with (HMAC-SHA256 in X-Callpop-Signature, see "
        "docs/PROTOCOL.md), 16+ characters; required unless CALLPOP_WEBHOOK_DIAL_URL is on this machine.")
    voicenter_secret: SecretStr = setting(
        SecretStr(""), "voicenter: every /voicenter/* request must carry ?key=<this> (put it in the URLs you paste "
        "into Voicenter), 16+ characters; required unless CALLPOP_HOST is loopback.")
    voicenter_allowed_ips: Networks = setting(
        [], "voicenter: if set, only these addresses or networks (comma-separated, e.g. '203.0.113.0/24') may "
        "call /voicenter/*; others get 403.")
    trusted_proxies: Networks = setting(
        [], "Reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For names the real client "
        "for CALLPOP_VOICENTER_ALLOWED_IPS and the sign-in code throttle; empty = the connecting address is the "
        "client.")
    voicenter_code: SecretStr = setting(
        SecretStr(""), "voicenter: the account's Click2Call API token ('code', from Voicenter's back office).")
    voicenter_click2call_url: HttpUrl = setting("https://api.voicenter.com/ForwardDialer/click2call.aspx",
                                             "voicenter: the Click2Call API endpoint.")
    voicenter_timeout_s: float = setting(5.0, "voicenter: deadline for each Click2Call request.", gt=0, le=60)
    voicenter_timezone: OneLine = setting(
        "Asia/Jerusalem", "voicenter: zone of the epoch times in Voicenter's CDRs (documented as Israel time; UTC "
        "if yours are true Unix times).")
    ami_host: Host = setting(
        "127.0.0.1", "asterisk: host of the Asterisk Manager Interface (AMI).")
    ami_port: int = setting(5038, "asterisk: AMI port (manager.conf [general] port).", ge=1, le=65535)
    ami_username: OneLine = setting("callpop", "asterisk: AMI user (a [section] of manager.conf).")
    ami_secret: SecretStr = setting(SecretStr(""), "asterisk: that user's secret (sent as an MD5 challenge "
                                                   "response when Asterisk offers one).")
    ami_tls: bool = setting(False, "asterisk: connect over TLS (manager.conf tlsenable, usually port 5039); the "
                                   "certificate must name CALLPOP_AMI_HOST and come from a CA the system or "
                                   "CALLPOP_CA_BUNDLE trusts.")
    ami_timeout_s: float = setting(5.0, "asterisk: deadline for connecting, logging in and each AMI action.", gt=0,
                                le=120)
    ami_ping_s: float = setting(20.0, "asterisk: seconds of silence after which the hub pings Asterisk (a dead link "
                                   "reconnects).", gt=0, le=3600)
    ami_reconnect_max_s: float = setting(30.0, "asterisk: longest wait between reconnection attempts (backoff doubles "
                                            "up to it).", gt=0, le=3600)
    ami_extension_pattern: OneLine = setting(
        r"^\d{2,6}$", "asterisk: regex a device name must match to be an extension (PJSIP/201-0000001b -> 201); "
        "other devices are trunks.")
    ami_internal_calls: Literal["pop", "ignore"] = setting(
        "pop", "asterisk: extension-to-extension calls: pop (like any call) or ignore.")
    ami_leg_a_extension: OneLine = setting("PJSIP/{extension}",
                                        "asterisk: click-to-call channel for the agent's desk phone.")
    ami_leg_a_number: OneLine = setting(
        "Local/{number}@from-internal", "asterisk: click-to-call channel when leg A is a number (mobile, home, "
        "typed in).")
    ami_context: OneLine = setting("from-internal", "asterisk: dialplan context that dials leg B once leg A answers.")
    ami_dial_format: Literal["dialable", "e164", "digits"] = setting(
        "dialable", "asterisk: how numbers go to the dialplan: dialable (as a local phone dials them), e164 or "
        "digits.")
    ami_ring_timeout_s: float = setting(30.0, "asterisk: how long leg A rings before the click-to-call gives up.",
                                     gt=0, le=600)
    ami_callerid: OneLine = setting(
        '"{to}" <{extension}>', "asterisk: caller ID leg A's phone shows ({to}, {extension}); FreePBX picks the "
        "outbound caller ID from its number part.")
    # --- CRM lookup (see docs/crm-contract.md)
    crm_url: HttpUrl = setting("", "The customer's lookup URL (GET ?phone=...); empty = the sample CRM (needs "
                                   "CALLPOP_SAMPLE_CRM).")
    sample_crm: bool = setting(
        False, "Serve the built-in sample CRM at /crm/* over CALLPOP_CONTACTS_CSV (the demo turns it on). It answers "
        "anyone without a token: never on a hub others can reach.")
    crm_phone_param: Annotated[str, Field(pattern=r"^[\w.\-]+$")] = setting(
        "phone", "Query parameter that carries the number to the CRM.")
    crm_phone_format: Literal["raw", "national", "e164", "digits"] = setting(
        "raw", "Number format sent to the CRM: raw, national, e164 or digits.")
    crm_phone_formats: PhoneFormats = setting(
        [], "Formats tried in order while the CRM says not found, comma-separated, within the one deadline: raw, "
        "national, e164, digits, last9 (the last 9 digits). Empty: CALLPOP_CRM_PHONE_FORMAT alone.")
    crm_context_params: CsvList = setting(
        [], "Extra parameters sent to the CRM, comma-separated: did, extension, call_id, direction.")
    crm_auth_header: SecretStr = setting(
        SecretStr(""), "Header sent with every lookup, as 'Name: value' (e.g. 'Authorization: Bearer x'); only to "
        "the CRM's own origin, never after a redirect that leaves it.")
    crm_log_url: HttpUrl = setting(
        "", "Where the hub logs each call when it ends, and again when the agent saves a note or a disposition "
        "(POST JSON, docs/crm-contract.md 'Call log'); empty: no call log. CALLPOP_CRM_AUTH_HEADER goes with it, to "
        "this URL's origin only.")
    crm_log_retry_h: float = setting(24.0, "How long a call log entry the CRM did not take is retried (with "
                                     "backoff) before it is marked failed.", gt=0, le=24 * 30)
    dispositions: CsvList = setting(["Sale", "Support", "Callback", "No answer", "Wrong number"],
                                    "What an agent may mark a call as, comma-separated.")
    notes_max_chars: int = setting(4000, "Longest note an agent may save on a call (characters).", ge=100,
                                   le=60_000)
    crm_deadline_ms: int = setting(1500, "Time the agent waits for the CRM; then a provisional pop, updated if the "
                                      "answer comes.", ge=50, le=30_000)
    crm_late_timeout_ms: int = setting(10000, "How long a late answer is still awaited to update the pop; then the "
                                           "lookup is dropped.", ge=50, le=120_000)
    crm_max_bytes: int = setting(262144, "Largest CRM answer read; a bigger one is a bad_response.", ge=256,
                              le=16 << 20)
    crm_cache_ttl_s: float = setting(60.0, "How long a found/not found answer is served from the cache (refreshed "
                                        "behind).", ge=0, le=86400)
    crm_cache_refresh_s: float = setting(5.0, "A cache hit older than this triggers a refresh behind the pop.", ge=0,
                                      le=86400)
    crm_cache_size: int = setting(2048, "Numbers kept in the lookup cache.", ge=0, le=10_000_000)
    crm_max_connections: int = setting(100, "Lookups in flight to the CRM at once (more wait their turn, within the "
                                         "deadline).", ge=1, le=10_000)
    ca_bundle: OptionalPath = setting(
        None, "PEM file of the certificate authorities trusted for outgoing HTTPS (CRM, webhook, Voicenter), e.g. "
        "a private CA; also for AMI over TLS. Empty = the system's (SSL_CERT_FILE honoured). Proxies come from "
        "HTTPS_PROXY / NO_PROXY.")
    # --- click-to-call
    dial_blocked_prefixes: CsvList = setting(
        ["+1900", "+1976", "+44871", "+44872", "+44873", "+449", "+9721900", "+9721901", "+9721919"],
        "E.164 prefixes never dialled on either leg (premium rate, toll fraud), comma-separated.")
    dial_allowed_countries: Countries = setting(
        [], "Countries (ISO codes) either leg of a click-to-call may ring, comma-separated (e.g. 'IL,US,GB'); empty "
        "= only CALLPOP_DEFAULT_REGION; '*' = every country. Agents' own mobiles and home phones count too.")
    dial_allowed_types: DialTypes = setting(
        [], "Number types refused against toll fraud that may be dialled anyway, comma-separated: PREMIUM_RATE, "
        "SHARED_COST, PERSONAL_NUMBER, UAN (libphonenumber's types), NON_GEOGRAPHIC (satellite and international "
        "networks: +870 Inmarsat, +881 Iridium, +882, +883). Empty = none.")
    dial_leg_a_allowed: E164Prefixes = setting(
        [], "Numbers an agent may type as the phone to ring first (leg A), besides their own mobile and home: "
        "E.164 numbers or prefixes, comma-separated (e.g. '+97235550100,+9727227'); '*' = any number the "
        "dial rules allow; empty = only their own.")
    dial_rate_per_minute: int = setting(10, "Click-to-calls one agent may start per minute.", ge=1, le=1_000_000)
    dial_budget_per_hour: int = setting(
        600, "Click-to-calls the whole hub may place in any hour, all agents together (refused ones do not count); "
        "past it every dial is refused with 429 until the hour's oldest age out. Caps what a stolen token or a "
        "runaway script can cost.", ge=1, le=1_000_000)
    # --- WebSocket sessions
    ws_heartbeat_s: float = setting(15.0, "Seconds of silence on a socket before the hub sends a heartbeat (a MV3 "
                                       "worker needs a message every <30 s).", ge=1, le=25)
    ws_hello_timeout_s: float = setting(10.0, "Seconds a new socket has to send its hello before it is closed.", gt=0,
                                     le=120)
    ws_send_queue: int = setting(256, "Messages queued for one browser before it is dropped as too slow.", ge=8,
                              le=100_000)
    ws_per_agent: int = setting(10, "Sockets one agent may hold; one more closes the oldest (4409).", ge=1,
                                le=1000)
    ws_send_timeout_s: float = setting(10.0, "Seconds one send may take before the socket is dropped as too slow.",
                                    gt=0, le=300)
    # --- the extension, installed by policy
    extension_dir: OptionalPath = setting(
        None, "Folder of the packed extension (make extension-package: updates.xml and callpop-<version>.crx) the "
        "hub serves to anyone at /extension/<file>, for Chrome's ExtensionInstallForcelist policy; empty = not "
        "served (404).")
    # --- several hubs on one Redis (cluster mode, docs/CLUSTER.md)
    redis_url: SecretStr = setting(
        SecretStr(""), "Cluster mode: the Redis (or Valkey) every hub and the recorder share, e.g. "
        "redis://127.0.0.1:6379/0 (rediss:// for TLS; a password in it is never shown). Empty: one hub, no Redis.")
    hub_name: OneLine = setting("", "Cluster mode: this hub's name (logs, /api/status); empty: host name and port.")
    redis_timeout_ms: int = setting(1000, "Cluster mode: deadline of one Redis command; past it the event waiting for it "
                                    "gets 503, and if a ping is late too Redis counts as down until it answers.", ge=50, le=30_000)
    recorder_url: HttpUrl = setting("", "Cluster mode: the recorder (callpop record) the hubs read the database "
                                    "through (analytics, history); empty: those routes answer 503.")
    recorder_token: SecretStr = setting(SecretStr(""), "Cluster mode: bearer token hubs send the recorder's read "
                                        "API; the recorder refuses reads without it.")
    recorder_lease_s: float = setting(10.0, "Cluster mode: how long the recorder's lease holds unrenewed (renewed every "
                                      "third of it): a standby recorder takes over this long after one dies.", ge=1, le=300)
    parquet_dir: OptionalPath = setting(
        None, "Recorder: folder each finished day's history is written to as Parquet (<table>/<YYYY-MM-DD>.parquet), "
        "for DuckDB, pandas or MotherDuck; empty: none.")
    # --- the console
    hub_url: HttpUrl = setting("http://127.0.0.1:8765", "console: the hub the console talks to.")
    console_host: Host = setting(
        "127.0.0.1", "console: interface the console listens on (make run, callpop console); 0.0.0.0 for every interface.")
    console_port: int = setting(8501, "console: port the console listens on (make run, callpop console).", ge=1,
                              le=65535)
    console_session_h: float = setting(
        12.0, "console: hours a console sign-in lasts across reloads and tabs (an opaque, revocable session id in "
        "a cookie; the token stays in the console).", ge=1 / 12, le=24 * 30)

    @field_validator("crm_auth_header")
    @classmethod
    def _header(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if text and not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n\0]*", text):
            raise ValueError("must be 'Name: value' on one line (a header name, a colon, the value)")
        return value

    @model_validator(mode="after")
    def _late_after_deadline(self) -> "Settings":
        if self.crm_late_timeout_ms < self.crm_deadline_ms:
            raise ValueError(f"CALLPOP_CRM_LATE_TIMEOUT_MS ({self.crm_late_timeout_ms}) must not be shorter than "
                             f"CALLPOP_CRM_DEADLINE_MS ({self.crm_deadline_ms})")
        return self

    @model_validator(mode="after")
    def _provider_links_authenticated(self) -> "Settings":
        # Whoever reaches these links can pop screens, read the CRM through the pop-up answer and
        # forge call records or dials: off this machine they need a shared secret.
        if self.provider == "voicenter":
            require_shared_secret("CALLPOP_VOICENTER_SECRET", self.voicenter_secret, self.host,
                           f"the hub listens beyond this machine (CALLPOP_HOST={self.host})",
                           "add ?key=<it> to the URLs in Voicenter's back office")
        if self.provider == "webhook" and self.webhook_dial_url:
            host = urlsplit(self.webhook_dial_url).hostname or ""
            require_shared_secret("CALLPOP_WEBHOOK_SECRET", self.webhook_secret, host,
                           f"CALLPOP_WEBHOOK_DIAL_URL is on another machine ({host})",
                           "have the PBX check X-Callpop-Signature with it (docs/PROTOCOL.md)")
        return self

    # --- derived values
    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"

    @property
    def crm_lookup_url(self) -> str:
        """The URL the hub looks callers up at: CALLPOP_CRM_URL, else its own sample CRM."""
        return self.crm_url or f"{self.base_url}/crm/lookup"

    @property
    def backups(self) -> Path:
        """Where backups go: CALLPOP_BACKUP_DIR, else 'backups' beside the database."""
        return self.backup_dir or self.db_path.parent / "backups"

    @property
    def loopback_only(self) -> bool:
        """The hub listens on a loopback address only: nothing off this machine reaches it."""
        return is_loopback(self.host)

    def hosts(self) -> frozenset[str]:
        """Host names (lower case, no port, IPv6 without brackets) the hub answers to."""
        named = {"localhost", "127.0.0.1", "::1", *(h.lower() for h in self.allowed_hosts)}
        if self.public_url:
            named.add((urlsplit(self.public_url).hostname or "").lower())
        if self.host not in ("0.0.0.0", "::"):
            named.add(self.host.strip("[]").lower())
        return frozenset(named)

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some values changed (validated like the rest)."""
        _known(changes)
        return _build(None, {**self.model_dump(), **changes})

    def as_environ(self) -> dict[str, str]:
        """These settings as environment variables, secrets included (for a child process)."""
        return {env_name(name): value.get_secret_value() if isinstance(value, SecretStr) else _shown(value)
                for name, value in ((n, getattr(self, n)) for n in type(self).model_fields)}

    def redacted(self) -> dict[str, Any]:
        """The settings as they may be shown or logged: secrets say only whether they are set."""
        return {env_name(name): ("(set)" if value.get_secret_value() else "(empty)")
                if isinstance(value, SecretStr) else _shown(value)
                for name, value in ((n, getattr(self, n)) for n in type(self).model_fields)}


def env_name(field: str) -> str:
    return PREFIX + field.upper()


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def _known(names: typing.Iterable[str]) -> None:
    unknown = sorted(set(names) - set(Settings.model_fields))
    if unknown:
        raise SettingsError(f"unknown settings: {', '.join(unknown)}")


def _build(env_file: Path | None, values: dict[str, Any]) -> Settings:
    try:
        return Settings(_env_file=env_file, **values)
    except ValidationError as e:
        raise SettingsError("; ".join(_describe(err) for err in e.errors())) from None


def _describe(err: dict) -> str:
    loc = [str(p) for p in err.get("loc", ()) if not isinstance(p, int)]
    name = env_name(loc[0]) if loc and loc[0] in Settings.model_fields else ""
    msg = err.get("msg", "invalid").removeprefix("Value error, ")
    if err.get("type") == "literal_error" and name:
        msg = "must be one of " + ", ".join(_choices(Settings.model_fields[loc[0]].annotation))
    given = err.get("input")
    shown = "" if not name or isinstance(given, (SecretStr, dict)) or _is_secret(loc[0]) else f"={str(given)[:60]!r}"
    return f"{name}{shown}: {msg}" if name else msg


def _is_secret(field: str) -> bool:
    return Settings.model_fields[field].annotation is SecretStr


def _choices(annotation: Any) -> tuple[str, ...]:
    """The values a Literal field allows (through Annotated)."""
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return tuple(typing.get_args(annotation)) if typing.get_origin(annotation) is Literal else ()


CONFIGURED = "CALLPOP_ENV_FILE or .env"


def configured_env_file() -> Path:
    """The settings file this process reads: CALLPOP_ENV_FILE if set (it must exist: a mistyped path
    must not start a hub on the defaults), else .env in the working directory."""
    named = os.environ.get(ENV_FILE_VAR, "").strip()
    if named and not Path(named).is_file():
        raise SettingsError(f"{ENV_FILE_VAR}={named!r}: no such file")
    return Path(named or ENV_FILE)


def load(env_file: Path | str | None = CONFIGURED, **overrides: Any) -> Settings:
    """Settings from the environment, then ``env_file`` (default: ``configured_env_file()``; None:
    no file), then the defaults; ``overrides`` win over all. Unknown ``CALLPOP_*`` names in the file
    are logged."""
    _known(overrides)
    if env_file is CONFIGURED:
        env_file = configured_env_file()
    path = Path(env_file) if env_file is not None else None
    if path is not None and path.is_file():
        keys = list(dotenv_values(path))
        if any(k.upper() == ENV_FILE_VAR for k in keys):
            log.warning("%s: %s ignored in a settings file (it names the file to read: set it in the "
                        "environment, or use callpop --env-file)", path, ENV_FILE_VAR)
        unknown = [k for k in keys if k.upper().startswith(PREFIX) and k.upper() != ENV_FILE_VAR
                   and k.upper()[len(PREFIX):].lower() not in Settings.model_fields]
        names = [env_name(f) for f in Settings.model_fields]
        for key in unknown:
            close = difflib.get_close_matches(key.upper(), names, n=1, cutoff=0.8)
            log.warning("%s: unknown setting %s ignored%s", path, key, f" (did you mean {close[0]}?)" if close else "")
    return _build(path, overrides)
