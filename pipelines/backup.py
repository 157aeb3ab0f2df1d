"""Backups of the database while the hub runs: ``POST /api/backup`` (``callpop backup``).

Only the hub may open its DuckDB file, so the copy is made by the hub: DuckDB's ``COPY FROM
DATABASE`` into a new file attached beside it, read on a cursor of its own. That read is one
transaction, so the copy is consistent (every row committed before it started, none of a
transaction half-written) while the writer goes on committing. The file is written under a
temporary name and renamed when complete: a backup folder never holds a half-made copy under a
backup's name. Copies go to ``CALLPOP_BACKUP_DIR``, never to a path the request names.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from datetime import datetime, timezone
from pathlib import Path

import duckdb
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from .access import SupervisorDep
from .errors import ApiError
from .store import Store

NAME = re.compile(r"callpop-\d{8}T\d{6}(\.\d{6})?Z\.duckdb")
_one_at_a_time = threading.Lock()  # the copy is attached under one name on the hub's connection


def take(store: Store, folder: Path, now: datetime | None = None) -> dict:
    """Copy the store's database into ``folder``; what was copied (file, bytes, events)."""
    now = now or datetime.now(timezone.utc)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"callpop-{now:%Y%m%dT%H%M%S.%f}Z.duckdb"
    path, partial = folder / name, folder / (name + ".partial")
    partial.unlink(missing_ok=True)

    def copy(cur: duckdb.DuckDBPyConnection) -> None:
        source = cur.execute("SELECT current_database()").fetchone()[0]
        cur.execute(f"ATTACH '{_quoted(partial)}' AS callpop_backup")
        try:
            cur.execute(f'COPY FROM DATABASE "{source}" TO callpop_backup')
        finally:
            cur.execute("DETACH callpop_backup")

    try:
        with _one_at_a_time:
            store.run(copy)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    with duckdb.connect(str(partial), read_only=True) as copy_con:
        events = copy_con.execute("SELECT count(*) FROM events").fetchone()[0]
    os.replace(partial, path)
    return {"file": name, "bytes": path.stat().st_size, "events": events,
            "taken_at": now.isoformat().replace("+00:00", "Z")}


def listed(folder: Path) -> list[dict]:
    """The backups in ``folder``, newest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if NAME.fullmatch(p.name)]
    return [{"file": p.name, "bytes": p.stat().st_size} for p in sorted(found, reverse=True)]


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


router = APIRouter(tags=["hub"])


@router.post("/api/backup", status_code=201, summary="Copy the database now (consistent, while the hub runs)")
async def backup(request: Request, _: SupervisorDep) -> dict:
    hub = request.app.state.hub
    try:
        return await asyncio.to_thread(take, hub.store, hub.settings.backups)
    except (duckdb.Error, OSError) as e:  # a full or read-only backup disk: said, the hub goes on
        reason = (f"{e.strerror} (the folder of CALLPOP_BACKUP_DIR)" if isinstance(e, OSError) and e.strerror
                  else str(e).splitlines()[0].replace(str(hub.settings.backups), "CALLPOP_BACKUP_DIR"))
        raise ApiError(503, "backup_failed", f"the backup could not be written: {reason}") from None


@router.get("/api/backups", summary="The backups the hub has made, newest first")
async def backups(request: Request, _: SupervisorDep) -> dict:
    return {"backups": listed(request.app.state.hub.settings.backups)}


@router.get("/api/backups/{name}", summary="Download one backup", response_class=FileResponse)
async def download(name: str, request: Request, _: SupervisorDep) -> FileResponse:
    path = request.app.state.hub.settings.backups / name
    if not NAME.fullmatch(name) or not path.is_file():
        raise ApiError(404, "not_found", f"no backup named {name!r}")
    return FileResponse(path, media_type="application/octet-stream", filename=name)
