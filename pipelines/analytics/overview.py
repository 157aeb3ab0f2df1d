"""Queries across tables: the busiest hours, the key figures of the console's tiles, and what
data there is (rows and time span per table)."""

from __future__ import annotations

import pandas as pd

from .dials import REQUESTED
from .params import named
from .pops import PROVISIONAL, SENT
from .ranges import US_HOUR, Dim, Range, hour_of_day, weekday
from .sql import ERRORS, HIT, df, is_in, n, rate, total

@named("Busiest hours (hour of day x weekday)")
def busiest_hours(con, *, start, end, tz="UTC") -> pd.DataFrame:
    """Calls, lookups, hit rate and dials for each weekday × hour of day in ``tz``.

    All 168 cells, empty ones as 0 (hit rate NULL). Columns: ``weekday`` (1 = Monday), ``hour``,
    ``calls`` (calls that started), ``lookups``, ``hit_rate``, ``dials`` (attempts, refused
    included). Latency by hour of day is ``lookup_latency`` with ``by="hour"``.
    """
    r = Range(start, end, tz)

    def local_hour(local_us: str) -> str:
        return f"({local_us}) // {US_HOUR}"

    def cell(h: str) -> str:  # local hours since 1970 -> weekday * 100 + hour
        return f"{weekday(f'{h} * {US_HOUR}')} * 100 + {hour_of_day(f'{h} * {US_HOUR}')}"
    # Rows are counted per hour since 1970 (a few thousand groups), then the groups are put in
    # their weekday x hour cell: far cheaper than working out each row's cell.
    counted = {name: Dim("h", r.key(con, col, local_hour, US_HOUR)).counted(more, table, r.within(col))
               for name, table, col, more in (("c", "calls", "started_at", ""), ("d", "dials", "requested_at", ""),
                                              ("l", "lookups", "started_at", "outcome, "))}
    sql = ("WITH grid AS (SELECT d.range * 100 + h.range AS cell FROM range(1, 8) d, range(0, 24) h), "
           + ", ".join(f"{name}h AS ({q})" for name, q in counted.items()) + ", "
           f"c AS (SELECT {cell('key')} AS cell, sum(n) AS calls FROM ch GROUP BY cell), "
           f"l AS (SELECT {cell('key')} AS cell, sum(n) AS lookups, sum(n) FILTER (outcome IN {HIT}) AS hits "
           "FROM lh GROUP BY cell), "
           f"d AS (SELECT {cell('key')} AS cell, sum(n) AS dials FROM dh GROUP BY cell) "
           "SELECT grid.cell // 100 AS weekday, grid.cell % 100 AS hour, "
           "CAST(coalesce(c.calls, 0) AS BIGINT) AS calls, CAST(coalesce(l.lookups, 0) AS BIGINT) AS lookups, "
           "coalesce(l.hits, 0) / l.lookups AS hit_rate, "
           "CAST(coalesce(d.dials, 0) AS BIGINT) AS dials FROM grid "
           "LEFT JOIN c USING (cell) LEFT JOIN l USING (cell) LEFT JOIN d USING (cell) ORDER BY grid.cell")
    return df(con, sql, r.binds())


@named("Key figures (console tiles)")
def kpis(con, *, start, end, tz="UTC") -> pd.DataFrame:
    """One row of key figures for the range, each as defined above.

    ``calls``, ``lookups``, ``hit_rate``, ``known_rate``, ``p50_ms`` / ``p95_ms`` / ``p99_ms``,
    ``timeout_share``, ``error_share``, ``pops_sent``, ``pops_unreached``, ``show_rate``,
    ``click_through``, ``provisional_share``, ``dials_requested``, ``dials_refused``,
    ``dials_bridged``, ``bridge_rate``, ``ttb_p50_s``.
    """
    r = Range(start, end, tz)
    sql = (
        f"WITH c AS (SELECT count(*) AS calls FROM calls WHERE {r.within('started_at')}), "
        f"src AS (SELECT outcome, count(*) AS n FROM lookups WHERE {r.within('started_at')} GROUP BY ALL), "
        f"late AS (SELECT count(*) AS late_hits FROM lookups WHERE {r.within('started_at')} "
        f"AND outcome = 'timeout' AND late_outcome IN {HIT}), "
        f"l AS (SELECT {total()} AS lookups, {total(f'src.outcome IN {HIT}')} AS hits, "
        f"{total(f'src.outcome IN {HIT}')} + (SELECT late_hits FROM late) AS known, "
        f"{total(is_in('src.outcome', 'timeout'))} AS timeouts, {total(f'src.outcome IN {ERRORS}')} AS errors "
        "FROM src), "
        "q AS (SELECT quantile_cont(latency_ms, [0.5, 0.95, 0.99]) AS q FROM lookups "
        f"WHERE {r.within('started_at')}), "
        f"p AS (SELECT count(*) AS recorded, {n(SENT)} AS sent, count(shown_at) FILTER ({SENT}) AS shown, "
        f"count(clicked_at) FILTER ({SENT}) AS clicked, {n(f'{SENT} AND {PROVISIONAL}')} AS provisional "
        f"FROM pops WHERE {r.within('sent_at')}), "
        f"dsrc AS (SELECT outcome, count(*) AS n FROM dials WHERE {r.within('requested_at')} GROUP BY ALL), "
        f"d AS (SELECT {total(REQUESTED, 'n')} AS requested, {total(is_in('outcome', 'refused'), 'n')} AS refused, "
        f"{total(is_in('outcome', 'bridged'), 'n')} AS bridged, (SELECT median(epoch(bridged_at - requested_at)) "
        f"FROM dials WHERE {r.within('requested_at')} AND outcome = 'bridged') AS ttb_p50_s FROM dsrc) "
        f"SELECT c.calls, l.lookups, {rate('l.hits', 'l.lookups')} AS hit_rate, "
        f"{rate('l.known', 'l.lookups')} AS known_rate, q.q[1] AS p50_ms, q.q[2] AS p95_ms, q.q[3] AS p99_ms, "
        f"{rate('l.timeouts', 'l.lookups')} AS timeout_share, {rate('l.errors', 'l.lookups')} AS error_share, "
        "p.sent AS pops_sent, p.recorded - p.sent AS pops_unreached, "
        f"{rate('p.shown', 'p.sent')} AS show_rate, {rate('p.clicked', 'p.shown')} AS click_through, "
        f"{rate('p.provisional', 'p.sent')} AS provisional_share, "
        "d.requested AS dials_requested, d.refused AS dials_refused, d.bridged AS dials_bridged, "
        f"{rate('d.bridged', 'd.requested')} AS bridge_rate, d.ttb_p50_s FROM c, l, q, p, d")
    return df(con, sql, r.binds())


COVERED = (("calls", "started_at"), ("lookups", "started_at"), ("pops", "sent_at"), ("dials", "requested_at"),
           ("events", "received_at"), ("rejects", "logged_at"))


@named("Rows and time span per table")
def coverage(con, *, start, end, tz="UTC") -> pd.DataFrame:
    """For each table, the rows in the range and the first and last of them (in ``tz``): what
    data there is to look at."""
    r = Range(start, end, tz)
    parts = [f"SELECT '{table}' AS \"table\", count(*) AS \"rows\", {r.local(f'min({col})')} AS first_at, "
             f"{r.local(f'max({col})')} AS last_at FROM {table} WHERE {r.within(col)}" for table, col in COVERED]
    return df(con, " UNION ALL ".join(parts), r.binds())
