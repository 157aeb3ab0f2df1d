"""``callpop <command>`` (or ``python -m pipelines``): serve (the hub), demo (the whole demo: ``make
run``), settings, seed (history), agents, ring."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import settings as settings_mod
from .agents import Agents, AgentsError, hash_tokens, issue_token
from .resources import console_app, data_file

# The demo's own world: its database and history, the demo agents (their tokens are public), the
# simulated PBX and the sample CRM. Nothing of it touches the settings ``serve`` uses.
DEMO = {"agents_csv": data_file("agents.csv"), "contacts_csv": data_file("contacts.csv"),
        "ingest_token": "demo-ingest-token", "provider": "sim", "crm_url": "", "sample_crm": True,
        "dial_allowed_countries": ["IL", "US", "GB"]}  # the sample contacts' countries
DEMO_DIR = Path("var") / "demo"  # the demo's database lives here (relative to the working directory)
DEMO_HISTORY_DAYS = 30
DEMO_CALLS_PER_DAY = 400


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import serve
    from .store import in_use
    s = settings_mod.load()
    setup_logging(s.log_level)
    env = settings_mod.configured_env_file().resolve()
    logging.getLogger("callpop").info("settings: %s (%s), database %s, agents %s", env,
                                      "read" if env.is_file() else "none there", s.db_path.resolve(),
                                      s.agents_csv.resolve())
    if busy := _port_taken(s.host, s.port, "CALLPOP_PORT") or in_use(s.db_path):
        print(f"callpop: {busy}", file=sys.stderr)
        return 2
    serve(s)
    return 0


def _port_taken(host: str, port: int, setting: str) -> str:
    """'' when HOST:PORT is free to listen on, else one line saying so and what to change."""
    if port == 0:
        return ""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            return (f"port {port} on {host} is taken ({e.strerror}); stop what holds it, or choose another port "
                    f"with {setting}=<port>")
    return ""


def cmd_settings(args: argparse.Namespace) -> int:
    if args.example:
        sys.stdout.write(settings_mod.env_example())
        return 0
    values = settings_mod.load().redacted()
    env = settings_mod.configured_env_file().resolve()
    print(f"settings file: {env} ({'read' if env.is_file() else 'none there'})", file=sys.stderr)
    rows = settings_mod.described()
    width = max(len(env) for env, *_ in rows)
    for env, help_text, *_ in rows:
        print(f"{env:<{width}}  {values[env]:<24}  {help_text}")
    return 0


def cmd_agents(args: argparse.Namespace) -> int:
    """Tokens in the agents file: a new one for an agent (shown once, its digest stored), or
    every plaintext token replaced by its digest."""
    path = Path(args.file) if args.file else settings_mod.load().agents_csv
    if args.action == "token":
        if not args.agent_id:
            print("callpop agents token: which agent? callpop agents token <id>", file=sys.stderr)
            return 2
        token = issue_token(path, args.agent_id)
        print(f"New token for {args.agent_id} (shown only now; {path} keeps its digest; a running hub reads it within seconds):",
              file=sys.stderr)
        print(token)
    else:
        print(f"{path}: {hash_tokens(path)} plaintext token(s) replaced by their digests")
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    """Fill a database with generated history (pipelines/history.py)."""
    import datetime as dt
    from . import history
    s = settings_mod.load()
    end = dt.date.fromisoformat(args.end) if args.end else None
    try:
        summary = history.generate(args.db or s.db_path, days=args.days, calls_per_day=args.calls_per_day,
                                   seed=args.seed, end=end, replace=args.replace, events=not args.no_events,
                                   agents_csv=s.agents_csv, contacts_csv=s.contacts_csv, region=s.default_region,
                                   progress=(lambda line: print(line, file=sys.stderr)) if args.verbose else None)
    except RuntimeError as e:
        print(f"callpop seed: {e}", file=sys.stderr)
        return 2
    print(f"{args.db or s.db_path}: {summary}")
    return 0


def _demo_agents(folder: Path) -> Path:
    """The demo's agents file, a copy in its folder: the console's Agents page writes to it, never
    to the file callpop ships."""
    path = folder / "agents.csv"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DEMO["agents_csv"], path)
    return path


def cmd_demo(args: argparse.Namespace) -> int:
    """The whole demo: the hub on the simulated PBX and sample CRM, with history, and the console."""
    if importlib.util.find_spec("streamlit") is None:
        print("callpop demo: the console is not installed: pip install 'callpop[console]'", file=sys.stderr)
        return 2
    folder = Path(args.dir).resolve()
    demo = {**DEMO, "db_path": folder / "callpop.duckdb", "agents_csv": _demo_agents(folder)}
    s = settings_mod.load().replace(**demo)
    setup_logging(s.log_level)
    console_port = args.console_port or s.console_port
    for busy in (_port_taken(s.host, s.port, "CALLPOP_PORT"),
                 _port_taken(s.console_host, console_port, "CALLPOP_CONSOLE_PORT")):
        if busy:
            print(f"callpop: {busy}", file=sys.stderr)
            return 2
    if not s.db_path.exists():
        from . import history
        print(f"Making {DEMO_HISTORY_DAYS} days of demo history in {s.db_path} ...", flush=True)
        history.generate(s.db_path, days=DEMO_HISTORY_DAYS, calls_per_day=DEMO_CALLS_PER_DAY, seed=1,
                         agents_csv=s.agents_csv, contacts_csv=s.contacts_csv, region=s.default_region)
    env = {**os.environ, **s.as_environ()}  # the children run on exactly these settings
    hub_url = s.base_url
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the children as Ctrl-C does
    procs: list[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "pipelines", "serve"], env=env))
        if not _wait_http(f"{hub_url}/healthz", procs[0], 30):
            print("The hub did not start; see the log above.", file=sys.stderr)
            return 1
        console_env = {**env, "CALLPOP_HUB_URL": hub_url}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(console_app()), "--server.headless", "true",
             "--server.address", s.console_host, "--server.port", str(console_port),
             "--browser.gatherUsageStats", "false"],
            env=console_env, stdout=subprocess.DEVNULL))
        _banner(s, hub_url, f"http://{s.console_host}:{console_port}")
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for p in procs:  # SIGTERM: the hub finishes in-flight work and checkpoints its database
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        print("\ncallpop stopped.")


def cmd_ring(args: argparse.Namespace) -> int:
    """Ring an extension now, as a PBX would: a ringing event, then (unless answered) a hangup."""
    import uuid

    import httpx
    s = settings_mod.load()
    token = DEMO["ingest_token"] if args.demo else s.ingest_token.get_secret_value()
    if not token:
        print("callpop ring: CALLPOP_INGEST_TOKEN is empty (for the demo hub of make run, add --demo)", file=sys.stderr)
        return 2
    call_id = f"ring-{uuid.uuid4().hex[:8]}"
    url = f"{s.base_url}/api/events"

    def post(kind: str, **extra) -> bool:
        try:
            r = httpx.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=10,
                           json={"call_id": call_id, "type": kind, "caller": args.caller, **extra})
        except httpx.HTTPError as e:
            print(f"callpop ring: no hub at {s.base_url} ({e}); start it with make run", file=sys.stderr)
            return False
        if r.status_code != 202:
            print(f"callpop ring: the hub answered {r.status_code}: {r.text[:300]}", file=sys.stderr)
            return False
        return True

    if not post("ringing", extension=args.extension):
        return 1
    print(f"{call_id}: {args.caller} ringing at extension {args.extension}; it hangs up in {args.seconds:g} s "
          "(Ctrl-C: now)", flush=True)
    try:
        time.sleep(args.seconds)
    except KeyboardInterrupt:
        pass
    return 0 if post("hangup", cause="callpop ring") else 1


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _wait_http(url: str, proc: subprocess.Popen, seconds: float) -> bool:
    import httpx
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def _banner(s: settings_mod.Settings, hub_url: str, console_url: str) -> None:
    agents = Agents.from_csv(s.agents_csv)  # the demo's: plaintext tokens, public
    lines = [
        "", "callpop is running (Ctrl-C stops everything)", "",
        f"  Console  {console_url}",
        f"  Hub      {hub_url}   (API docs: {hub_url}/docs)",
        f"  PBX      {s.provider}" + (f"  - about {s.sim_calls_per_minute:g} simulated calls a minute"
                                    if s.provider == "sim" else ""),
        f"  CRM      {'sample CRM at ' + hub_url + '/crm/lookup?phone=0722776772' if not s.crm_url else 'configured'}",
        "", "  Demo agents (their tokens are public: the demo's only; paste one into the console or the "
            "extension's options):",
    ]
    lines += [f"    {a.name:<14} ext {a.extension:<5} token {a.token}" for a in agents]
    lines += ["", "  A pop on demand: callpop ring --demo 201 0722776772   (in a checkout: .venv/bin/callpop)",
              "", "  Chrome extension (the repository's extension/ folder, after make): chrome://extensions -> "
              "Developer mode -> Load unpacked", f"  then in its options: hub {hub_url} and an agent token.", ""]
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callpop", description="callpop: the click-to-call and screen-pop hub")
    parser.add_argument("--env-file", metavar="PATH",
                        help=f"the settings file (sets {settings_mod.ENV_FILE_VAR}; default .env in the working "
                             "directory); under systemd give it explicitly")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the hub with the settings from the environment / .env").set_defaults(func=cmd_serve)
    demo = sub.add_parser("demo", help="the whole demo (make run): hub on the simulated PBX and sample CRM, "
                                       "its own database with history, and the console")
    demo.add_argument("--console-port", type=int, default=0, help="default CALLPOP_CONSOLE_PORT (8501)")
    demo.add_argument("--dir", default=str(DEMO_DIR), help="where the demo keeps its database and its agents file (default var/demo)")
    demo.set_defaults(func=cmd_demo)
    ring = sub.add_parser("ring", help="ring an extension on the running hub now (a pop on demand)")
    ring.add_argument("extension", help="the extension that rings, e.g. 201")
    ring.add_argument("caller", nargs="?", default="0722776772", help="the calling number (default John Doe's)")
    ring.add_argument("--seconds", type=float, default=20, help="how long it rings before hanging up")
    ring.add_argument("--demo", action="store_true", help="the demo hub of make run (its public ingest token)")
    ring.set_defaults(func=cmd_ring)
    st = sub.add_parser("settings", help="print every setting with its value and help")
    st.add_argument("--example", action="store_true", help="print .env.example")
    st.set_defaults(func=cmd_settings)
    agents = sub.add_parser("agents", help="agents' tokens: issue a new one, or store digests instead of plaintext")
    agents.add_argument("action", choices=("token", "hash"), help="token: a new token for one agent (printed once); "
                        "hash: replace every plaintext token in the file by its digest")
    agents.add_argument("agent_id", nargs="?", help="token: the agent's id")
    agents.add_argument("--file", help="the agents file (default CALLPOP_AGENTS_CSV)")
    agents.set_defaults(func=cmd_agents)
    seed = sub.add_parser("seed", help="fill a database with realistic generated history (stop the hub first)")
    seed.add_argument("--db", type=Path, help="database file (default CALLPOP_DB_PATH)")
    seed.add_argument("--days", type=int, default=30, help="days of history, ending yesterday (default 30)")
    seed.add_argument("--calls-per-day", type=float, default=2000, help="inbound calls a day on average")
    seed.add_argument("--seed", type=int, default=1, help="random seed: the same arguments give the same rows")
    seed.add_argument("--end", help="first day after the history, YYYY-MM-DD (default today, Asia/Jerusalem)")
    seed.add_argument("--replace", action="store_true", help="delete the file first if it exists")
    seed.add_argument("--no-events", action="store_true", help="skip the events table (faster for benchmarks)")
    seed.add_argument("-v", "--verbose", action="store_true", help="print progress")
    seed.set_defaults(func=cmd_seed)
    args = parser.parse_args(argv)
    if args.env_file:  # in the environment, so the demo's children read the same file
        os.environ[settings_mod.ENV_FILE_VAR] = str(Path(args.env_file).resolve())
    try:
        return args.func(args)
    except (settings_mod.SettingsError, AgentsError) as e:
        print(f"callpop: {e}", file=sys.stderr)
        return 2
