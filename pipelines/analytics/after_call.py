"""After the call: how the call log reached the CRM, the agents' dispositions, and how many of
their calls got a note (tables ``call_logs`` and ``call_notes``: pipelines/calllog.py)."""

from __future__ import annotations

import pandas as pd

from .params import Param, named
from .ranges import Range
from .sql import df, n, rate

ENDED = "status IN ('ended', 'missed')"


@named("Call log delivery to the CRM")
def call_log_delivery(con, *, start, end, tz="UTC") -> pd.DataFrame:
    """How the call log entries written in the range went to the CRM (``CALLPOP_CRM_LOG_URL``).

    One row: ``entries`` (revisions written), ``delivered``, ``pending`` (still being retried),
    ``failed`` (given up after ``CALLPOP_CRM_LOG_RETRY_H``), ``retried`` (entries that needed more
    than one attempt), ``delivered_share`` (delivered / entries), ``delay_p50_s`` / ``delay_p90_s``
    (seconds from written to delivered, over delivered entries, exact percentiles), ``calls``
    (distinct calls logged).
    """
    r = Range(start, end, tz)
    sql = ("SELECT count(*) AS entries, " + n("state = 'delivered'") + " AS delivered, "
           + n("state = 'pending'") + " AS pending, " + n("state = 'failed'") + " AS failed, "
           + n("attempts > 1") + " AS retried, "
           "quantile_cont(epoch(delivered_at - created_at), 0.5) AS delay_p50_s, "
           "quantile_cont(epoch(delivered_at - created_at), 0.9) AS delay_p90_s, "
           "count(DISTINCT call_id) AS calls "
           f"FROM call_logs WHERE {r.within('created_at')}")
    out = df(con, sql, r.binds())
    out.insert(5, "delivered_share", out["delivered"] / out["entries"].where(out["entries"] > 0))
    return out.astype({c: "int64" for c in ("entries", "delivered", "pending", "failed", "retried", "calls")})


@named("Dispositions by agent or hour",
       Param("by", "choice", "agent", "Group by agent, or by hour of day (local time in tz).", ("agent", "hour")))
def dispositions(con, *, start, end, by="agent", tz="UTC") -> pd.DataFrame:
    """What agents marked their calls as: each call counts once, with its latest disposition,
    by the agent who saved it or by the local hour it was saved.

    Columns: ``agent_id`` or ``hour`` (0–23), ``disposition``, ``calls``, ``share`` (of that
    agent's or hour's calls with a disposition).
    """
    r = Range(start, end, tz)
    key = "agent_id" if by == "agent" else f"CAST(hour({r.local('saved_at')}) AS INTEGER) AS hour"
    name = "agent_id" if by == "agent" else "hour"
    sql = (f"WITH latest AS (SELECT *, row_number() OVER (PARTITION BY call_id ORDER BY saved_at DESC) AS k "
           f"FROM call_notes WHERE {r.within('saved_at')} AND disposition IS NOT NULL), "
           f"keyed AS (SELECT {key}, disposition FROM latest WHERE k = 1) "
           f"SELECT {name}, disposition, count(*) AS calls, "
           f"count(*) / sum(count(*)) OVER (PARTITION BY {name}) AS share FROM keyed "
           f"GROUP BY {name}, disposition ORDER BY {name}, calls DESC, disposition")
    return df(con, sql, r.binds()).astype({"calls": "int64", "share": "float64"})


@named("Notes coverage by agent")
def notes_coverage(con, *, start, end, tz="UTC") -> pd.DataFrame:
    """Per agent: calls of theirs that ended in the range (answered or missed, by ``started_at``),
    how many got a note, a disposition, either, and the coverage (calls with either / calls).

    Columns: ``agent_id``, ``calls``, ``with_notes``, ``with_disposition``, ``covered``,
    ``coverage``.
    """
    r = Range(start, end, tz)
    sql = ("WITH noted AS (SELECT call_id, bool_or(notes IS NOT NULL) AS has_notes, "
           "bool_or(disposition IS NOT NULL) AS has_disposition FROM call_notes GROUP BY call_id) "
           "SELECT c.agent_id, count(*) AS calls, " + n("coalesce(has_notes, false)") + " AS with_notes, "
           + n("coalesce(has_disposition, false)") + " AS with_disposition, "
           + n("coalesce(has_notes OR has_disposition, false)") + " AS covered "
           f"FROM calls c LEFT JOIN noted USING (call_id) WHERE {r.within('c.started_at')} AND c.{ENDED} "
           "AND c.agent_id IS NOT NULL GROUP BY c.agent_id ORDER BY calls DESC, c.agent_id")
    out = df(con, sql, r.binds())
    out["coverage"] = out["covered"] / out["calls"].where(out["calls"] > 0)
    return out.astype({c: "int64" for c in ("calls", "with_notes", "with_disposition", "covered")})
