"""``GET /metrics``: the hub's figures in Prometheus' text format, for supervisors or a monitoring
system's token (``CALLPOP_METRICS_TOKEN``).

Two kinds, one registry per hub (a process may run several: the tests do):

- counted as they happen (``Metrics``): lookups by outcome and cache, their latency as a
  histogram, late answers, pops by whether a browser got them;
- read when scraped (``HubState``): sockets, agents online, live and ringing calls, the store's
  state and queue, events accepted and duplicate, CRM requests, commits.

Names follow Prometheus' conventions (``callpop_`` prefix, ``_total`` counters, seconds). No
label carries a number, a name or a token: only outcomes and states, so no caller leaks and the
series stay few.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .access import MonitorDep

# Around the CRM deadline (1.5 s by default): where a lookup lands matters most near it.
LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)


class Metrics:
    """What the hub counts as it happens."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._lookups = Counter("callpop_lookups", "CRM lookups made for calls, by outcome (found, multiple, "
                                "not_found, timeout, http_error, bad_response) and cache (hit, miss, ...).",
                                ["outcome", "cache"], registry=self.registry)
        self._latency = Histogram("callpop_lookup_latency_seconds", "The agent's wait for a lookup: to its answer, "
                                  "or to the deadline for a timeout.", ["cache"], buckets=LATENCY_BUCKETS_S,
                                  registry=self.registry)
        self._late = Counter("callpop_lookups_late", "Answers that came after the deadline, by outcome.",
                             ["outcome"], registry=self.registry)
        self._pops = Counter("callpop_pops", "Pops sent to an agent, by whether a browser of theirs got it "
                             "(reached=false: not signed in anywhere).", ["reached"], registry=self.registry)

    def lookup(self, outcome: str, cache: str, latency_ms: float) -> None:
        self._lookups.labels(outcome, cache).inc()
        self._latency.labels(cache).observe(latency_ms / 1000)

    def late(self, outcome: str) -> None:
        self._late.labels(outcome).inc()

    def pop(self, sessions: int) -> None:
        self._pops.labels("true" if sessions else "false").inc()

    def watch(self, hub: Any) -> None:  # the Hub (it imports this module)
        self.registry.register(HubState(hub))

    def text(self) -> bytes:
        return generate_latest(self.registry)


class HubState(Collector):
    """The hub's state, read when scraped."""

    def __init__(self, hub: Any):
        self.hub = hub

    def collect(self):
        hub = self.hub
        live = hub.book.live()
        yield _gauge("callpop_sockets", "Agent WebSockets open.", len(hub.sessions))
        yield _gauge("callpop_agents_online", "Agents with at least one socket.", len(hub.sessions.online()))
        yield _gauge("callpop_calls_live", "Calls ringing or in progress.", len(live))
        yield _gauge("callpop_calls_ringing", "Calls ringing now.", sum(1 for c in live if c.status == "ringing"))
        yield _gauge("callpop_store_up", "1 while the database commits, 0 while it refuses writes.",
                     int(hub.store.state == "ok"))
        yield _gauge("callpop_store_queue", "Writes waiting for the database.", hub.store.pending())
        yield _gauge("callpop_crm_failing", "1 while CRM lookups are failing.", int(bool(hub.crm.failing)))
        events = CounterMetricFamily("callpop_events", "Call events the hub accepted, by result.", labels=["result"])
        events.add_metric(["accepted"], hub.events_accepted)
        events.add_metric(["duplicate"], hub.events_duplicate)
        yield events
        yield _counter("callpop_crm_requests", "HTTP requests made to the CRM.", hub.crm.requests)
        yield _counter("callpop_store_commits", "Transactions committed to the database.", hub.store.commits)
        yield _counter("callpop_store_rows", "Rows written to the database.", hub.store.rows_written)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


router = APIRouter()


@router.get("/metrics", tags=["hub"], summary="The hub's figures in Prometheus' text format",
            response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request, _: MonitorDep) -> Response:
    return Response(request.app.state.hub.metrics.text(), media_type=CONTENT_TYPE_LATEST)
