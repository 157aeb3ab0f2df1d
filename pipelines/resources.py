"""Files callpop ships: ``data/`` of the repository, installed as the package ``pipelines.data``
(pyproject.toml maps it), so a wheel and an editable checkout find them the same way."""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path


def data_file(name: str) -> Path:
    """A file of data/ (schema.sql, agents.csv, contacts.csv) as a path on disk.

    A path, not only a resource: the demo hands the samples' paths to its child processes. The
    package is installed as plain files (never zipped), where ``files()`` is a directory."""
    path = Path(str(files("pipelines.data").joinpath(name)))
    if not path.is_file():
        raise FileNotFoundError(f"{name} is not among callpop's data files ({path.parent})")
    return path


def console_app() -> Path:
    """The console's entry script, for ``streamlit run`` (the console is a package, like the hub)."""
    return Path(str(files("console").joinpath("app.py")))


def console_command(host: str, port: int) -> list[str]:
    """The console's command line: Streamlit serving the console package on host:port."""
    return [sys.executable, "-m", "streamlit", "run", str(console_app()), "--server.headless", "true",
            "--server.address", host, "--server.port", str(port), "--browser.gatherUsageStats", "false"]
