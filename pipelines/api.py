"""The hub's HTTP routes (the contracts of docs/PROTOCOL.md); the app they make with the door in
front (``edge.py``) and the ``/ws`` WebSocket (``sockets.py``).

A thin shell: every route validates, authenticates and hands over to the hub. Errors always
answer ``{"error": <code>, "message": <why>}`` as JSON: a 4xx for what the caller sent, 503 with
``Retry-After`` when the hub cannot keep its promise now (the disk refuses writes), 500 for a
fault of ours. Refused input is logged and recorded in ``rejects`` (never with a token).
"""

import asyncio
import contextlib
from typing import Annotated

import duckdb
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import (agent_admin, analytics, backup, calllog, crmcheck, extension_updates, inbox_routes, metrics,
               sockets)
from .access import AgentDep, IngestDep, SupervisorDep, sees_everything
from .agents import Agent
from .contacts import parse_csv
from .demo import samplecrm
from .dial import FINAL_STATES, DialRefused
from .edge import Edge
from .errors import ApiError
from .events import DIAL_STATES, CallEvent, DialRequest, iso_utc, utcnow
from .hub import EventRefused, Hub
from .phone import normalise
from .providers.base import HangupUnsupported
from .settings import Settings
from .store import StoreUnavailable

RETRY_AFTER_S = 5  # what a 503 tells the PBX to wait before retrying


def _rings_nobody(hub: Hub, event: CallEvent) -> bool:
    return event.type == "ringing" and bool(event.extension) and not hub.agents.by_extension(event.extension)


class Accepted(BaseModel):
    status: str = Field(description="accepted, or duplicate for an event already recorded")
    call_id: str


class DialAccepted(BaseModel):
    dial_id: str
    leg_a: str
    leg_a_kind: str
    to: str


class DialProgress(BaseModel):
    state: str = Field(description=f"one of {', '.join(DIAL_STATES)}")
    error: str = Field(default="", max_length=100)
    reason: str = Field(default="", max_length=300)




class CrmCheckRequest(BaseModel):
    url: str = Field(default="", max_length=2000, description="lookup URL to check; empty = the configured CRM")
    phone: str = Field(min_length=1, max_length=64)
    phone_format: str | None = Field(default=None, description=f"one of {', '.join(crmcheck.PHONE_FORMATS)}; "
                                     "default CALLPOP_CRM_PHONE_FORMAT")


def create_app(settings: Settings, hub: Hub | None = None) -> FastAPI:
    hub = hub or Hub(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()

    app = FastAPI(title="callpop hub", version="0.1.0", lifespan=lifespan,
                  description="Screen pops and click-to-call between a PBX, a CRM and agents' browsers.")
    app.state.hub = hub
    app.add_middleware(Edge, limit=settings.max_body_bytes, hosts=settings.hosts())

    # --- errors: one shape for all
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError):
        return JSONResponse({"error": exc.code, "message": exc.message}, status_code=exc.status,
                            headers={"WWW-Authenticate": "Bearer"} if exc.status == 401 else None)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        message = "; ".join(_describe(e) for e in exc.errors())
        hub.reject(request.url.path, "invalid_request", message)
        return JSONResponse({"error": "invalid_request", "message": message}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if isinstance(exc.__cause__, RecursionError):  # FastAPI's 400 for JSON nested past what json follows
            message = "body is nested too deeply"
            hub.reject(request.url.path, "invalid_request", message)
            return JSONResponse({"error": "invalid_request", "message": message}, status_code=422)
        return JSONResponse({"error": "http_" + str(exc.status_code), "message": str(exc.detail)},
                            status_code=exc.status_code)

    @app.exception_handler(EventRefused)
    async def event_refused(request: Request, exc: EventRefused):
        hub.reject(request.url.path, exc.code, str(exc))
        return JSONResponse({"error": exc.code, "message": str(exc)}, status_code=422)

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(request: Request, exc: StoreUnavailable):
        return JSONResponse({"error": "store_unavailable", "message": f"not recorded, try again: {exc}"},
                            status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.exception_handler(Exception)
    async def fault(request: Request, exc: Exception):  # a bug of ours: said in JSON (uvicorn logs the trace)
        return JSONResponse({"error": "internal_error", "message": "the hub failed to answer this request; "
                             "it is logged"}, status_code=500)

    # --- routes
    @app.get("/healthz", tags=["hub"], summary="ok, or 503 degraded when the database refuses writes")
    async def healthz() -> JSONResponse:
        store = hub.store.state
        body = {"status": "ok" if store == "ok" else "degraded", "store": store}
        if store != "ok":
            body["reason"] = hub.store.problem
        if hub.cluster is not None:  # cluster mode: Redis holds what the 202 promises
            body["redis"] = hub.cluster.link.state
        return JSONResponse(body, status_code=200 if store == "ok" else 503)

    @app.get("/api/status", tags=["hub"], summary="Hub, provider, sockets and store at a glance")
    async def status(agent: SupervisorDep) -> dict:
        return hub.status()

    @app.get("/api/me", tags=["agents"], summary="The signed-in agent")
    async def me(agent: AgentDep) -> dict:
        return agent.public()

    @app.post("/api/events", status_code=202, tags=["telephony"], response_model=Accepted,
              summary="One normalised call event from a PBX; 202 once it is committed",
              responses={503: {"description": "not committed (the disk refuses writes): retry after Retry-After"}})
    async def events(event: CallEvent, _: IngestDep) -> Accepted:
        if _rings_nobody(hub, event):
            hub.reject("/api/events", "unknown_extension", f"call {event.call_id} ringing at {event.extension}")
            raise ApiError(422, "unknown_extension", f"no agent has extension {event.extension!r}")
        result = await hub.ingest(event, "webhook")
        return Accepted(status=result, call_id=event.call_id)

    @app.post("/api/dial", status_code=202, tags=["click-to-call"], response_model=DialAccepted,
              summary="Ring the agent's phone (leg A), then connect it to `to` (leg B)")
    async def dial(request: DialRequest, agent: AgentDep) -> DialAccepted:
        callback = hub.inbox.callback_entry(agent.id, request.callback_for)  # 422 unless an open one of yours
        try:
            plan = await hub.dialer.dial(agent, request)
        except DialRefused as e:
            raise ApiError(e.status, e.code, e.reason) from None
        if callback is not None:
            hub.inbox.called_back(callback, plan.dial_id, utcnow())
        return DialAccepted(dial_id=plan.dial_id, leg_a=plan.leg_a, leg_a_kind=plan.leg_a_kind, to=plan.leg_b_display)

    @app.get("/api/dials/{dial_id}", tags=["click-to-call"], summary="One of your dials")
    async def dial_state(dial_id: str, agent: AgentDep) -> dict:
        known = hub.dialer.get(dial_id)
        if known is not None:
            if known.plan.agent_id != agent.id:
                raise ApiError(404, "not_found", "no such dial of yours")
            return known.answer()
        # Older than what the dialer keeps (or from before a restart): the dials table has it.
        rows = await asyncio.to_thread(hub.store.query, "SELECT outcome, error, leg_b, leg_b_e164, bridged_at, "
                                       "ended_at FROM dials WHERE dial_id = ? AND agent_id = ?", [dial_id, agent.id])
        if rows.empty:
            raise ApiError(404, "not_found", "no such dial of yours")
        row = rows.iloc[0]
        state = "failed" if row["outcome"] in ("failed", "refused") else (
            "ended" if row["ended_at"] is not None and str(row["ended_at"]) != "NaT" else "bridged"
            if row["outcome"] == "bridged" else "requested")
        to = normalise(row["leg_b_e164"] or row["leg_b"], hub.settings.default_region).display
        ended = row["ended_at"] if state in ("ended", "failed") and str(row["ended_at"]) != "NaT" else None
        return {"dial_id": dial_id, "state": state, "outcome": row["outcome"], "error": row["error"], "to": to,
                "ended_at": iso_utc(ended.to_pydatetime()) if ended is not None else None}

    @app.post("/api/dials/{dial_id}/hangup", tags=["click-to-call"], summary="Hang up one of your dials")
    async def dial_hangup(dial_id: str, agent: AgentDep) -> dict:
        known = hub.dialer.get(dial_id)
        if known is None or known.plan.agent_id != agent.id:
            rows = await asyncio.to_thread(hub.store.query, "SELECT 1 FROM dials WHERE dial_id = ? AND agent_id = ?",
                                           [dial_id, agent.id])
            if rows.empty:
                raise ApiError(404, "not_found", "no such dial of yours")
            raise ApiError(409, "dial_over", "this dial is already over")
        if known.state in FINAL_STATES:
            raise ApiError(409, "dial_over", "this dial is already over")
        try:
            await hub.dialer.hangup(dial_id)
        except HangupUnsupported as e:
            raise ApiError(409, "hangup_unsupported", str(e)) from None
        return known.answer()

    @app.post("/api/dials/{dial_id}/events", tags=["telephony"], summary="A PBX reports a dial's progress")
    async def dial_event(dial_id: str, progress: DialProgress, _: IngestDep) -> dict:
        if progress.state not in DIAL_STATES:
            raise ApiError(422, "invalid_state", f"state must be one of {', '.join(DIAL_STATES)}")
        if not await hub.dial_progress(dial_id, progress.state, progress.error, progress.reason):
            raise ApiError(404, "not_found", "no dial in progress with that id")
        return {"status": "ok"}

    @app.get("/api/contacts", tags=["contacts"], summary="Contacts whose name, company or number matches")
    async def contacts(agent: AgentDep, q: Annotated[str, Query(max_length=100)] = "",
                       limit: Annotated[int, Query(ge=1, le=5000)] = 50) -> dict:
        found = hub.contacts.search(q, limit)
        return {"total": len(hub.contacts), "contacts": [c.public() for c in found]}

    @app.post("/api/contacts/import", tags=["contacts"], summary="Add contacts from CSV text (dry_run to preview)")
    async def import_contacts(request: Request, agent: SupervisorDep, dry_run: bool = False) -> dict:
        raw = await request.body()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ApiError(422, "bad_csv", "the file is not UTF-8 text") from None
        found, problems = parse_csv(text, settings.default_region)
        if not dry_run:
            for c in found:
                hub.contacts.add(c)
        return {"imported": 0 if dry_run else len(found), "valid": len(found), "dry_run": dry_run,
                "preview": [c.public() for c in found[:20]],
                "problems": [{"line": p.line, "reason": p.reason} for p in problems]}

    @app.get("/api/calls/live", tags=["calls"], summary="Calls ringing or in progress (yours; all for supervisors)")
    async def live(agent: AgentDep) -> dict:
        return {"calls": hub.live_calls(agent)}

    @app.get("/api/pops/recent", tags=["calls"], summary="The latest pops with their lookup outcome and latency")
    async def recent_pops(agent: AgentDep, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict:
        feed = list(hub.popper.recent.values())[::-1]
        if not sees_everything(agent):
            feed = [p for p in feed if agent.id in p["agents"]]
        return {"pops": feed[:limit]}

    # --- analytics: the named queries of pipelines/analytics/, run on the hub's own connection
    # (no other process may open the file while the hub holds it), two at a time, off the loop.
    analytics_slots = asyncio.Semaphore(2)

    @app.get("/api/analytics", tags=["analytics"], summary="The named analytics queries and their parameters")
    async def analytics_catalog(agent: AgentDep) -> dict:
        return {"queries": analytics.catalog()}

    @app.get("/api/analytics/{name}", tags=["analytics"], response_class=Response,
             summary="Run a named analytics query over [start, end): {name, params, columns, records}")
    async def analytics_query(
            name: str, request: Request, agent: AgentDep,
            start: Annotated[str | None, Query(max_length=40, description="ISO 8601, inclusive; naive = UTC")] = None,
            end: Annotated[str | None, Query(max_length=40, description="ISO 8601, exclusive; default now")] = None,
            bucket: Annotated[str | None, Query(max_length=20, description="minute, 5min, 15min, hour, day or week")]
            = None,
            by: Annotated[str | None, Query(max_length=20, description="grouping, where the query has one")] = None,
            tz: Annotated[str | None, Query(max_length=64, description="IANA time zone for local times")] = None,
    ) -> Response:
        query = analytics.QUERIES.get(name)
        if query is None:
            raise ApiError(404, "not_found", f"no analytics query named {name[:60]!r}; GET /api/analytics lists them")
        try:
            args = query.parse(dict(request.query_params), now=utcnow())
        except analytics.InvalidParameter as e:
            hub.reject(request.url.path, "invalid_parameter", str(e))
            raise ApiError(422, "invalid_parameter", str(e)) from None
        async with analytics_slots:
            try:
                body = await asyncio.to_thread(hub.store.run, analytics.answer, query, args,
                                               agent_id=None if sees_everything(agent) else agent.id)
            except duckdb.InterruptException:
                raise ApiError(503, "query_timeout", "the query ran too long; try a shorter range") from None
        return Response(body, media_type="application/json")

    # --- the supervisor's CRM check (pipelines/crmcheck.py): the hub's own lookup against a typed URL,
    # public addresses only (or the configured CRM), two at a time.
    check_slots = asyncio.Semaphore(2)

    @app.get("/api/crm/check", tags=["crm"], summary="What the CRM check asks by default (supervisors)")
    async def crm_check_defaults(agent: SupervisorDep) -> dict:
        return {"url": crmcheck.shown_crm_url(settings), "configured": bool(settings.crm_url),
                "phone_format": settings.crm_phone_format, "phone_formats": list(crmcheck.PHONE_FORMATS),
                "deadline_ms": settings.crm_deadline_ms}

    @app.post("/api/crm/check", tags=["crm"], summary="Run one lookup as the hub does and judge it by the contract "
              "(supervisors)")
    async def crm_check(body: CrmCheckRequest, agent: SupervisorDep) -> dict:
        if body.phone_format is not None and body.phone_format not in crmcheck.PHONE_FORMATS:
            raise ApiError(422, "invalid_request", f"phone_format must be one of {', '.join(crmcheck.PHONE_FORMATS)}")
        async with check_slots:
            try:
                report = await crmcheck.run_check(settings, body.url, body.phone, phone_format=body.phone_format)
            except crmcheck.TargetRefused as e:
                hub.reject("/api/crm/check", "target_refused", f"{agent.id}: {e}")
                raise ApiError(422, "target_refused", str(e)) from None
        return report.public()

    app.include_router(agent_admin.router(hub))  # supervisors manage agents; one-time sign-in

    if settings.sample_crm:  # the demo's: it answers anyone (the hub refuses it off loopback)
        app.include_router(samplecrm.router(lambda request: hub.contacts, settings.base_url))
    app.include_router(backup.router)
    app.include_router(calllog.router)
    app.include_router(metrics.router)
    app.include_router(extension_updates.router(settings.extension_dir))  # public: for Chrome's policy
    if (provider_routes := hub.provider.routes()) is not None:  # URLs the phone system calls, if any
        app.include_router(provider_routes)
    app.include_router(inbox_routes.router(hub))  # /api/missed
    app.include_router(sockets.router(hub, settings))  # /ws

    return app


def _describe(error: dict) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
    if error.get("type") == "json_invalid":
        return "body is not valid JSON"
    return f"{where}: {error.get('msg', 'invalid')}"
