"""Every setting of the hub, in one table: name, default, help.

Values come from the environment (``CALLPOP_<NAME>``) or from a ``.env`` file in the working
directory; the environment wins. ``.env.example`` lists the same table (a test keeps them in
step; ``python -m pipelines settings`` prints it). Secrets are marked so that nothing ever
prints their values.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping

PREFIX = "CALLPOP_"


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str  # without the prefix, lower case: the attribute name on Settings
    default: Any
    help: str
    secret: bool = False
    choices: tuple[str, ...] = ()

    @property
    def env(self) -> str:
        return PREFIX + self.name.upper()

    @property
    def kind(self) -> type:
        return type(self.default)


S = Setting
TABLE: tuple[Setting, ...] = (
    # --- the hub process
    S("host", "127.0.0.1", "Interface the hub listens on (HTTP API and WebSocket on one port)."),
    S("port", 8765, "Port the hub listens on; 0 picks a free port (the hub logs which)."),
    S("public_url", "", "Base URL browsers use to reach the hub, if not http://HOST:PORT (behind a proxy)."),
    S("log_level", "INFO", "Log level: DEBUG, INFO, WARNING or ERROR.", choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    S("db_path", "data/callpop.duckdb", "DuckDB file the hub owns (only the hub opens it while it runs)."),
    S("store_commit_ms", 2000.0, "Longest a row waits to share a DuckDB commit. Each statement costs ~2 ms of CPU "
      "whatever its size: at 20 events/s the writer took ~12% of a core at 100 ms, ~4% at 500 ms, ~1.7% at 2000 ms "
      "(and, with the writer in a thread of the hub, the pops' p99 fell with it). Analytics lag by as much. An "
      "event's 202 does not wait for it (its journal line is synced first)."),
    S("store_process", True, "Run the DuckDB writer (and every read of the file) in a process of its own, so its "
      "commits never hold the hub's GIL while a pop is on its way; off: a thread of the hub."),
    S("store_send_linger_ms", 10.0, "With the writer in its own process: how long the hub holds a write before "
      "sending it, with whatever else queues meanwhile. An event's rows then leave after its pop, and the "
      "writer works while the event loop is idle (pop p50 -0.5 ms, p95 -3 ms at 20 events/s). An event's 202 "
      "waits as much longer."),
    S("max_body_bytes", 65536, "Largest HTTP request body accepted; larger ones get 413."),
    # --- who may connect
    S("agents_csv", "data/agents.csv", "Agents: CSV with id,name,token,extension,mobile,home[,role,expires_at,disabled]."),
    S("ingest_token", "", "Bearer token a PBX must send to POST /api/events; empty refuses every event.", secret=True),
    S("contacts_csv", "data/contacts.csv", "Contacts served by the sample CRM and the console's contact grid."),
    # --- telephony provider
    S("provider", "sim", "Telephony provider: sim (simulated PBX), webhook, voicenter or asterisk.",
      choices=("sim", "webhook", "voicenter", "asterisk")),
    S("default_region", "IL", "Country (ISO 3166 code) for numbers written without an international prefix."),
    S("sim_calls_per_minute", 4.0, "sim: inbound calls the simulated PBX makes per minute (0 = none)."),
    S("sim_seed", "", "sim: random seed for a repeatable run (empty = different every run)."),
    S("sim_speed", 1.0, "sim: time scale of simulated rings and talk (2 = twice as fast)."),
    S("webhook_dial_url", "", "webhook: URL the hub POSTs {dial_id, leg_a, leg_b} to for click-to-call."),
    S("voicenter_secret", "", "voicenter: if set, every /voicenter/* request must carry ?key=<this> (put it in the URLs "
      "you paste into Voicenter).", secret=True),
    S("voicenter_code", "", "voicenter: the account's Click2Call API token ('code', from Voicenter's back office).",
      secret=True),
    S("voicenter_click2call_url", "https://api.voicenter.com/ForwardDialer/click2call.aspx",
      "voicenter: the Click2Call API endpoint."),
    S("voicenter_timeout_s", 5.0, "voicenter: deadline for each Click2Call request."),
    S("voicenter_timezone", "Asia/Jerusalem", "voicenter: zone of the epoch times in Voicenter's CDRs (documented "
      "as Israel time; UTC if yours are true Unix times)."),
    S("ami_host", "127.0.0.1", "asterisk: host of the Asterisk Manager Interface (AMI)."),
    S("ami_port", 5038, "asterisk: AMI port (manager.conf [general] port)."),
    S("ami_username", "callpop", "asterisk: AMI user (a [section] of manager.conf)."),
    S("ami_secret", "", "asterisk: that user's secret.", secret=True),
    S("ami_timeout_s", 5.0, "asterisk: deadline for connecting, logging in and each AMI action."),
    S("ami_ping_s", 20.0, "asterisk: seconds of silence after which the hub pings Asterisk (a dead link reconnects)."),
    S("ami_reconnect_max_s", 30.0, "asterisk: longest wait between reconnection attempts (backoff doubles up to it)."),
    S("ami_extension_pattern", r"^\d{2,6}$", "asterisk: regex a device name must match to be an extension "
      "(PJSIP/201-0000001b -> 201); other devices are trunks."),
    S("ami_internal_calls", "pop", "asterisk: extension-to-extension calls: pop (like any call) or ignore.",
      choices=("pop", "ignore")),
    S("ami_leg_a_extension", "PJSIP/{extension}", "asterisk: click-to-call channel for the agent's desk phone."),
    S("ami_leg_a_number", "Local/{number}@from-internal", "asterisk: click-to-call channel when leg A is a "
      "number (mobile, home, typed in)."),
    S("ami_context", "from-internal", "asterisk: dialplan context that dials leg B once leg A answers."),
    S("ami_dial_format", "dialable", "asterisk: how numbers go to the dialplan: dialable (as a local phone "
      "dials them), e164 or digits.", choices=("dialable", "e164", "digits")),
    S("ami_ring_timeout_s", 30.0, "asterisk: how long leg A rings before the click-to-call gives up."),
    S("ami_callerid", '"{to}" <{extension}>', "asterisk: caller ID leg A's phone shows ({to}, {extension}); "
      "FreePBX picks the outbound caller ID from its number part."),
    # --- CRM lookup (see crm-contract.md)
    S("crm_url", "", "The customer's lookup URL (GET ?phone=...); empty = the built-in sample CRM."),
    S("crm_phone_param", "phone", "Query parameter that carries the number to the CRM."),
    S("crm_phone_format", "raw", "Number format sent to the CRM: raw, national, e164 or digits.",
      choices=("raw", "national", "e164", "digits")),
    S("crm_context_params", "", "Extra parameters sent to the CRM, comma-separated: did, extension, call_id, direction."),
    S("crm_auth_header", "", "Header sent with every lookup, as 'Name: value' (e.g. 'Authorization: Bearer x').", secret=True),
    S("crm_deadline_ms", 1500, "Time the agent waits for the CRM; then a provisional pop, updated if the answer comes."),
    S("crm_late_timeout_ms", 10000, "How long a late answer is still awaited to update the pop; then the lookup is dropped."),
    S("crm_max_bytes", 262144, "Largest CRM answer read; a bigger one is a bad_response."),
    S("crm_cache_ttl_s", 60.0, "How long a found/not found answer is served from the cache (refreshed behind)."),
    S("crm_cache_refresh_s", 5.0, "A cache hit older than this triggers a refresh behind the pop."),
    S("crm_cache_size", 2048, "Numbers kept in the lookup cache."),
    S("crm_max_connections", 100, "Lookups in flight to the CRM at once (more wait their turn, within the deadline)."),
    # --- click-to-call
    S("dial_blocked_prefixes", "+1900,+1976,+44871,+44872,+44873,+449,+9721900,+9721901,+9721919",
      "E.164 prefixes never dialled (premium rate, toll fraud), comma-separated."),
    S("dial_allowed_countries", "", "If set, only these country codes may be dialled (e.g. 'IL,US,GB')."),
    S("dial_rate_per_minute", 10, "Click-to-calls one agent may start per minute."),
    # --- WebSocket sessions
    S("ws_heartbeat_s", 15.0, "Seconds between the hub's heartbeat messages (a MV3 worker needs one every <30 s)."),
    S("ws_hello_timeout_s", 10.0, "Seconds a new socket has to send its hello before it is closed."),
    S("ws_send_queue", 256, "Messages queued for one browser before it is dropped as too slow."),
    S("ws_send_timeout_s", 10.0, "Seconds one send may take before the socket is dropped as too slow."),
)
BY_NAME = {s.name: s for s in TABLE}


class SettingsError(ValueError):
    pass


_BOOLS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _convert(setting: Setting, raw: str) -> Any:
    kind = setting.kind
    raw = raw.strip()
    try:
        if kind is bool:
            value: Any = _BOOLS[raw.lower()]
        elif kind is int:
            value = int(raw)
        elif kind is float:
            value = float(raw)
        else:
            value = raw
    except (ValueError, KeyError):
        raise SettingsError(f"{setting.env}={raw!r} is not a valid {kind.__name__}"
                            + (" (true/false, yes/no, on/off or 1/0)" if kind is bool else "")) from None
    if setting.choices:
        match = {c.lower(): c for c in setting.choices}.get(str(value).lower())
        if match is None:
            raise SettingsError(f"{setting.env} must be one of {', '.join(setting.choices)}, not {raw!r}")
        value = match
    return value


def read_env_file(path: Path) -> dict[str, str]:
    """The KEY=value lines of a .env file (comments and blank lines skipped, quotes removed)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip().removeprefix("export ").strip()] = value
    return values


@dataclasses.dataclass(frozen=True)
class Settings:
    values: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def replace(self, **changes: Any) -> "Settings":
        unknown = set(changes) - set(BY_NAME)
        if unknown:
            raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")
        return Settings({**self.values, **changes})

    def redacted(self) -> dict[str, Any]:
        """The settings as they may be shown or logged: secrets say only whether they are set."""
        return {
            s.env: ("(set)" if self.values[s.name] else "(empty)") if s.secret else self.values[s.name]
            for s in TABLE
        }

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"

    def csv_list(self, name: str) -> list[str]:
        return [p.strip() for p in str(self.values[name]).split(",") if p.strip()]


def load(environ: Mapping[str, str] | None = None, env_file: Path | str | None = ".env",
         **overrides: Any) -> Settings:
    """Settings from defaults, then the .env file, then the environment, then ``overrides``."""
    environ = os.environ if environ is None else environ
    from_file = read_env_file(Path(env_file)) if env_file else {}
    values: dict[str, Any] = {}
    for s in TABLE:
        raw = environ.get(s.env, from_file.get(s.env))
        values[s.name] = s.default if raw is None else _convert(s, raw)
    return Settings(values).replace(**overrides)


def env_example() -> str:
    """The text of .env.example: every setting, its help and its default."""
    out = ["# callpop settings: copy to .env and edit. Every line is optional;",
           "# the value shown is the default. The environment overrides this file.", ""]
    for s in TABLE:
        out.append(f"# {s.help}")
        if s.choices:
            out.append(f"# one of: {', '.join(s.choices)}")
        default = s.default
        out.append(f"{s.env}={default}")
        out.append("")
    return "\n".join(out)

