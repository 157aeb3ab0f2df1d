"""The pop queries: the funnel (sent, shown, clicked, closed), per agent, and the pops that
needed the provisional bubble."""

from __future__ import annotations

import pandas as pd

from .params import BUCKET, named
from .ranges import Range, dim
from .sql import df, funnel, grouped, n, rate, total

POP_STAGES = ("sent", "shown", "clicked", "closed")
SENT = "sessions > 0"
# A pop needed the provisional bubble when its first version went out as 'pending': it is
# still pending (never replaced) or it was replaced (updated_at set).
PROVISIONAL = "(status = 'pending' OR updated_at IS NOT NULL)"


@named("Pop funnel")
def pop_funnel(con, *, start, end, tz="UTC") -> pd.DataFrame:
    """Pops sent, shown, clicked and closed.

    One row per stage (``stage``, ``pops``, ``share_of_sent``). Sent = reached at least one
    browser (``sessions > 0``); shown / clicked / closed = sent pops with that acknowledgement.
    """
    r = Range(start, end, tz)
    sql = ("SELECT count(*) AS sent, count(shown_at) AS shown, count(clicked_at) AS clicked, "
           f"count(closed_at) AS closed FROM pops WHERE {r.within('sent_at')} AND {SENT}")
    return funnel(df(con, sql, r.binds()).iloc[0], POP_STAGES, "pops", "share_of_sent")


@named("Pops and click-through by agent")
def pops_by_agent(con, *, start, end, tz="UTC") -> pd.DataFrame:
    """Per agent: pops recorded, unreached, sent, shown, clicked, closed, show rate,
    click-through (clicked / shown), provisional pops (sent pops that first went out as
    'pending') and the median seconds from sent to click.
    """
    r = Range(start, end, tz)
    sql = (f"WITH everyone AS (SELECT agent_id, count(*) AS recorded FROM pops WHERE {r.within('sent_at')} "
           "GROUP BY agent_id), "
           "sent AS (SELECT agent_id, count(*) AS sent, count(shown_at) AS shown, count(clicked_at) AS clicked, "
           f"count(closed_at) AS closed, {n(PROVISIONAL)} AS provisional FROM pops "
           f"WHERE {r.within('sent_at')} AND {SENT} GROUP BY agent_id), "
           "clicks AS (SELECT agent_id, median(epoch(clicked_at - sent_at)) AS median_s_to_click FROM pops "
           f"WHERE {r.within('sent_at')} AND {SENT} AND clicked_at IS NOT NULL GROUP BY agent_id) "
           "SELECT agent_id, recorded, recorded - coalesce(sent, 0) AS unreached, "
           + ", ".join(f"coalesce({c}, 0) AS {c}" for c in ("sent", "shown", "clicked", "closed")) + ", "
           f"{rate('shown', 'sent')} AS show_rate, {rate('clicked', 'shown')} AS click_through, "
           "coalesce(provisional, 0) AS provisional, median_s_to_click "
           "FROM everyone LEFT JOIN sent USING (agent_id) LEFT JOIN clicks USING (agent_id) "
           "ORDER BY sent DESC, agent_id")
    return df(con, sql, r.binds())


@named("Pops that needed the provisional bubble", BUCKET)
def provisional_pops(con, *, start, end, bucket="hour", tz="UTC") -> pd.DataFrame:
    """Share of sent pops that needed the provisional bubble, per time bucket: the CRM missed
    the deadline (lookup outcome ``timeout``), so the agent saw the number first and the name
    later.

    Counted on the pop itself (its first version went out as ``pending``: it is still pending
    or was replaced), which is the call's timed-out lookup except for a ring-group extension
    that started ringing after the late answer had come. Columns: ``bucket``, ``pops_sent``,
    ``provisional``, ``provisional_share``, ``replaced`` (provisional pops updated with the
    CRM's late answer before the ring ended).
    """
    r = Range(start, end, tz)
    d = dim(con, "bucket", "sent_at", r, bucket)
    source = d.counted(f"{n(PROVISIONAL)} AS provisional, count(updated_at) AS replaced, ", "pops",
                       f"{r.within('sent_at')} AND {SENT}")
    aggregates = [("pops_sent", total()), ("provisional", total("true", "src.provisional")),
                  ("provisional_share", f"{total('true', 'src.provisional')} / {total()}"),
                  ("replaced", total("true", "src.replaced"))]
    return df(con, grouped(d, source, aggregates, ("pops_sent", "provisional", "replaced")), r.binds())
