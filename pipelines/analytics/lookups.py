"""The lookup queries: outcomes and hit rate, latency, timeouts and late answers, error kinds,
failing numbers and the deadline what-if."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .params import BUCKET, Param, named
from .ranges import Dim, Range, dim
from .sql import ERRORS, HIT, OUTCOMES, df, grouped, histogram, is_in, n, total

LOOKUP_BY = ("bucket", "hour", "weekday", "did", "extension")
LOOKUP_COLUMNS = {"did": "did", "extension": "extension"}
BY_HELP = "Group by time bucket, hour of day, weekday, DID or extension."


@named("Lookup outcomes and hit rate", Param("by", "choice", "bucket", BY_HELP, LOOKUP_BY), BUCKET)
def lookup_outcomes(con, *, start, end, by="bucket", bucket="hour", tz="UTC") -> pd.DataFrame:
    """Lookups by outcome, with hit rate and known rate, grouped by time bucket, hour of day,
    weekday, DID or extension.

    Columns: the group key (``bucket``, ``hour``, ``weekday``, ``did`` or ``extension``),
    ``lookups``, one count per outcome (``found``, ``multiple``, ``not_found``, ``timeout``,
    ``http_error``, ``bad_response``), ``hit_rate`` = (found + multiple) / lookups and
    ``known_rate`` = hit rate plus timeouts answered late with found or multiple. Time groups
    list every bucket / hour / weekday of the range, empty ones with 0 lookups.
    """
    r = Range(start, end, tz)
    d = dim(con, by, "started_at", r, bucket, LOOKUP_COLUMNS)
    source = d.counted("outcome, ", "lookups", r.within("started_at"))
    aggregates = [("lookups", total()), *((o, total(f"src.outcome = {o!r}")) for o in OUTCOMES)]
    frame = df(con, grouped(d, source, aggregates, ("lookups", *OUTCOMES), _late_hits(d, r)), r.binds())
    return _with_rates(frame).drop(columns="late_hits")


def _late_hits(d: Dim, r: Range) -> tuple[str, list[str]]:
    # Timeouts answered late with a name, per key: a scan of the timeouts only (the filter on
    # outcome is pushed into the scan), cheaper than carrying late_outcome through every row.
    late = d.counted("", "lookups", f"{r.within('started_at')} AND outcome = 'timeout' AND late_outcome IN {HIT}")
    return f"SELECT key, CAST(sum(n) AS BIGINT) AS late_hits FROM ({late}) GROUP BY key", ["late_hits"]


def _with_rates(frame: pd.DataFrame) -> pd.DataFrame:
    """hit_rate and known_rate from the counts (NaN where there were no lookups)."""
    lookups = frame["lookups"].where(frame["lookups"] > 0)
    hits = frame["found"] + frame["multiple"]
    frame["hit_rate"] = hits / lookups
    frame["known_rate"] = (hits + frame["late_hits"].fillna(0).astype("int64")) / lookups
    return frame


@named("Lookup latency percentiles", Param("by", "choice", "bucket", BY_HELP, LOOKUP_BY), BUCKET,
       Param("cache", "choice", "all", "all lookups (the agent's wait) or miss (only those that asked the CRM).",
             ("all", "miss")))
def lookup_latency(con, *, start, end, by="bucket", bucket="hour", cache="all", tz="UTC") -> pd.DataFrame:
    """Lookup latency p50 / p95 / p99 (exact), mean and max in ms, grouped by time bucket, hour
    of day, weekday, DID or extension.

    Latency is ``latency_ms`` as recorded (timeouts count at their deadline: it is the agent's
    wait). ``cache="miss"`` keeps only lookups that went to the CRM. Time groups list every
    bucket of the range; empty ones have 0 lookups and NULL percentiles.
    """
    r = Range(start, end, tz)
    d = dim(con, by, "started_at", r, bucket, LOOKUP_COLUMNS)
    only_miss = " AND cache = 'miss'" if cache == "miss" else ""
    source = d.rows("latency_ms", "lookups", f"{r.within('started_at')}{only_miss}")
    q = "quantile_cont(src.latency_ms, [0.5, 0.95, 0.99])"
    aggregates = [("lookups", "count(src.latency_ms)"), ("p50_ms", f"{q}[1]"), ("p95_ms", f"{q}[2]"),
                  ("p99_ms", f"{q}[3]"), ("mean_ms", "avg(src.latency_ms)"), ("max_ms", "max(src.latency_ms)")]
    return df(con, grouped(d, source, aggregates, ("lookups",)), r.binds())


@named("Lookup latency distribution",
       Param("bin_ms", "int", 50, "Width of a histogram bin in ms.", low=5, high=10_000))
def latency_histogram(con, *, start, end, bin_ms=50, tz="UTC") -> pd.DataFrame:
    """How many lookups answered within each latency bin (``bin_ms`` wide).

    Columns: ``bin_ms`` (the bin's lower edge), ``lookups``, ``share`` of all lookups in the
    range, ``cumulative_share``. Timeouts sit in the bin of their deadline.
    """
    r = Range(start, end, tz)
    sql = (f"SELECT floor(latency_ms / $bin) * $bin AS bin_ms, count(*) AS lookups FROM lookups "
           f"WHERE {r.within('started_at')} AND latency_ms IS NOT NULL GROUP BY 1 ORDER BY 1")
    return histogram(df(con, sql, r.binds(bin=bin_ms)), "lookups")


@named("Timeouts and late answers", BUCKET)
def lookup_timeouts(con, *, start, end, bucket="hour", tz="UTC") -> pd.DataFrame:
    """Timeouts per time bucket and what the CRM answered after the deadline.

    Columns: ``bucket``, ``lookups``, ``timeouts``, ``timeout_share``, ``late_found`` (late
    answer found or multiple), ``late_not_found``, ``late_failed`` (the late answer was an
    error, or the CRM never answered within the late timeout), ``unrecorded`` (no late answer
    recorded, e.g. the hub stopped), ``late_p50_ms`` / ``late_p95_ms`` (the CRM answer time of
    the timeouts it answered with found, multiple or not found).
    """
    r = Range(start, end, tz)
    d = dim(con, "bucket", "started_at", r, bucket)
    source = d.counted("outcome = 'timeout' AS timeout, late_outcome, ", "lookups", r.within("started_at"))
    # Late answers are few: their percentiles come from a scan of their own (a quantile over a
    # mostly-NULL column of every lookup costs several times more).
    answered = d.rows("late_latency_ms", "lookups", f"{r.within('started_at')} AND outcome = 'timeout' "
                      "AND late_outcome IN ('found', 'multiple', 'not_found')")
    late = ("SELECT key, quantile_cont(late_latency_ms, [0.5, 0.95])[1] AS late_p50_ms, "
            f"quantile_cont(late_latency_ms, [0.5, 0.95])[2] AS late_p95_ms FROM ({answered}) GROUP BY key")
    t = "src.timeout"
    aggregates = [
        ("lookups", total()), ("timeouts", total(t)), ("timeout_share", f"{total(t)} / {total()}"),
        ("late_found", total(f"{t} AND src.late_outcome IN {HIT}")),
        ("late_not_found", total(f"{t} AND " + is_in("src.late_outcome", "not_found"))),
        ("late_failed", total(f"{t} AND " + is_in("src.late_outcome", "timeout", "http_error", "bad_response"))),
        ("unrecorded", total(f"{t} AND src.late_outcome IS NULL"))]
    counts = ("lookups", "timeouts", "late_found", "late_not_found", "late_failed", "unrecorded")
    return df(con, grouped(d, source, aggregates, counts, (late, ["late_p50_ms", "late_p95_ms"])), r.binds())


@named("Lookup error kinds")
def lookup_errors(con, *, start, end, tz="UTC") -> pd.DataFrame:
    """Timeouts and errors by kind: outcome plus the reason up to its first parenthesis.

    Columns: ``outcome`` (timeout, http_error, bad_response), ``kind``, ``lookups``, ``share``
    of all lookups in the range, ``first_at`` / ``last_at`` (in ``tz``). Most frequent first.
    """
    r = Range(start, end, tz)
    sql = (f"WITH e AS (SELECT outcome, error, min(started_at) AS first_at, max(started_at) AS last_at, "
           f"count(*) AS n FROM lookups WHERE {r.within('started_at')} "
           f"AND (outcome = 'timeout' OR outcome IN {ERRORS}) GROUP BY outcome, error) "
           "SELECT outcome, regexp_replace(coalesce(error, '(no reason recorded)'), '\\s*\\(.*$', '') AS kind, "
           "CAST(sum(n) AS BIGINT) AS lookups, sum(n) / (SELECT count(*) FROM lookups WHERE "
           f"{r.within('started_at')}) AS share, "
           f"{r.local('min(first_at)')} AS first_at, {r.local('max(last_at)')} AS last_at "
           "FROM e GROUP BY outcome, kind ORDER BY lookups DESC, outcome, kind")
    return df(con, sql, r.binds())


@named("Numbers whose lookups fail most",
       Param("limit", "int", 20, "How many numbers to list.", low=1, high=1000),
       Param("min_lookups", "int", 2, "Only numbers looked up at least this often.", low=1, high=1_000_000))
def failing_numbers(con, *, start, end, limit=20, min_lookups=2, tz="UTC") -> pd.DataFrame:
    """Caller numbers whose lookups most often gave the agent no name: candidates for cleaning
    the CRM (missing records, duplicates, records that break the answer).

    A lookup fails when it is not a hit (not found, timeout or error). Columns: ``number``
    (E.164 when valid, else as sent), ``lookups``, ``failed``, ``fail_rate``, ``found``,
    ``multiple`` (duplicates in the CRM), ``not_found``, ``timeouts``, ``errors``, ``last_at``.
    Ordered by failed lookups, then lookups, then number.
    """
    r = Range(start, end, tz)
    failed = total(f"src.outcome NOT IN {HIT}")
    counts = ", ".join(f"{total(is_in('src.outcome', o))} AS {name}" for o, name in (
        ("found", "found"), ("multiple", "multiple"), ("not_found", "not_found"), ("timeout", "timeouts")))
    sql = ("WITH src AS (SELECT coalesce(phone_e164, phone) AS number, outcome, count(*) AS n, "
           f"max(started_at) AS last_at FROM lookups WHERE {r.within('started_at')} "
           "AND coalesce(phone_e164, phone) IS NOT NULL GROUP BY ALL) "
           f"SELECT number, {total()} AS lookups, {failed} AS failed, {failed} / {total()} AS fail_rate, "
           f"{counts}, {total(f'src.outcome IN {ERRORS}')} AS errors, {r.local('max(src.last_at)')} AS last_at "
           f"FROM src GROUP BY number HAVING {total()} >= $min_lookups AND {failed} > 0 "
           "ORDER BY failed DESC, lookups DESC, number LIMIT $limit")
    return df(con, sql, r.binds(limit=limit, min_lookups=min_lookups))


@named("Deadline what-if",
       Param("deadlines", "ints", "500,1000,1500,2000,3000,5000", "Deadlines to try, in ms, comma-separated.",
             low=1, high=60_000))
def deadline_what_if(con, *, start, end, deadlines=(500, 1000, 1500, 2000, 3000, 5000), tz="UTC") -> pd.DataFrame:
    """What each deadline setting would have given on the recorded CRM answer times.

    A lookup is in time under deadline D when the CRM answered within D (its answer time: the
    late latency for a timeout answered later, else the recorded latency); a timeout the CRM
    never answered is late under every D. Columns: ``deadline_ms``, ``lookups``, ``in_time``,
    ``provisional_share`` (lookups that would have needed the provisional bubble),
    ``hit_rate`` (hits answered in time / lookups), ``mean_wait_ms`` (the agent's mean wait:
    min(answer time, D)), ``current`` (D is the deadline most lookups were recorded with).
    Answers are replayed as recorded: a different deadline does not change what the CRM said.
    """
    r = Range(start, end, tz)
    deadlines = [int(d) for d in deadlines]  # validated whole numbers, sorted: safe to write into SQL
    # One pass: each lookup falls in the band of the first deadline it meets (or none); the
    # figures for deadline i are sums over bands 0..i.
    band = " ".join(f"WHEN answer_ms <= {d} THEN {i}" for i, d in enumerate(deadlines))
    sql = ("WITH l AS (SELECT "
           "CASE WHEN outcome <> 'timeout' THEN latency_ms WHEN late_outcome <> 'timeout' THEN late_latency_ms "
           "END AS answer_ms, CASE WHEN outcome = 'timeout' THEN late_outcome ELSE outcome END AS answer "
           f"FROM lookups WHERE {r.within('started_at')}) "
           f"SELECT CASE {band} ELSE {len(deadlines)} END AS band, count(*) AS lookups, "
           f"{n(f'answer IN {HIT}')} AS hits, sum(answer_ms) AS answer_ms FROM l GROUP BY band")
    bands = df(con, sql, r.binds()).set_index("band").reindex(range(len(deadlines) + 1), fill_value=0)
    current = con.execute(f"SELECT mode(deadline_ms) FROM lookups WHERE {r.within('started_at')}",
                          r.binds()).fetchone()[0]
    lookups = int(bands["lookups"].sum())
    in_time = bands["lookups"].cumsum().to_numpy()[:-1]
    hits = bands["hits"].cumsum().to_numpy()[:-1]
    answered_ms = bands["answer_ms"].fillna(0).cumsum().to_numpy()[:-1]
    d = np.array(deadlines, dtype="int64")
    nothing = np.full(len(d), np.nan)
    return pd.DataFrame({
        "deadline_ms": d, "lookups": np.full(len(d), lookups, dtype="int64"), "in_time": in_time.astype("int64"),
        "provisional_share": 1 - in_time / lookups if lookups else nothing,
        "hit_rate": hits / lookups if lookups else nothing,
        "mean_wait_ms": (answered_ms + d * (lookups - in_time)) / lookups if lookups else nothing,
        "current": d == (current if current is not None else -1)})

