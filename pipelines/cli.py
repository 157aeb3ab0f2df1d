"""``python -m pipelines <command>``: serve (the hub), demo (the whole demo: ``make run``), settings,
seed (history)."""

from __future__ import annotations

import argparse
import csv
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import settings as settings_mod

ROOT = Path(__file__).resolve().parent.parent
# The demo's own world: its database and history, the demo agents (their tokens are public), the
# simulated PBX and the sample CRM. Nothing of it touches the settings ``serve`` uses.
DEMO = {"db_path": ROOT / "var" / "demo" / "callpop.duckdb", "agents_csv": ROOT / "data" / "agents.csv",
        "contacts_csv": ROOT / "data" / "contacts.csv", "ingest_token": "demo-ingest-token", "provider": "sim",
        "crm_url": ""}
DEMO_HISTORY_DAYS = 30
DEMO_CALLS_PER_DAY = 400


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import serve
    s = settings_mod.load()
    setup_logging(s.log_level)
    env = settings_mod.ENV_FILE.resolve()
    logging.getLogger("callpop").info("settings: %s (%s), database %s, agents %s", env,
                                      "read" if env.is_file() else "none there", s.db_path.resolve(),
                                      s.agents_csv.resolve())
    serve(s)
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    if args.example:
        sys.stdout.write(settings_mod.env_example())
        return 0
    values = settings_mod.load().redacted()
    rows = settings_mod.described()
    width = max(len(env) for env, *_ in rows)
    for env, help_text, *_ in rows:
        print(f"{env:<{width}}  {values[env]:<24}  {help_text}")
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


def cmd_demo(args: argparse.Namespace) -> int:
    """The whole demo: the hub on the simulated PBX and sample CRM, with history, and the console."""
    s = settings_mod.load().replace(**DEMO)
    setup_logging(s.log_level)
    if not s.db_path.exists():
        from . import history
        print(f"Making {DEMO_HISTORY_DAYS} days of demo history in {s.db_path.relative_to(ROOT)} ...", flush=True)
        history.generate(s.db_path, days=DEMO_HISTORY_DAYS, calls_per_day=DEMO_CALLS_PER_DAY, seed=1,
                         agents_csv=s.agents_csv, contacts_csv=s.contacts_csv, region=s.default_region)
    env = {**os.environ, **{settings_mod.env_name(k): str(v) for k, v in DEMO.items()}}
    hub_url = s.base_url
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the children as Ctrl-C does
    console_port = args.console_port
    procs: list[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "pipelines", "serve"], cwd=ROOT, env=env))
        if not _wait_http(f"{hub_url}/healthz", procs[0], 30):
            print("The hub did not start; see the log above.", file=sys.stderr)
            return 1
        console_env = {**env, "CALLPOP_HUB_URL": hub_url}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "console" / "app.py"), "--server.headless", "true",
             "--server.port", str(console_port), "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=console_env, stdout=subprocess.DEVNULL))
        _banner(s, hub_url, f"http://localhost:{console_port}")
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
    with open(s.agents_csv, encoding="utf-8") as f:
        agents = list(csv.DictReader(f))
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
    lines += [f"    {a['name']:<14} ext {a['extension']:<5} token {a['token']}" for a in agents]
    lines += ["", "  Chrome extension: chrome://extensions -> Developer mode -> Load unpacked -> "
              f"{ROOT / 'extension'}", f"  then in its options: hub {hub_url} and an agent token.", ""]
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines", description="callpop hub")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the hub with the settings from the environment / .env").set_defaults(func=cmd_serve)
    demo = sub.add_parser("demo", help="the whole demo (make run): hub on the simulated PBX and sample CRM, "
                                       "its own database with history, and the console")
    demo.add_argument("--console-port", type=int, default=8501)
    demo.set_defaults(func=cmd_demo)
    st = sub.add_parser("settings", help="print every setting with its value and help")
    st.add_argument("--example", action="store_true", help="print .env.example")
    st.set_defaults(func=cmd_settings)
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
    try:
        return args.func(args)
    except settings_mod.SettingsError as e:
        print(f"callpop: {e}", file=sys.stderr)
        return 2
