"""The click-to-call queries: the funnel, failures and refusals, per agent / source / time, and
the time to bridge."""

from __future__ import annotations

import pandas as pd

from .params import BUCKET, Param, named
from .ranges import Range, dim
from .sql import df, funnel, grouped, histogram, is_in, n, rate

DIAL_BY = ("agent", "source", "leg_a_kind", "bucket", "hour", "weekday")
DIAL_COLUMNS = {"agent": "agent_id", "source": "source", "leg_a_kind": "leg_a_kind"}
DIAL_STAGES = ("requested", "leg_a_answered", "bridged")
REQUESTED = "outcome IS DISTINCT FROM 'refused'"


@named("Click-to-call funnel")
def dial_funnel(con, *, start, end, tz="UTC") -> pd.DataFrame:
    """Dials requested, leg A answered and bridged (refused dials are not in the funnel: see
    ``dial_failures``).

    One row per stage (``stage``, ``dials``, ``share_of_requested``).
    """
    r = Range(start, end, tz)
    sql = ("SELECT count(*) AS requested, count(leg_a_answered_at) AS leg_a_answered, "
           f"{n(is_in('outcome', 'bridged'))} AS bridged FROM dials WHERE {r.within('requested_at')} AND {REQUESTED}")
    return funnel(df(con, sql, r.binds()).iloc[0], DIAL_STAGES, "dials", "share_of_requested")


@named("Click-to-call failures and refusals by reason")
def dial_failures(con, *, start, end, tz="UTC") -> pd.DataFrame:
    """Failed dials by reason, and refused dials by reason, counted apart.

    Columns: ``outcome`` (failed or refused), ``reason`` (the recorded code), ``dials``,
    ``share`` (of the dials with that outcome). Failed first, most frequent first.
    """
    r = Range(start, end, tz)
    sql = ("SELECT outcome, coalesce(error, '(no reason recorded)') AS reason, count(*) AS dials, "
           "count(*) / sum(count(*)) OVER (PARTITION BY outcome) AS share FROM dials "
           f"WHERE {r.within('requested_at')} AND outcome IN ('failed', 'refused') "
           "GROUP BY outcome, reason ORDER BY outcome, dials DESC, reason")
    return df(con, sql, r.binds()).astype({"dials": "int64", "share": "float64"})


@named("Click-to-call by agent, source or time",
       Param("by", "choice", "agent", "Group by agent, source, leg A kind, time bucket, hour of day or weekday.",
             DIAL_BY),
       BUCKET)
def dials_by(con, *, start, end, by="agent", bucket="hour", tz="UTC") -> pd.DataFrame:
    """The click-to-call funnel and time to bridge per agent, source (extension / console /
    api), leg A kind, time bucket, hour of day or weekday.

    Columns: the key (``agent_id``, ``source``, ``leg_a_kind``, ``bucket``, ``hour`` or
    ``weekday``), ``attempts`` (all rows), ``refused``, ``requested``, ``leg_a_answered``,
    ``bridged``, ``failed``, ``in_progress``, ``answer_rate``, ``bridge_rate``,
    ``ttb_p50_s`` / ``ttb_p95_s`` (time to bridge, exact percentiles).
    """
    r = Range(start, end, tz)
    d = dim(con, by, "requested_at", r, bucket, DIAL_COLUMNS)
    source = d.rows(f"dial_id, outcome, {REQUESTED} AS requested, leg_a_answered_at IS NOT NULL AS answered, "
                    "CASE WHEN outcome = 'bridged' THEN epoch(bridged_at - requested_at) END AS ttb", "dials",
                    r.within("requested_at"))
    req = n("src.requested")
    answered = n("src.requested AND src.answered")
    bridged = n("src.outcome = 'bridged'")
    q = "quantile_cont(src.ttb, [0.5, 0.95])"
    aggregates = [
        ("attempts", "count(*)"), ("refused", n(is_in("src.outcome", "refused"))), ("requested", req),
        ("leg_a_answered", answered), ("bridged", bridged), ("failed", n(is_in("src.outcome", "failed"))),
        ("in_progress", n("src.outcome IS NULL")), ("answer_rate", rate(answered, req)),
        ("bridge_rate", rate(bridged, req)), ("ttb_p50_s", f"{q}[1]"), ("ttb_p95_s", f"{q}[2]")]
    counts = ("attempts", "refused", "requested", "leg_a_answered", "bridged", "failed", "in_progress")
    return df(con, grouped(d, source, aggregates, counts), r.binds())


@named("Time to bridge distribution",
       Param("bin_s", "int", 1, "Width of a histogram bin in seconds.", low=1, high=600))
def time_to_bridge(con, *, start, end, bin_s=1, tz="UTC") -> pd.DataFrame:
    """How long bridged dials took from request to bridge, as a histogram.

    Columns: ``bin_s`` (lower edge, seconds), ``dials``, ``share``, ``cumulative_share``.
    """
    r = Range(start, end, tz)
    sql = (f"SELECT floor(epoch(bridged_at - requested_at) / $bin) * $bin AS bin_s, count(*) AS dials "
           f"FROM dials WHERE {r.within('requested_at')} AND outcome = 'bridged' AND bridged_at IS NOT NULL "
           "GROUP BY 1 ORDER BY 1")
    return histogram(df(con, sql, r.binds(bin=bin_s)), "dials")
