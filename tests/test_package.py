"""callpop as a package: `pip install .` gives a working `callpop` command that finds its code and
data files wherever it runs, and nothing reaches its own modules through sys.path."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.support import ROOT

SOURCES = ("pyproject.toml", "README.md", "pipelines", "console", "data")


def test_nothing_edits_sys_path():
    found = []
    for folder in ("pipelines", "console", "notebooks"):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".ipynb") and "sys.path" in path.read_text(encoding="utf-8"):
                found.append(str(path.relative_to(ROOT)))
    assert found == [], "import the installed package instead (pip install -e . in a checkout)"


def test_every_package_of_the_tree_is_listed_in_pyproject():
    """The package list is explicit (data/ is mapped in): a new subpackage must be added there."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    tree = {".".join(p.parent.relative_to(ROOT).parts) for folder in ("pipelines", "console")
            for p in (ROOT / folder).rglob("__init__.py")}
    assert listed == tree | {"pipelines.data"}


def test_an_installed_copy_runs_from_anywhere(tmp_path):
    """A fresh venv, the package built from a copy of the sources (the checkout stays clean) and
    installed without dependencies: those come from this venv, added after the build (a build
    must not see them). About 3 s: the build environment's setuptools comes from the index."""
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.duckdb*"))
        else:
            shutil.copy(ROOT / name, src / name)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    built = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                            "--disable-pip-version-check", str(src)], capture_output=True, text=True, timeout=240)
    assert built.returncode == 0, built.stderr[-3000:]
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    deps = [p for p in sys.path if p.endswith("site-packages")]  # this venv's (and what it extends)
    (Path(site) / "callpop-deps.pth").write_text("".join(p + "\n" for p in deps))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {"PATH": "/usr/bin:/bin"}

    def callpop(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(venv / "bin" / "callpop"), *args], cwd=elsewhere, env=env, capture_output=True,
                              text=True, timeout=60)

    helped = callpop("--help")
    assert helped.returncode == 0 and "--env-file" in helped.stdout
    assert all(cmd in helped.stdout for cmd in ("serve", "demo", "seed", "settings", "agents", "ring"))
    shown = callpop("settings")
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"CALLPOP_PORT\s+8765", shown.stdout)
    assert f"settings file: {elsewhere / '.env'} (none there)" in shown.stderr
    (tmp_path / "hub.env").write_text("CALLPOP_PORT=9123\n")
    assert re.search(r"CALLPOP_PORT\s+9123", callpop("--env-file", str(tmp_path / "hub.env"), "settings").stdout)
    # The code, the schema, the demo's samples and the console: all in the installed copy.
    where = subprocess.run(
        [str(python), "-c", "import pipelines, console; from pipelines.resources import data_file, console_app; "
         "print(pipelines.__file__, console.__file__, console_app(), "
         "*(data_file(n) for n in ('schema.sql', 'agents.csv', 'contacts.csv')))"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=60)
    assert where.returncode == 0, where.stderr
    paths = where.stdout.split()
    assert len(paths) == 6 and all(p.startswith(site) and Path(p).is_file() for p in paths), paths
