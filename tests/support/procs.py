"""Processes for fault tests and benchmarks: the real hub (``python -m pipelines serve``, set up
through its ``CALLPOP_*`` environment), the bare CRM of ``tests.support.barecrm``, an agents CSV
of any size; and what the kernel says about a process (address, RSS, CPU per thread, children).

Every process binds port 0 and prints the address it got ("... listening on http://HOST:PORT");
we parse that line, so runs never collide with each other or with a hub someone is running on
the default port.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from . import INGEST, ROOT

_LISTENING = re.compile(r"listening on (http://[\w.\-\[\]:]+)")


def write_agents_csv(path: Path, n: int, first_extension: int = 1000) -> list[dict[str, str]]:
    """``n`` agents with extensions first_extension..; returns the rows (tokens included)."""
    rows = [{"id": f"a{i:04d}", "name": f"Agent {i:04d}", "token": f"tok-{i:04d}-bench",
             "extension": str(first_extension + i), "mobile": "", "home": "", "role": "agent"}
            for i in range(n)]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return rows


class Proc:
    """A child process that prints 'listening on http://HOST:PORT' on stderr or stdout."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, name: str = "proc",
                 start_timeout: float = 60.0, cwd: Path = ROOT):
        self.name = name
        self.log: list[str] = []
        self.proc = subprocess.Popen(argv, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self._url = threading.Event()
        self.url = ""
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"{name}-log")
        self._reader.start()
        if not self._url.wait(start_timeout):
            self.kill()
            raise RuntimeError(f"{name} did not start:\n" + "\n".join(self.log[-30:]))
        if not self.url:
            raise RuntimeError(f"{name} exited before listening:\n" + "\n".join(self.log[-30:]))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line.rstrip())
            if not self.url and (m := _LISTENING.search(line)):
                self.url = m.group(1)
                self._url.set()
        self._url.set()  # exited

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/ws"

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def rss_kb(self) -> int:
        return rss_kb(self.pid)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            try:
                self.terminate(30)
            except subprocess.TimeoutExpired:
                pass


def hub_env(db_path: Path, agents_csv: Path, crm_url: str = "", **settings) -> dict[str, str]:
    """The environment of a hub on a free port of 127.0.0.1 with these agents, this CRM, the
    simulated PBX silent and the ingest token ``INGEST``; ``settings`` are more ``CALLPOP_*``."""
    env = {"CALLPOP_PORT": "0", "CALLPOP_HOST": "127.0.0.1", "CALLPOP_DB_PATH": str(db_path),
           "CALLPOP_AGENTS_CSV": str(agents_csv), "CALLPOP_INGEST_TOKEN": INGEST, "CALLPOP_PROVIDER": "sim",
           "CALLPOP_SIM_CALLS_PER_MINUTE": "0", "CALLPOP_CRM_URL": crm_url, "CALLPOP_SAMPLE_CRM": str(not crm_url).lower(), "PYTHONASYNCIODEBUG": ""}
    env.update({f"CALLPOP_{k.upper()}": str(v) for k, v in settings.items()})
    env["CALLPOP_LOG_LEVEL"] = "INFO"  # the "listening on" line we wait for is logged at INFO
    return env


def start_hub(db_path: Path, agents_csv: Path, crm_url: str = "", **settings) -> Proc:
    """The real hub, as operators run it, in its own process."""
    return Proc([sys.executable, "-m", "pipelines", "serve"], hub_env(db_path, agents_csv, crm_url, **settings),
                name="hub")


def start_crm(delay_ms: float = 0.0) -> Proc:
    """The bare CRM of tests/support/barecrm.py in its own process; its lookup URL is
    ``proc.url + '/lookup'``."""
    return Proc([sys.executable, "-m", "tests.support.barecrm", "--delay-ms", str(delay_ms)], name="crm")


# --- what the kernel says about a process
def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds used so far by a process: its main thread (the event loop of an asyncio
    server) and the rest: its other threads and its child processes' (Python thread names do not
    reach the kernel)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"main": 0.0, "other": 0.0}
    for proc in [pid, *descendants(pid)]:
        try:
            tasks = list(Path(f"/proc/{proc}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                fields = _stat(task / "stat")
            except OSError:
                continue
            out["main" if task.name == str(pid) else "other"] += (int(fields[11]) + int(fields[12])) / tick
    return out


def _stat(path: Path) -> list[str]:
    """The fields of a /proc stat file after the command name (which may hold spaces)."""
    return path.read_text().rsplit(")", 1)[1].split()


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the hub's store writer, and anything it starts)."""
    parent_of: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent_of[int(stat.parent.name)] = int(_stat(stat)[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = [], [pid]
    while frontier:
        below = [child for child, parent in parent_of.items() if parent in frontier]
        found += below
        frontier = below
    return found


def cpu_ticks() -> tuple[int, int]:
    """(ticks stolen by the hypervisor, all ticks) of every core so far (/proc/stat): on a shared
    virtual machine, the share stolen over a run says how much slower its figures are."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    import platform
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": model or platform.processor() or "?", "cores": str(os.cpu_count()), "memory": mem,
            "python": platform.python_version(), "os": f"{platform.system()} {platform.release()}"}



def start_recorder(db_path: Path, redis_url: str, **settings) -> Proc:
    """The cluster's recorder (``callpop record``) on a free port, writing ``db_path``."""
    env = {"CALLPOP_PORT": "0", "CALLPOP_HOST": "127.0.0.1", "CALLPOP_DB_PATH": str(db_path),
           "CALLPOP_REDIS_URL": redis_url, "CALLPOP_LOG_LEVEL": "INFO", "PYTHONASYNCIODEBUG": ""}
    env.update({f"CALLPOP_{k.upper()}": str(v) for k, v in settings.items()})
    return Proc([sys.executable, "-m", "pipelines", "record"], env, name="recorder")
