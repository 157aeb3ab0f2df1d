"""deploy/'s files run as a server runs them: a systemd unit's command line and environment
(callpop from this checkout), and Debian's caddy with one of the Caddyfiles, its own internal CA
instead of Let's Encrypt, on loopback ports."""

from __future__ import annotations

import configparser
import contextlib
import os
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support import ROOT, wait_until
from tests.support.procs import Proc

DEPLOY = ROOT / "deploy"
CADDY = "/usr/bin/caddy"
ACCESS_LOG = "callpop-access-log.caddy"  # what both Caddyfiles import, installed beside them
# Instead of Let's Encrypt: Caddy's own CA (the test trusts its root), no admin endpoint, no
# redirect server on port 80; everything else is the Caddyfile's own.
TEST_OPTIONS = ("admin off", "local_certs", "skip_install_trust", "auto_https disable_redirects",
                "default_bind 127.0.0.1")


def _service(unit: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # systemd's keys are case-sensitive
    assert parser.read(DEPLOY / unit), unit
    return parser["Service"]


def exec_start(unit: str, env_file: Path = DEPLOY / "callpop.env.example") -> list[str]:
    """deploy/<unit>'s ExecStart, run from this checkout: its callpop is `python -m pipelines`, its
    settings file ``env_file``."""
    argv = shlex.split(_service(unit)["ExecStart"])
    assert argv[0] == "/opt/callpop/bin/callpop" and argv[1:3] == ["--env-file", "/etc/callpop/callpop.env"], argv
    return [sys.executable, "-m", "pipelines", "--env-file", str(env_file), *argv[3:]]


def unit_environment(unit: str, instance: str = "") -> dict[str, str]:
    """deploy/<unit>'s Environment=, with the systemd specifiers it uses filled in as systemd
    would for that instance (%i the instance, %H the host name)."""
    values = {"i": instance, "H": socket.gethostname(), "%": "%"}
    out = {}
    for assignment in shlex.split(_service(unit).get("Environment", "")):
        name, _, value = assignment.partition("=")
        parts = value.split("%")
        out[name] = parts[0] + "".join(values[p[0]] + p[1:] for p in parts[1:])
    return out


def caddyfile(tmp: Path, source: str = "Caddyfile") -> Path:
    """deploy/<source> with TEST_OPTIONS added to its global options block, in ``tmp`` with the
    access log file it imports beside it (as in /etc/caddy/)."""
    lines = (DEPLOY / source).read_text().splitlines()
    opening = lines.index("{")  # the global options block: the first block of the file
    lines[opening + 1:opening + 1] = [f"\t{option}" for option in TEST_OPTIONS]
    path = tmp / "Caddyfile"
    path.write_text("\n".join(lines) + "\n")
    shutil.copy(DEPLOY / ACCESS_LOG, tmp / ACCESS_LOG)
    return path


def start_caddy(tmp: Path, source: str, cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    """Caddy with deploy/<source> (``caddyfile``) and these variables in its environment (the
    sites, upstreams, access log); returns it and the root certificate of its CA (there once
    Caddy made it). Its output: ``tmp``/caddy.log."""
    data = tmp / "xdg-data"
    caddy = subprocess.Popen(
        [CADDY, "run", "--adapter", "caddyfile", "--config", str(caddyfile(tmp, source))], cwd=cwd,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp), "XDG_DATA_HOME": str(data),
             "XDG_CONFIG_HOME": str(tmp / "xdg-config"), **env},
        stdout=(tmp / "caddy.log").open("w"), stderr=subprocess.STDOUT)
    return caddy, data / "caddy" / "pki" / "authorities" / "local" / "root.crt"


def wait_serving(proc, url: str, root: Path, path: str, log: Path, seconds: float) -> None:
    """Until ``url + path`` answers 200 over TLS; a failure with ``log``'s end if it does not."""
    with contextlib.suppress(AssertionError):
        wait_until(lambda: proc.poll() is not None or serves(url, root, path), seconds, 0.2)
    if proc.poll() is not None or not serves(url, root, path):
        pytest.fail(f"{log.stem} did not start:\n" + log.read_text()[-3000:])


def serves(url: str, root: Path, path: str = "/healthz") -> bool:
    if not root.is_file():
        return False
    try:
        return httpx.get(url + path, verify=trusting(root), timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def trusting(root: Path) -> ssl.SSLContext:
    """TLS that trusts Caddy's internal CA only (not the system's)."""
    return ssl.create_default_context(cafile=str(root))


def stop(procs: list) -> None:
    """SIGTERM each (the last started first), SIGKILL what does not end."""
    for p in reversed(procs):
        if isinstance(p, Proc):
            p.terminate()
        elif p.poll() is None:
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
