"""A real Redis for the cluster tests and benchmarks: Debian's ``redis-server`` on a free
loopback port, in a folder of its own, with the append-only file on (as deploy/ runs it).

``stop()`` and ``start()`` again keep the port and the folder, so a hub sees the same Redis go
away and come back (with what its AOF kept); ``kill()`` is a crash (SIGKILL). With ``config`` it
runs that redis.conf (deploy/cluster/redis.conf) instead, only its port, folder and log file
set here, and ``password`` is the file's requirepass.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import quote

from . import free_port, unavailable, wait_until

SERVER = "/usr/bin/redis-server"
CLI = "/usr/bin/redis-cli"


class RedisServer:
    def __init__(self, folder: Path, fsync: str = "always", config: Path | None = None, password: str = ""):
        if not Path(SERVER).is_file():
            unavailable(f"no {SERVER} (make redis installs Debian's redis-server)")
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.fsync = fsync
        self.config, self.password = config, password
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        here = ["--port", str(self.port), "--dir", str(self.folder), "--daemonize", "no",
                "--logfile", str(self.folder / "redis.log")]
        argv = [SERVER, str(self.config), *here] if self.config else [
            SERVER, *here, "--bind", "127.0.0.1", "--appendonly", "yes", "--appendfsync", self.fsync, "--save", "",
            "--protected-mode", "yes"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.cli("PING") == "PONG", timeout=15, what=f"redis on port {self.port}")
        return self

    def cli(self, *args: str) -> str:
        env = {**os.environ, "REDISCLI_AUTH": self.password} if self.password else None
        out = subprocess.run([CLI, "-p", str(self.port), *args], capture_output=True, text=True, timeout=10, env=env)
        return out.stdout.strip()

    def stop(self) -> None:
        """A clean shutdown (what a restart by systemd does)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=15)
        self.proc = None

    def info(self, section: str) -> dict[str, str]:
        return dict(line.split(":", 1) for line in self.cli("INFO", section).splitlines() if ":" in line)

    def cpu_s(self) -> float:
        """CPU seconds the server has used (user + system), from its own INFO."""
        info = self.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def commands(self) -> int:
        """Commands the server has run since it started."""
        return int(self.info("stats")["total_commands_processed"])

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()

