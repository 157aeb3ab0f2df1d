"""The database file: who holds it, and the schema it is made with (an older release's file is
upgraded by ``migrations.py``)."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from .resources import data_file

SCHEMA = data_file("schema.sql")
CONFIG = {"checkpoint_threshold": "1TB"}  # no checkpoint inside a COMMIT: the writer runs them


def in_use(path: Path) -> str:
    """'' when this process may open the file for writing, else who holds it (DuckDB's lock)."""
    if str(path) == ":memory:" or not Path(path).exists():
        return ""
    try:
        duckdb.connect(str(path), config=CONFIG).close()
    except duckdb.IOException as e:
        if "lock" not in str(e).lower():
            raise
        holder = re.search(r"PID (\d+)", str(e))
        return (f"the database {path} is in use by PID {holder.group(1) if holder else '?'} (another hub?): stop it, "
                f"or give this one another file with CALLPOP_DB_PATH")
    return ""
