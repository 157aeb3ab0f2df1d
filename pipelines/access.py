"""Who may do what: every HTTP route and the WebSocket sign-in are checked here, and only here,
against the caller's role (the matrix of docs/PROTOCOL.md, "Roles").

- ``agent``: their own pops, dials, calls, inbox (missed calls) and figures, the contact grid to
  dial from;
- ``supervisor``: also the team's live calls, inboxes and analytics, hub status, the CRM check and
  contact import;
- ``ingest``: the PBX's token (``CALLPOP_INGEST_TOKEN``): call events and dial progress only;
- ``metrics``: a monitoring system's token (``CALLPOP_METRICS_TOKEN``): ``GET /metrics`` only.

A route declares who may call it with ``Depends(require_role(...))``; a token that is not known
answers 401, a known token of the wrong role 403. Tokens are never logged or echoed.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .agents import ROLES, Agent
from .errors import ApiError

AGENT, SUPERVISOR, INGEST, METRICS = "agent", "supervisor", "ingest", "metrics"
STAFF = (AGENT, SUPERVISOR)
assert set(STAFF) == set(ROLES)

bearer = HTTPBearer(auto_error=False, description="An agent's token, or the ingest token for PBX routes.")


def identify(hub, token: str | None) -> tuple[str | None, Agent | None, str]:
    """(role, agent, why): the role a bearer token carries, the agent it signs in (None for the
    ingest token), or (None, None, why not)."""
    for role, secret in ((INGEST, hub.settings.ingest_token), (METRICS, hub.settings.metrics_token)):
        expected = secret.get_secret_value()
        if token and expected and hmac.compare_digest(token.encode(), expected.encode()):
            return role, None, ""
    agent, why = hub.agents.authenticate(token)
    return (agent.role, agent, "") if agent else (None, None, why)


def require_role(*roles: str) -> Callable:
    """A dependency: the signed-in Agent (None for the ingest or metrics token) when the bearer's role is
    one of ``roles``; else 401 (no or unknown token) or 403 (a role this route is not for)."""
    allowed = frozenset(roles)
    unknown = allowed - {AGENT, SUPERVISOR, INGEST, METRICS}
    assert not unknown, unknown

    async def check(request: Request,  # async: a sync dependency would run on a thread per request
                    creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Agent | None:
        hub = request.app.state.hub
        if allowed == {INGEST} and not hub.settings.ingest_token.get_secret_value():
            hub.reject(request.url.path, "unauthorized", "ingest disabled")
            raise ApiError(401, "unauthorized", "event ingest is disabled: set CALLPOP_INGEST_TOKEN")
        role, agent, why = identify(hub, creds.credentials if creds else None)
        if role is None:
            hub.reject(request.url.path, "unauthorized", why)
            raise ApiError(401, "unauthorized", why)
        if role not in allowed:
            hub.reject(request.url.path, "forbidden", f"role {role}")
            raise ApiError(403, "forbidden", f"this route is for {' or '.join(sorted(allowed))}, "
                                             f"not for the {role} role")
        return agent
    return check


AgentDep = Annotated[Agent, Depends(require_role(*STAFF))]       # an agent or a supervisor
SupervisorDep = Annotated[Agent, Depends(require_role(SUPERVISOR))]
IngestDep = Annotated[None, Depends(require_role(INGEST))]        # the PBX's token
MonitorDep = Annotated[Agent | None, Depends(require_role(SUPERVISOR, METRICS))]


def may_act_for(agent: Agent, owner_id: str) -> bool:
    """Whether ``agent`` may handle what belongs to ``owner_id`` (an inbox entry): their own, or
    anyone's for a supervisor."""
    return agent.id == owner_id or agent.role == SUPERVISOR


def sees_everything(agent: Agent) -> bool:
    """Supervisors see the whole team's calls, pops and figures; an agent only their own."""
    return agent.role == SUPERVISOR
