"""The matching queries: which lookup format found the callers, and what agents chose among
several matches."""

from __future__ import annotations

import pandas as pd

from .params import named
from .ranges import Range
from .sql import HIT, df, n, rate

SENT = "sessions > 0"
REMEMBERED = "matched = 'chosen'"  # a pop named from a contact chosen before


@named("Hit rate by matching format")
def hit_rate_by_format(con, *, start, end, tz="UTC") -> pd.DataFrame:
    """Hits by the lookup format that found the caller (``lookups.matched_format``, from
    ``CALLPOP_CRM_PHONE_FORMATS``): what each format wins, so a team sees how many callers its
    CRM knows only in another format than the first (the hits cleaning the CRM would make
    first-try ones).

    One row per format (``(not recorded)`` for hits recorded before the hub noted the format).
    Columns: ``format``, ``hits``, ``hit_rate`` = hits / all lookups in the range, ``share_of_hits``
    = hits / all hits, ``mean_latency_ms`` (the agent's wait: later formats cost time). Most hits
    first.
    """
    r = Range(start, end, tz)
    sql = ("WITH l AS (SELECT outcome, matched_format, latency_ms FROM lookups WHERE "
           f"{r.within('started_at')}), totals AS (SELECT count(*) AS lookups, {n(f'outcome IN {HIT}')} AS hits "
           "FROM l) "
           "SELECT coalesce(matched_format, '(not recorded)') AS format, count(*) AS hits, "
           "count(*) / any_value(totals.lookups) AS hit_rate, count(*) / any_value(totals.hits) AS share_of_hits, "
           f"avg(latency_ms) AS mean_latency_ms FROM l, totals WHERE outcome IN {HIT} "
           "GROUP BY ALL ORDER BY hits DESC, format")
    return df(con, sql, r.binds())


@named("Multiple-match choices by agent")
def multiple_match_choices(con, *, start, end, tz="UTC") -> pd.DataFrame:
    """Per agent: the sent pops of numbers with several matches, those that offered candidates
    (the CRM's ``CONTACTS``), how many the agent chose one of, and the pops named directly by a
    contact chosen before.

    Columns: ``agent_id``, ``multiple_pops`` (sent pops with status ``multiple``, or named from
    a remembered choice), ``with_candidates`` (pops that offered contacts), ``chosen`` (of those,
    pops the agent chose a contact on: a ``contact_choices`` row for the call by the agent),
    ``choice_rate`` = chosen / with_candidates, ``remembered`` (pops named from a choice,
    ``matched`` = ``chosen``). Most multiple pops first.
    """
    r = Range(start, end, tz)
    sql = ("WITH p AS (SELECT agent_id, call_id, candidates, matched, EXISTS (SELECT 1 FROM contact_choices c "
           "WHERE c.call_id = pops.call_id AND c.agent_id = pops.agent_id) AS chose FROM pops "
           f"WHERE {r.within('sent_at')} AND {SENT} AND (status = 'multiple' OR matched = 'chosen')) "
           f"SELECT agent_id, count(*) AS multiple_pops, {n('candidates > 0')} AS with_candidates, "
           f"{n('candidates > 0 AND chose')} AS chosen, "
           f"{rate(n('candidates > 0 AND chose'), n('candidates > 0'))} AS choice_rate, "
           f"{n(REMEMBERED)} AS remembered "
           "FROM p GROUP BY agent_id ORDER BY multiple_pops DESC, agent_id")
    return df(con, sql, r.binds())
