"""Reads of a hub that holds no database: answered by the recorder, which does.

A hub in cluster mode reads what its routes read (analytics, call history, a call's notes)
through ``RemoteReads``: the SQL the hub's own code wrote, or a named analytics query, sent to
the recorder's ``POST /read`` with ``CALLPOP_RECORDER_TOKEN``; the recorder runs it on a cursor
beside its writer and answers Arrow (a DataFrame) or the analytics JSON. The route takes only
one SELECT (or WITH) statement: the hubs read, they never write through it.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import json
from typing import Any, Callable

import httpx
import pandas as pd
import pyarrow as pa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import analytics
from ..analytics.payload import answer
from ..settings import Settings
from ..store import Store, StoreUnavailable, query
from .journal import tag, untag

ARROW = "application/vnd.apache.arrow.stream"
TIMEOUT_S = 35.0  # an analytics query may run 30 s on the recorder


class RemoteReads:
    def __init__(self, settings: Settings):
        self.url = settings.recorder_url.rstrip("/") + "/read" if settings.recorder_url else ""
        self.headers = {"Authorization": f"Bearer {settings.recorder_token.get_secret_value()}"}

    def _post(self, body: dict) -> httpx.Response:
        if not self.url:
            raise StoreUnavailable("no recorder to read from (set CALLPOP_RECORDER_URL)")
        try:
            answer = httpx.post(self.url, content=json.dumps(body, default=tag), headers=self.headers,
                                timeout=TIMEOUT_S)
        except httpx.HTTPError as e:
            raise StoreUnavailable(f"the recorder did not answer ({type(e).__name__})") from None
        if answer.status_code != 200:
            raise StoreUnavailable(f"the recorder refused the read ({answer.status_code}: {answer.text[:200]})")
        return answer

    def query(self, sql: str, params: Any = None) -> pd.DataFrame:
        answer = self._post({"sql": sql, "params": params})
        return pa.ipc.open_stream(io.BytesIO(answer.content)).read_all().to_pandas()

    def analytics(self, name: str, args: dict[str, Any], agent_id: str | None) -> bytes:
        return self._post({"analytics": name, "args": args, "agent_id": agent_id}).content


def _read_only(sql: str) -> bool:
    text = sql.strip().rstrip(";")
    return text.split(None, 1)[0].upper() in ("SELECT", "WITH") and ";" not in text


def read_route(settings: Settings, store: Callable[[], Store]) -> Route:
    token = settings.recorder_token.get_secret_value()

    async def read(request: Request) -> Response:
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            return JSONResponse({"error": "unauthorized", "message": "the recorder's token is needed"}, 401)
        try:
            body = json.loads(await request.body(), object_hook=untag)
        except ValueError:
            return JSONResponse({"error": "invalid_json", "message": "the body is not JSON"}, 400)
        if "analytics" in body:
            named = analytics.QUERIES.get(body["analytics"])
            if named is None:
                return JSONResponse({"error": "not_found", "message": "no such analytics query"}, 404)
            data = await asyncio.to_thread(store().run, answer, named, body["args"], agent_id=body.get("agent_id"))
            return Response(data, media_type="application/json")
        sql = body.get("sql")
        if not isinstance(sql, str) or not _read_only(sql):
            return JSONResponse({"error": "read_only", "message": "one SELECT statement, nothing else"}, 422)
        frame = await asyncio.to_thread(store().run, query, sql, body.get("params"))
        sink = io.BytesIO()
        table = pa.Table.from_pandas(frame, preserve_index=False)
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return Response(sink.getvalue(), media_type=ARROW)

    return Route("/read", read, methods=["POST"])
