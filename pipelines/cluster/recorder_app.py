"""``callpop record``: the recorder's process. It opens the DuckDB file (it is its only writer),
records the journal (``recorder.py``), writes the daily Parquet files if asked, and answers on
CALLPOP_HOST:CALLPOP_PORT: ``/healthz`` (lease, lag, store) for monitoring, and ``POST /read``
for the hubs, which hold no database (``reads.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import uvicorn
import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..calllog import CallLog
from ..server import bind
from ..settings import Settings
from ..store import Store
from .fanout import ClusterSessions
from .link import Link
from .reads import read_route
from .parquet import keep_exported
from .recorder import Recorder

log = logging.getLogger("callpop.recorder")


def create_app(settings: Settings, on_end=lambda: None) -> Starlette:
    """The recorder's app; ``on_end()`` when recording stops by itself (a lost lease): the process exits."""
    state: dict = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        store = Store(settings.db_path, commit_window_ms=settings.store_commit_ms, queue_max=settings.store_queue_max)
        await asyncio.to_thread(store.open)
        link = Link(settings, name=settings.hub_name or "")
        await link.start()
        # The call log's outbox is in this file: the recorder delivers it, and tells the agent's
        # sockets (on whichever hub) through the hubs' delivery channel.
        sessions = ClusterSessions(link)
        calllog = CallLog(settings, store, sessions, agents=lambda: None)
        recorder = Recorder(link, store, name=settings.hub_name or "", calllog=calllog,
                            lease_s=settings.recorder_lease_s)
        state.update(store=store, link=link, recorder=recorder)
        publishing = asyncio.get_running_loop().create_task(sessions.publish())
        task = asyncio.get_running_loop().create_task(recorder.run())
        task.add_done_callback(lambda t: _ended(t, on_end))
        exporting = (asyncio.get_running_loop().create_task(keep_exported(store, settings.parquet_dir))
                     if settings.parquet_dir else None)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            if exporting is not None:  # before the store closes under it
                exporting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await exporting
            publishing.cancel()
            await calllog.stop()
            await link.stop()
            await asyncio.to_thread(store.close)

    async def healthz(request: Request) -> Response:
        status = await state["recorder"].status()
        ok = status["holding_lease"] and status["redis"] == "ok" and status["store"] == "ok"
        return JSONResponse({"status": "ok" if ok else "degraded", **status}, status_code=200 if ok else 503)

    routes = [Route("/healthz", healthz), read_route(settings, lambda: state["store"])]
    return Starlette(routes=routes, lifespan=lifespan)


def _ended(task: asyncio.Task, on_end) -> None:
    if not task.cancelled():
        log.error("recorder stopped: %s", task.exception())
        on_end()


def serve(settings: Settings) -> None:
    sock, settings = bind(settings)
    server: uvicorn.Server | None = None

    def end() -> None:
        server.should_exit = True

    config = uvicorn.Config(create_app(settings, end), log_config=None, lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    log.info("callpop recorder listening on http://%s:%d (database %s)", settings.host, settings.port,
             settings.db_path.resolve())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(server.serve(sockets=[sock]))
