"""The packed extension for Chrome's force-install policy (``ExtensionInstallForcelist``): the
update manifest ``/extension/updates.xml`` and the signed ``/extension/callpop-<version>.crx`` it
points to, as ``make extension-package`` wrote them into ``CALLPOP_EXTENSION_DIR``.

Public and read-only: Chrome fetches them without a token (the CRX is signed, and holds nothing
secret). Only those two kinds of name are served, from that folder only; anything else, or no
folder configured, is a 404 in the JSON shape of docs/PROTOCOL.md."""

from __future__ import annotations

import re
from pathlib import Path

from typing import Annotated

from fastapi import APIRouter, Path as PathParam
from fastapi.responses import FileResponse

from .errors import ApiError

# The names extension-package writes; a pattern, so no other file of the folder (the zip, a key an
# admin left there by mistake) and no path can be asked for.
SERVED = re.compile(r"updates\.xml|callpop-\d+(?:\.\d+){0,3}\.crx")
MEDIA_TYPES = {".xml": "application/xml", ".crx": "application/x-chrome-extension"}


def router(folder: Path | None) -> APIRouter:
    r = APIRouter(prefix="/extension", tags=["extension"])

    @r.get("/{name}", summary="The extension's update manifest (updates.xml) or signed package "
                              "(callpop-<version>.crx), for a force-install by policy", response_class=FileResponse)
    async def package(name: Annotated[str, PathParam(max_length=64)]) -> FileResponse:
        if folder is None:
            raise ApiError(404, "not_found", "this hub serves no extension package: set CALLPOP_EXTENSION_DIR")
        if not SERVED.fullmatch(name):
            raise ApiError(404, "not_found", "only updates.xml and callpop-<version>.crx are served here")
        path = folder / name
        if not path.is_file():
            raise ApiError(404, "not_found", f"{name} is not in the extension folder: run make extension-package")
        # no-cache: Chrome must see a new updates.xml as soon as the admin copies one in.
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})

    return r
