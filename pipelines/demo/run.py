"""``callpop demo`` (``make run``): the hub on the simulated PBX and the sample CRM, with a
database of generated history, and the console, all on loopback until Ctrl-C.

The demo's own world: its database and history, the demo agents (their tokens are public), the
simulated PBX and the sample CRM. Nothing of it touches the settings ``callpop serve`` uses."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from .. import settings as settings_mod
from ..agents import Agents
from ..resources import console_command, data_file

INGEST_TOKEN = "demo-ingest-token"  # public, like the demo agents' tokens (`callpop ring --demo`)
SETTINGS = {"agents_csv": data_file("agents.csv"), "contacts_csv": data_file("contacts.csv"),
            "ingest_token": INGEST_TOKEN, "provider": "sim", "crm_url": "", "sample_crm": True,
            "dial_allowed_countries": ["IL", "US", "GB"]}  # the sample contacts' countries
DIR = Path("var") / "demo"  # the demo's database lives here (relative to the working directory)
HISTORY_DAYS = 30
CALLS_PER_DAY = 400


def settings_for(folder: str | Path) -> settings_mod.Settings:
    """The settings in force (environment, settings file) with the demo's world on top."""
    folder = Path(folder).resolve()
    base = settings_mod.load()
    return base.replace(**{**SETTINGS, "db_path": folder / "callpop.duckdb", "agents_csv": _agents_copy(folder),
                           "crm_log_url": f"{base.base_url}/crm/log"})  # the sample CRM takes the call log


def _agents_copy(folder: Path) -> Path:
    """The demo's agents file, a copy in its folder: the console's Agents page writes to it, never
    to the file callpop ships."""
    path = folder / "agents.csv"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SETTINGS["agents_csv"], path)
    return path


def ensure_history(s: settings_mod.Settings) -> None:
    """A first run makes the demo's database: a month of history to look at."""
    if s.db_path.exists():
        return
    from . import history
    print(f"Making {HISTORY_DAYS} days of demo history in {s.db_path} ...", flush=True)
    history.generate(s.db_path, days=HISTORY_DAYS, calls_per_day=CALLS_PER_DAY, seed=1,
                     agents_csv=s.agents_csv, contacts_csv=s.contacts_csv, region=s.default_region)


def run(s: settings_mod.Settings, console_port: int) -> int:
    """The hub and the console as child processes on ``s``, until one ends or Ctrl-C / SIGTERM."""
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
        procs.append(subprocess.Popen(console_command(s.console_host, console_port), env=console_env,
                                      stdout=subprocess.DEVNULL))
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
