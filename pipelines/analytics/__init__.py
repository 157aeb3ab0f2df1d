"""Named analytics queries over the hub's DuckDB file: the one place numbers are defined.

The console (through ``GET /api/analytics/{name}``), the notebooks (through
``pipelines.readers.open_analytics``) and the tests call the same functions, so they cannot
disagree. Each query is a function ``f(con, start, end, **params) -> pandas.DataFrame`` and is
registered in ``QUERIES`` with its parameters, so callers that only have text (an HTTP query
string) are validated by the same rules as Python callers.

Definitions (written once; every query below uses them)
-------------------------------------------------------
- **Range**: ``[start, end)`` in UTC, applied to the moment each thing began: ``lookups.started_at``,
  ``pops.sent_at``, ``dials.requested_at``, ``calls.started_at``. A naive time is UTC; an aware
  one is converted. Output times (buckets, first/last seen) are wall-clock times in ``tz``
  (default UTC), and so are hour of day and weekday (ISO: 1 = Monday … 7 = Sunday).
- **Lookup**: one row of ``lookups`` (one per call with a caller number; cache hits included,
  because the agent saw their result).
- **Hit**: outcome ``found`` or ``multiple``: the CRM named the caller before the deadline.
  **Hit rate** = hits / lookups. Timeouts and errors stay in the denominator: the agent did
  not get a name in time. **Known rate** adds the timeouts whose late answer was found or
  multiple: how often the CRM knows the caller at all.
- **Timeout**: the CRM missed the deadline. The hub records outcome ``timeout`` with
  ``latency_ms`` = the deadline, sends a provisional pop, and fills ``late_outcome`` /
  ``late_latency_ms`` when the CRM answers later (``late_outcome`` = ``timeout`` when it never
  answered within ``crm_late_timeout_ms``).
- **Error**: outcome ``http_error`` or ``bad_response``. An **error kind** is the outcome plus
  the recorded reason up to its first parenthesis ("cannot connect to the CRM (…)" →
  "cannot connect to the CRM"), so one kind does not split by detail.
- **Latency**: ``latency_ms`` as recorded: from the lookup's start to its answer, or to the
  deadline for a timeout. It is the agent's wait, so it never exceeds the deadline in force
  (a p99 equal to the deadline means more than 1 % of lookups timed out). Cache hits count
  (``cache="miss"`` on ``lookup_latency`` keeps only the lookups that asked the CRM).
  **pXX** is exact: ``quantile_cont`` (linear interpolation between the two nearest ranks, the
  same as numpy's default) over the lookups of the group.
- **CRM answer time**: the CRM's own time, ``late_latency_ms`` for a timeout that was answered
  later, else ``latency_ms`` (used by the deadline what-if).
- **Pop sent**: a row of ``pops`` with ``sessions > 0`` (it reached at least one browser).
  A row with ``sessions = 0`` is **unreached** (the agent was not signed in anywhere).
  **Shown / clicked / closed**: sent pops with that acknowledgement. **Show rate** = shown /
  sent; **click-through** = clicked / shown.
- **Provisional**: a sent pop that needed the provisional bubble because the call's lookup
  timed out: the agent first saw the number alone and the name later. Read on the pop itself
  (its first version went out ``pending``: ``status`` is still ``pending`` or ``updated_at`` is
  set), which is the same as "its lookup has outcome ``timeout``" except for a ring-group
  extension that began ringing after the late answer had come (that pop went out complete).
  **Replaced** = the provisional pop was updated with the answer before the ring ended.
- **Dial requested**: a row of ``dials`` that was not refused (the hub handed it to the
  provider). **Refused**: outcome ``refused`` (never dialled: bad number, blocked prefix, rate
  limit…), counted apart. **Leg A answered**: ``leg_a_answered_at`` set. **Bridged**: outcome
  ``bridged``. **Failed**: outcome ``failed``, by its reason code (``error``). **In progress**:
  outcome still NULL. **Time to bridge**: ``bridged_at - requested_at`` in seconds, over bridged
  dials. Answer rate = leg A answered / requested; bridge rate = bridged / requested.
- **Call log entry**: a row of ``call_logs`` (one revision of a call's log sent to the CRM),
  in range by ``created_at``. **Delivered** / **pending** / **failed**: its ``state`` (failed =
  given up). **Retried**: more than one attempt. **Delivery delay**: ``delivered_at -
  created_at`` in seconds, over delivered entries.
- **Disposition of a call**: the latest one saved on it (``call_notes``); a call counts once.
  **Covered call**: an ended or missed call with an agent that got a note or a disposition.
- **Matching format**: ``lookups.matched_format``, the entry of ``CALLPOP_CRM_PHONE_FORMATS``
  whose lookup found the caller (the hub asks the next format while the CRM says not found,
  within the one deadline); set on hits only (a timeout's late hit too, but it counts as a
  timeout here).
- **Multiple-match pop**: a sent pop with status ``multiple``, or one named from a contact an
  agent chose for the number before (``pops.matched`` = ``chosen``, status ``found``). **With
  candidates**: it offered contacts to choose from (``pops.candidates`` > 0). **Chosen**: the
  agent recorded a choice on it (a ``contact_choices`` row of the call and agent).
- **Inbox entry**: a row of ``missed_calls``, one per (call, agent), ranged on ``missed_at`` (when the
  call ended). **Missed**: kind ``missed`` (rang at the agent, answered nowhere); **unseen**: kind
  ``unseen`` (answered while the agent's pop reached no browser). **Called back**: handled by a
  click-to-call with ``callback_for``; **time to call back** = ``handled_at - missed_at`` (the
  call-back dial's request) in seconds, over the entries called back. **Callback rate** = called
  back / entries. **Open**: not handled yet.
- Rates are fractions in [0, 1]; a rate over nothing is NULL (NaN), never 0.

Where things are: ``params`` (parameters, the ``QUERIES`` registry, ``run``), ``ranges`` (the
range and local time), ``sql`` (shared SQL building blocks), the queries by subject
(``lookups``, ``pops``, ``dials``, ``inbox``, ``overview``: busiest hours, key figures, coverage;
``matching``: lookup formats and multiple-match choices; ``after_call``: the call log's delivery,
dispositions, notes coverage),
``scope`` (an agent's own rows) and ``payload`` (answers as JSON).
"""

from __future__ import annotations

from .params import (BUCKET, BUCKETS, DEFAULT_SPAN, END, MAX_BUCKETS, QUERIES, START, TZ, InvalidParameter,
                     NamedQuery, Param, catalog, named, parse_time, run)
from .sql import ERRORS, HIT, OUTCOMES
# The queries register themselves in QUERIES on import, in this order (the catalog's).
from .lookups import (LOOKUP_BY, deadline_what_if, failing_numbers, latency_histogram, lookup_errors,
                      lookup_latency, lookup_outcomes, lookup_timeouts)
from .pops import pop_funnel, pops_by_agent, provisional_pops
from .dials import DIAL_BY, dial_failures, dial_funnel, dials_by, time_to_bridge
from .overview import busiest_hours, coverage, kpis
from .matching import hit_rate_by_format, multiple_match_choices
from .after_call import call_log_delivery, dispositions, notes_coverage
from .inbox import missed_calls
from .scope import AGENT_SCOPE, scope_to_agent
from .payload import answer, from_payload, to_payload

__all__ = [
    "AGENT_SCOPE", "answer", "BUCKET", "BUCKETS", "busiest_hours", "call_log_delivery", "catalog", "coverage",
    "deadline_what_if", "DEFAULT_SPAN", "DIAL_BY", "dial_failures", "dial_funnel", "dials_by", "dispositions",
    "END", "ERRORS", "failing_numbers", "from_payload", "HIT", "hit_rate_by_format", "InvalidParameter",
    "kpis", "latency_histogram", "LOOKUP_BY", "lookup_errors", "lookup_latency", "lookup_outcomes",
    "lookup_timeouts", "MAX_BUCKETS", "missed_calls", "multiple_match_choices", "named", "NamedQuery", "notes_coverage",
    "OUTCOMES", "Param", "parse_time", "pop_funnel", "pops_by_agent", "provisional_pops", "QUERIES", "run",
    "scope_to_agent", "START", "time_to_bridge", "to_payload", "TZ",
]
