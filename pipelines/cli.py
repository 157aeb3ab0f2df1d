"""``callpop <command>`` (or ``python -m pipelines``): serve (the hub), console, demo (the whole demo:
``make run``), settings, seed (history), agents, ring, backup."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import socket
import sys
import time
from pathlib import Path

from . import logs, settings as settings_mod, settings_doc
from .agents import AgentsError, hash_tokens, issue_token
from .demo import run as demo
from .resources import console_command


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import serve
    from .store_schema import in_use
    s = settings_mod.load()
    logs.setup(s.log_level, s.log_format)
    env = settings_mod.configured_env_file().resolve()
    logging.getLogger("callpop").info("settings: %s (%s), database %s, agents %s", env,
                                      "read" if env.is_file() else "none there", s.db_path.resolve(),
                                      s.agents_csv.resolve())
    # A hub of a cluster opens no database: the recorder holds CALLPOP_DB_PATH (docs/CLUSTER.md).
    clustered = bool(s.redis_url.get_secret_value())
    if busy := _port_taken(s.host, s.port, "CALLPOP_PORT") or (not clustered and in_use(s.db_path)):
        print(f"callpop: {busy}", file=sys.stderr)
        return 2
    serve(s)
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from .cluster.recorder_app import serve
    from .store_schema import in_use
    s = settings_mod.load()
    logs.setup(s.log_level, s.log_format)
    if not s.redis_url.get_secret_value():
        print("callpop: the recorder needs CALLPOP_REDIS_URL (the Redis the hubs journal to)", file=sys.stderr)
        return 2
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
        sys.stdout.write(settings_doc.env_example())
        return 0
    values = settings_mod.load().redacted()
    env = settings_mod.configured_env_file().resolve()
    print(f"settings file: {env} ({'read' if env.is_file() else 'none there'})", file=sys.stderr)
    rows = settings_doc.described()
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
    """Fill a database with generated history (pipelines/demo/history.py)."""
    import datetime as dt
    from .demo import history
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


def cmd_demo(args: argparse.Namespace) -> int:
    """The whole demo: the hub on the simulated PBX and sample CRM, with history, and the console."""
    if importlib.util.find_spec("streamlit") is None:
        print("callpop demo: the console is not installed: pip install 'callpop[console]'", file=sys.stderr)
        return 2
    s = demo.settings_for(args.dir)
    logs.setup(s.log_level, s.log_format)
    console_port = args.console_port or s.console_port
    for busy in (_port_taken(s.host, s.port, "CALLPOP_PORT"),
                 _port_taken(s.console_host, console_port, "CALLPOP_CONSOLE_PORT")):
        if busy:
            print(f"callpop: {busy}", file=sys.stderr)
            return 2
    demo.ensure_history(s)
    return demo.run(s, console_port)


def cmd_console(args: argparse.Namespace) -> int:
    """The console alone (a service of its own next to ``serve``): Streamlit in place of this process,
    so a service manager's signals reach it."""
    if importlib.util.find_spec("streamlit") is None:
        print("callpop console: the console is not installed: pip install 'callpop[console]'", file=sys.stderr)
        return 2
    s = settings_mod.load()
    if busy := _port_taken(s.console_host, s.console_port, "CALLPOP_CONSOLE_PORT"):
        print(f"callpop: {busy}", file=sys.stderr)
        return 2
    # The console reads these from its environment, not from the settings file.
    env = {**os.environ, "CALLPOP_HUB_URL": s.hub_url, "CALLPOP_CONSOLE_SESSION_H": str(s.console_session_h)}
    argv = console_command(s.console_host, s.console_port)
    os.execve(argv[0], argv, env)


def cmd_ring(args: argparse.Namespace) -> int:
    """Ring an extension now, as a PBX would: a ringing event, then (unless answered) a hangup."""
    import uuid

    import httpx
    s = settings_mod.load()
    token = demo.INGEST_TOKEN if args.demo else s.ingest_token.get_secret_value()
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


def cmd_backup(args: argparse.Namespace) -> int:
    """Ask the running hub for a consistent copy of its database (only the hub may open the
    file); with --out, download it too. A supervisor's token from CALLPOP_TOKEN or --token-file
    (never on the command line, where other users of the machine see it)."""
    import httpx
    s = settings_mod.load()
    token = (Path(args.token_file).read_text(encoding="utf-8").strip() if args.token_file
             else os.environ.get("CALLPOP_TOKEN", ""))
    if not token:
        print("callpop backup: a supervisor's token is needed: CALLPOP_TOKEN or --token-file", file=sys.stderr)
        return 2
    hub = (args.hub or s.base_url).rstrip("/")
    headers = {"Authorization": f"Bearer {token}"}
    # The copy takes as long as the file needs: wait for it (connecting stays quick to fail).
    with httpx.Client(base_url=hub, headers=headers, verify=args.ca or True,
                      timeout=httpx.Timeout(600, connect=10)) as client:
        try:
            r = client.post("/api/backup")
            if r.status_code != 201:
                print(f"callpop backup: the hub answered {r.status_code}: {r.text[:300]}", file=sys.stderr)
                return 1
            made = r.json()
            print(f"{made['file']}: {made['events']} events, {made['bytes']} bytes, in the hub's backup folder")
            if args.out:
                out = Path(args.out)
                partial = out.with_name(out.name + ".partial")
                with client.stream("GET", f"/api/backups/{made['file']}") as got, partial.open("wb") as f:
                    got.raise_for_status()
                    for chunk in got.iter_bytes():
                        f.write(chunk)
                os.replace(partial, out)
                print(f"downloaded to {out}")
        except httpx.HTTPError as e:
            print(f"callpop backup: {hub}: {e}", file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callpop", description="callpop: the click-to-call and screen-pop hub")
    parser.add_argument("--env-file", metavar="PATH",
                        help=f"the settings file (sets {settings_mod.ENV_FILE_VAR}; default .env in the working "
                             "directory); under systemd give it explicitly")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the hub with the settings from the environment / .env").set_defaults(func=cmd_serve)
    sub.add_parser("record", help="cluster mode: the recorder, the one writer of the database (docs/CLUSTER.md)"
                   ).set_defaults(func=cmd_record)
    demo_cmd = sub.add_parser("demo", help="the whole demo (make run): hub on the simulated PBX and sample CRM, "
                                       "its own database with history, and the console")
    demo_cmd.add_argument("--console-port", type=int, default=0, help="default CALLPOP_CONSOLE_PORT (8501)")
    demo_cmd.add_argument("--dir", default=str(demo.DIR), help="where the demo keeps its database and its agents file (default var/demo)")
    demo_cmd.set_defaults(func=cmd_demo)
    sub.add_parser("console", help="run the console alone (Streamlit on CALLPOP_CONSOLE_HOST:CALLPOP_CONSOLE_PORT, "
                   "a client of CALLPOP_HUB_URL)").set_defaults(func=cmd_console)
    ring = sub.add_parser("ring", help="ring an extension on the running hub now (a pop on demand)")
    ring.add_argument("extension", help="the extension that rings, e.g. 201")
    ring.add_argument("caller", nargs="?", default="0722776772", help="the calling number (default John Doe's)")
    ring.add_argument("--seconds", type=float, default=20, help="how long it rings before hanging up")
    ring.add_argument("--demo", action="store_true", help="the demo hub of make run (its public ingest token)")
    ring.set_defaults(func=cmd_ring)
    bk = sub.add_parser("backup", help="a consistent copy of the running hub's database (CALLPOP_TOKEN: a "
                                       "supervisor's token)")
    bk.add_argument("--hub", help="the hub's URL (default CALLPOP_PUBLIC_URL, else http://HOST:PORT)")
    bk.add_argument("--token-file", help="a file holding a supervisor's token (instead of CALLPOP_TOKEN)")
    bk.add_argument("--out", help="also download the copy to this file")
    bk.add_argument("--ca", help="CA certificate file to trust for an https hub (e.g. a private CA)")
    bk.set_defaults(func=cmd_backup)
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
