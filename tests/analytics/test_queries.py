"""Every named query on the hand-built history of ``dataset.py``, against answers worked out by hand."""

import datetime as dt
import math

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipelines import analytics
from pipelines.analytics import ranges, sql
from pipelines.analytics import QUERIES, InvalidParameter

from . import dataset as ds
from .dataset import END, START, at


@pytest.fixture(scope="module")
def con():
    c = ds.build(duckdb.connect())
    yield c
    c.close()


def q(con, name, **params):
    return QUERIES[name](con, START, END, **params)


def row(df, column, value):
    found = df[df[column] == value]
    assert len(found) == 1, f"no single row with {column} = {value!r}:\n{df}"
    return found.iloc[0]


LAT_ALL = [r["latency_ms"] for r in ds.IN_RANGE]
LAT_10 = [r["latency_ms"] for r in ds.IN_RANGE if r["started_at"].hour == 10]


# --- lookups -----------------------------------------------------------------------------------------

def test_hit_rate_by_hour_bucket_is_seven_of_ten_in_the_busy_hour(con):
    df = q(con, "lookup_outcomes", bucket="hour")
    assert len(df) == 24 and df["bucket"].tolist() == [at(h) for h in range(24)]
    h10 = row(df, "bucket", at(10))
    assert (h10.lookups, h10.found, h10.not_found, h10.timeout, h10.multiple) == (10, 7, 2, 1, 0)
    assert h10.hit_rate == pytest.approx(0.7) and h10.known_rate == pytest.approx(0.8)
    h13 = row(df, "bucket", at(13))
    assert (h13.lookups, h13.http_error, h13.bad_response, h13.timeout, h13.hit_rate) == (6, 3, 1, 2, 0)
    assert row(df, "bucket", at(11)).hit_rate == 1.0
    empty = row(df, "bucket", at(5))
    assert empty.lookups == 0 and empty.found == 0 and math.isnan(empty.hit_rate)
    assert df["lookups"].sum() == ds.N_LOOKUPS  # the rows a microsecond before and exactly at the end are out
    assert df["lookups"].dtype == "int64" and df["found"].dtype == "int64"


def test_hit_rate_by_did_extension_weekday_and_in_a_time_zone(con):
    by_did = q(con, "lookup_outcomes", by="did")
    assert by_did["did"].tolist() == ["0722776773", "0737771111"]
    assert by_did["lookups"].tolist() == [17, 21]
    assert row(by_did, "did", "0722776773").hit_rate == pytest.approx(8 / 17)
    assert q(con, "lookup_outcomes", by="extension")["lookups"].tolist() == [17, 21]
    by_day = q(con, "lookup_outcomes", by="weekday")
    assert by_day["weekday"].tolist() == list(range(1, 8))
    assert row(by_day, "weekday", 3).lookups == ds.N_LOOKUPS  # 2026-11-25 is a Wednesday
    # Israel is UTC+2 in November: the 10:00 UTC hour is 12:00 there.
    local = q(con, "lookup_outcomes", by="hour", tz="Asia/Jerusalem")
    assert row(local, "hour", 12).hit_rate == pytest.approx(0.7) and row(local, "hour", 10).lookups == 0
    buckets = q(con, "lookup_outcomes", bucket="hour", tz="Asia/Jerusalem")
    assert buckets["bucket"].iloc[0] == at(2) and len(buckets) == 24
    assert row(buckets, "bucket", at(12)).found == 7


def test_latency_percentiles_are_exact(con):
    df = q(con, "lookup_latency", bucket="hour")
    h11 = row(df, "bucket", at(11))  # 10, 20 ... 210 ms
    assert (h11.lookups, h11.p50_ms, h11.p95_ms, h11.mean_ms, h11.max_ms) == (21, 110, 200, 110, 210)
    assert h11.p99_ms == pytest.approx(208)
    h10 = row(df, "bucket", at(10))
    assert h10.p95_ms == pytest.approx(np.percentile(LAT_10, 95))  # numpy's default is the same interpolation
    assert h10.max_ms == ds.DEADLINE  # the timeout counts at its deadline
    assert math.isnan(row(df, "bucket", at(3)).p50_ms) and row(df, "bucket", at(3)).lookups == 0


def test_latency_by_did_extension_and_cache_misses_only(con):
    by_ext = q(con, "lookup_latency", by="extension")
    assert row(by_ext, "extension", "202").p95_ms == 200
    assert row(by_ext, "extension", "201").p50_ms == pytest.approx(
        np.percentile([r["latency_ms"] for r in ds.IN_RANGE if r["extension"] == "201"], 50))
    by_did = q(con, "lookup_latency", by="did")
    assert row(by_did, "did", "0737771111").p99_ms == pytest.approx(208)
    misses = row(q(con, "lookup_latency", by="did", cache="miss"), "did", "0737771111")  # 20 ... 210 ms
    assert (misses.lookups, misses.p50_ms) == (20, 115) and misses.p95_ms == pytest.approx(200.5)


def test_latency_histogram(con):
    df = q(con, "latency_histogram", bin_ms=50)
    expected = pd.Series([math.floor(v / 50) * 50 for v in LAT_ALL]).value_counts().sort_index()
    assert df["bin_ms"].tolist() == expected.index.tolist()
    assert df["lookups"].tolist() == expected.tolist()
    assert row(df, "bin_ms", 1500).lookups == ds.N_TIMEOUTS
    assert df["cumulative_share"].iloc[-1] == pytest.approx(1.0)


def test_timeouts_and_late_answers(con):
    df = q(con, "lookup_timeouts", bucket="hour")
    h10, h13 = row(df, "bucket", at(10)), row(df, "bucket", at(13))
    assert (h10.lookups, h10.timeouts, h10.late_found, h10.late_not_found, h10.late_failed) == (10, 1, 1, 0, 0)
    assert h10.timeout_share == pytest.approx(0.1) and h10.late_p50_ms == 2500
    assert (h13.timeouts, h13.late_found, h13.late_not_found, h13.late_failed, h13.unrecorded) == (2, 0, 1, 1, 0)
    assert h13.late_p95_ms == 1800  # the CRM never answered the other one: no answer time
    assert df["timeouts"].sum() == ds.N_TIMEOUTS and math.isnan(row(df, "bucket", at(11)).late_p50_ms)


def test_error_kinds_fold_details_into_one_kind(con):
    df = q(con, "lookup_errors")
    assert list(zip(df.outcome, df.kind, df.lookups)) == [
        ("timeout", "no answer within the 1500 ms deadline", 3),
        ("http_error", "cannot connect to the CRM", 2),
        ("bad_response", "answer is not JSON", 1),
        ("http_error", "CRM answered HTTP 500", 1)]
    first = df.iloc[0]
    assert first.share == pytest.approx(3 / 38) and (first.first_at, first.last_at) == (at(10, 30), at(13, 6))
    assert q(con, "lookup_errors", tz="Asia/Jerusalem").iloc[0].first_at == at(12, 30)


def test_failing_numbers(con):
    df = q(con, "failing_numbers")
    assert df["number"].tolist() == ["+972500000009", "+972500000008"]
    top = df.iloc[0]
    assert (top.lookups, top.failed, top.not_found, top.errors, top.fail_rate, top.last_at) == (
        3, 3, 2, 1, 1.0, at(13, 1))
    assert (df.iloc[1].timeouts, df.iloc[1].errors) == (1, 1)
    every = q(con, "failing_numbers", min_lookups=1)
    assert every["number"].tolist()[2:] == ["+972500000010", "+972500000011", "+972500000012", "+972500000013"]
    assert q(con, "failing_numbers", limit=1)["number"].tolist() == ["+972500000009"]


def test_deadline_what_if_replays_late_answers(con):
    df = q(con, "deadline_what_if", deadlines="3000,1000,2000")
    assert df["deadline_ms"].tolist() == [1000, 2000, 3000]
    assert df["in_time"].tolist() == [35, 36, 37]  # + the 1800 ms not_found, + the 2500 ms found
    assert df["hit_rate"].tolist() == pytest.approx([29 / 38, 29 / 38, 30 / 38])
    assert df["provisional_share"].tolist() == pytest.approx([3 / 38, 2 / 38, 1 / 38])  # one never answered
    answered = sum(r["latency_ms"] for r in ds.IN_RANGE if r["outcome"] != "timeout")
    assert df["mean_wait_ms"].tolist() == pytest.approx(
        [(answered + 3 * 1000) / 38, (answered + 1800 + 2 * 2000) / 38, (answered + 1800 + 2500 + 3000) / 38])
    assert not df["current"].any()
    now = q(con, "deadline_what_if", deadlines=[1500, 3000])
    assert now["current"].tolist() == [True, False]
    # At the deadline in force, the what-if is what happened.
    kpis = q(con, "kpis").iloc[0]
    assert now.iloc[0].hit_rate == pytest.approx(kpis.hit_rate)
    assert now.iloc[0].provisional_share == pytest.approx(kpis.timeout_share)


# --- pops --------------------------------------------------------------------------------------------

def test_pop_funnel(con):
    df = q(con, "pop_funnel")
    assert df["stage"].tolist() == ["sent", "shown", "clicked", "closed"]
    assert df["pops"].tolist() == [9, 6, 2, 3]
    assert df["share_of_sent"].tolist() == pytest.approx([1, 6 / 9, 2 / 9, 3 / 9])


def test_click_through_by_agent(con):
    df = q(con, "pops_by_agent")
    assert df["agent_id"].tolist() == ["noa", "avi"]
    noa, avi = df.iloc[0], df.iloc[1]
    assert (noa.recorded, noa.unreached, noa.sent, noa.shown, noa.clicked, noa.closed, noa.provisional) == (
        6, 1, 5, 4, 2, 1, 2)
    assert (noa.show_rate, noa.click_through, noa.median_s_to_click) == (0.8, 0.5, 7.0)
    assert (avi.sent, avi.shown, avi.clicked, avi.closed, avi.click_through) == (4, 2, 0, 2, 0.0)
    assert math.isnan(avi.median_s_to_click)


def test_provisional_pops(con):
    df = q(con, "provisional_pops", bucket="hour")
    h10, h11 = row(df, "bucket", at(10)), row(df, "bucket", at(11))
    assert (h10.pops_sent, h10.provisional, h10.replaced) == (6, 2, 1) and h10.provisional_share == pytest.approx(1 / 3)
    assert (h11.pops_sent, h11.provisional, h11.provisional_share) == (3, 0, 0.0)
    assert row(df, "bucket", at(0)).pops_sent == 0


# --- click-to-call -----------------------------------------------------------------------------------

def test_dial_funnel_leaves_refused_out(con):
    df = q(con, "dial_funnel")
    assert list(zip(df.stage, df.dials)) == [("requested", 8), ("leg_a_answered", 7), ("bridged", 4)]
    assert df["share_of_requested"].tolist() == [1.0, 0.875, 0.5]


def test_dial_failures_by_reason_with_refusals_apart(con):
    df = q(con, "dial_failures")
    assert list(zip(df.outcome, df.reason, df.dials)) == [
        ("failed", "leg_b_busy", 2), ("failed", "leg_a_no_answer", 1),
        ("refused", "blocked_prefix", 1), ("refused", "not_a_number", 1)]
    assert df["share"].tolist() == pytest.approx([2 / 3, 1 / 3, 0.5, 0.5])


def test_dials_by_agent_source_and_hour(con):
    df = q(con, "dials_by", by="agent")
    noa, sarah = row(df, "agent_id", "noa"), row(df, "agent_id", "sarah")
    assert (noa.attempts, noa.refused, noa.requested, noa.leg_a_answered, noa.bridged, noa.failed,
            noa.in_progress) == (6, 1, 5, 4, 3, 1, 1)
    assert (noa.answer_rate, noa.bridge_rate, noa.ttb_p50_s) == (0.8, 0.6, 6.0)
    assert noa.ttb_p95_s == pytest.approx(6.9)
    assert (sarah.requested, sarah.bridged, sarah.answer_rate, sarah.ttb_p50_s) == (3, 1, 1.0, 10.0)
    by_source = q(con, "dials_by", by="source")
    assert by_source["source"].tolist() == ["console", "extension"] and by_source["attempts"].tolist() == [4, 6]
    by_hour = q(con, "dials_by", by="hour")
    assert len(by_hour) == 24 and row(by_hour, "hour", 9).attempts == 6 and row(by_hour, "hour", 15).bridged == 1
    assert row(by_hour, "hour", 3).attempts == 0 and math.isnan(row(by_hour, "hour", 3).bridge_rate)


def test_time_to_bridge(con):
    df = q(con, "time_to_bridge")
    assert df["bin_s"].tolist() == [5, 6, 7, 10] and df["dials"].tolist() == [1, 1, 1, 1]
    assert df["cumulative_share"].tolist() == [0.25, 0.5, 0.75, 1.0]
    assert q(con, "kpis").iloc[0].ttb_p50_s == 6.5


# --- across tables -----------------------------------------------------------------------------------

def test_busiest_hours(con):
    df = q(con, "busiest_hours")
    assert len(df) == 168 and df["calls"].sum() == 4 and df["lookups"].sum() == 38 and df["dials"].sum() == 10
    cell = df[(df.weekday == 3) & (df.hour == 10)].iloc[0]
    assert (cell.calls, cell.lookups, cell.dials) == (3, 10, 0) and cell.hit_rate == pytest.approx(0.7)
    assert df[(df.weekday == 3) & (df.hour == 9)].iloc[0].dials == 6
    local = q(con, "busiest_hours", tz="Asia/Jerusalem")
    assert local[(local.weekday == 3) & (local.hour == 12)].iloc[0].lookups == 10
    assert local[(local.weekday == 3) & (local.hour == 2)].iloc[0].lookups == 1  # 00:00 UTC
    india = q(con, "busiest_hours", tz="Asia/Kolkata")  # +05:30: each row's own local hour
    assert india[(india.weekday == 3) & (india.hour == 15)].iloc[0].lookups == 9  # 10:00-10:21 UTC
    assert india[(india.weekday == 3) & (india.hour == 16)].iloc[0].lookups == 1 + 21  # 10:30, 11:00-11:20 UTC
    assert india["lookups"].sum() == 38


def test_kpis(con):
    k = q(con, "kpis").iloc[0]
    assert (k.calls, k.lookups, k.pops_sent, k.pops_unreached, k.dials_requested, k.dials_refused, k.dials_bridged) \
        == (4, 38, 9, 1, 8, 2, 4)
    assert k.hit_rate == pytest.approx(29 / 38) and k.known_rate == pytest.approx(30 / 38)
    assert (k.p50_ms, k.p95_ms, k.p99_ms) == pytest.approx(tuple(np.percentile(LAT_ALL, [50, 95, 99])))
    assert k.timeout_share == pytest.approx(3 / 38) and k.error_share == pytest.approx(4 / 38)
    assert (k.show_rate, k.click_through, k.provisional_share, k.bridge_rate) == pytest.approx(
        (6 / 9, 1 / 3, 2 / 9, .5))


def test_kpis_of_an_empty_range_are_zero_counts_and_no_rates(con):
    k = QUERIES["kpis"](con, "2020-01-01", "2020-01-02").iloc[0]
    assert (k.calls, k.lookups, k.pops_sent, k.dials_requested) == (0, 0, 0, 0)
    assert math.isnan(k.hit_rate) and math.isnan(k.p95_ms) and math.isnan(k.bridge_rate)


def test_coverage(con):
    df = q(con, "coverage")
    lookups = row(df, "table", "lookups")
    assert (lookups.rows, lookups.first_at, lookups.last_at) == (38, at(0), at(13, 6))
    assert row(df, "table", "events").rows == 0


# --- every query: one definition, JSON round trip ----------------------------------------------------

@pytest.mark.parametrize("name", list(QUERIES))
def test_every_query_survives_the_json_round_trip_exactly(con, name):
    df = q(con, name)
    pd.testing.assert_frame_equal(analytics.from_payload(analytics.to_payload(df)), df)


def test_every_query_is_documented_and_listed():
    for item in analytics.catalog():
        assert item["description"] and item["title"]
        assert [p["name"] for p in item["params"]][:2] == ["start", "end"] and item["params"][-1]["name"] == "tz"


# --- parameters --------------------------------------------------------------------------------------

@pytest.mark.parametrize("given, parameter", [
    ({"bucket": "fortnight"}, "bucket"),
    ({"by": "colour"}, "by"),
    ({"tz": "Mars/Olympus"}, "tz"),
    ({"colour": "red"}, "colour"),
    ({"start": "yesterday"}, "start"),
    ({"start": "2026-11-26", "end": "2026-11-25"}, "end"),
    ({"start": "2020-01-01", "end": "2026-01-01", "bucket": "minute"}, "bucket"),  # millions of buckets
])
def test_bad_parameters_are_refused_with_the_reason(given, parameter):
    args = {"start": "2026-11-25", "end": "2026-11-26", **given}
    with pytest.raises(InvalidParameter) as e:
        QUERIES["lookup_outcomes"].parse(args)
    assert e.value.name == parameter and e.value.why


@pytest.mark.parametrize("name, given, parameter", [
    ("failing_numbers", {"limit": "0"}, "limit"),
    ("failing_numbers", {"limit": "ten"}, "limit"),
    ("deadline_what_if", {"deadlines": "500,abc"}, "deadlines"),
    ("deadline_what_if", {"deadlines": ",".join(str(100 * i) for i in range(1, 23))}, "deadlines"),  # 22 > 20
    ("deadline_what_if", {"deadlines": "0"}, "deadlines"),
    ("latency_histogram", {"bin_ms": "1"}, "bin_ms"),
    ("kpis", {"start": None}, "start"),
])
def test_query_specific_parameters(name, given, parameter):
    args = {k: v for k, v in {"start": "2026-11-25", "end": "2026-11-26", **given}.items() if v is not None}
    with pytest.raises(InvalidParameter) as e:
        QUERIES[name].parse(args)
    assert e.value.name == parameter


def test_deadlines_are_sorted_and_deduplicated():
    args = QUERIES["deadline_what_if"].parse({"start": "2026-11-25", "end": "2026-11-26", "deadlines": "100, 5,100"})
    assert args["deadlines"] == [5, 100]


def test_times_in_any_form_mean_the_same_utc_instant():
    parse = QUERIES["kpis"].parse
    expected = {"start": START, "end": END, "tz": "UTC"}
    assert parse({"start": "2026-11-25", "end": "2026-11-26"}) == expected
    assert parse({"start": "2026-11-25T02:00:00+02:00", "end": "2026-11-26T00:00:00Z"}) == expected
    assert parse({"start": dt.date(2026, 11, 25), "end": pd.Timestamp("2026-11-26")}) == expected
    defaulted = parse({}, now=END)
    assert (defaulted["start"], defaulted["end"]) == (END - dt.timedelta(days=7), END)


# Each check: (by, bucket, the right key of a row from its wall-clock time L, as DuckDB works it out).
LOCAL_KEYS = [
    ("bucket", "15min", lambda L: f"time_bucket(INTERVAL 15 MINUTE, {L})"),
    ("bucket", "hour", lambda L: f"time_bucket(INTERVAL 1 HOUR, {L})"),
    ("bucket", "day", lambda L: f"time_bucket(INTERVAL 1 DAY, {L})"),
    ("bucket", "week", lambda L: f"time_bucket(INTERVAL 7 DAY, {L}, TIMESTAMP '1970-01-05')"),
    ("hour", "hour", lambda L: f"hour({L})"),
    ("weekday", "hour", lambda L: f"isodow({L})"),
]


@pytest.mark.parametrize("tz,start,end,per_row", [
    ("Asia/Jerusalem", "2026-03-01", "2026-11-01", False),    # both changes of 2026 in Israel
    ("America/New_York", "2026-03-01", "2026-11-05", False),
    ("Asia/Kathmandu", "2026-01-01", "2026-01-20", False),    # +05:45
    ("America/St_Johns", "2010-03-01", "2010-11-10", True),   # -03:30, changed at 00:01 local (03:31 UTC)
])
def test_local_time_matches_the_time_zone_database_across_daylight_saving_changes(tz, start, end, per_row):
    """Rows keyed per UTC quarter hour (or one by one, where a zone changed off a quarter hour)
    get the bucket, hour and weekday of their own wall-clock time, in every row and in counts."""
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t AS SELECT range + INTERVAL 13 SECOND AS ts FROM range(TIMESTAMP '{start}', "
                f"TIMESTAMP '{end}', INTERVAL 7 MINUTE)")
    r = ranges.Range(dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end), tz)
    local = f"timezone('{tz}', timezone('UTC', ts))"
    for by, bucket, right in LOCAL_KEYS:
        d = ranges.dim(con, by, "ts", r, bucket)
        assert (d.key.of == "{g}") is per_row and (d.key.join == "") is per_row
        shown = d.show.format(k="key")
        wrong = sql.df(con, f"SELECT count(*) AS n FROM ({d.rows('ts', 't', r.within('ts'))}) "
                            f"WHERE {shown} <> {right(local)}", r.binds())
        assert wrong["n"][0] == 0, (by, bucket)
        counts = sql.df(con, f"SELECT {shown} AS k, CAST(sum(n) AS BIGINT) AS n FROM "
                             f"({d.counted('', 't', r.within('ts'))}) GROUP BY k ORDER BY k", r.binds())
        truth = con.execute(f"SELECT {right(local)} AS k, count(*) AS n FROM t GROUP BY k ORDER BY k").df()
        pd.testing.assert_frame_equal(counts, truth, check_dtype=False)


# --- inbox -------------------------------------------------------------------------------------------

def test_missed_calls_count_each_way_of_handling_and_the_time_to_call_back():
    c = duckdb.connect()
    c.execute(ds.SCHEMA.read_text(encoding="utf-8"))
    rows = [  # (call, agent, kind, missed at, handled after s, how)
        ("m1", "noa", "missed", at(10), 60, "called_back"), ("m2", "noa", "missed", at(10, 5), 120, "called_back"),
        ("m3", "noa", "missed", at(10, 9), 300, "called_back"), ("m4", "noa", "unseen", at(11), 10, "done"),
        ("m5", "noa", "missed", at(12), None, None), ("m1", "avi", "missed", at(10), 30, "answered_later"),
        ("m6", "avi", "missed", at(12), 5, "answered_elsewhere"),
        ("m7", "avi", "missed", END, None, None),  # at the range's end: out
    ]
    for call_id, agent, kind, missed_at, after, how in rows:
        handled = missed_at + dt.timedelta(seconds=after) if after is not None else None
        c.execute("INSERT INTO missed_calls (call_id, agent_id, kind, missed_at, handled_at, handled_how) "
                  "VALUES (?, ?, ?, ?, ?, ?)", [call_id, agent, kind, missed_at, handled, how])
    df = q(c, "missed_calls")
    assert df["agent_id"].tolist() == ["noa", "avi"]
    noa = row(df, "agent_id", "noa")
    assert (noa.entries, noa.missed, noa.unseen, noa.called_back, noa.done, noa.answered_later, noa.open) == \
           (5, 4, 1, 3, 1, 0, 1)
    assert noa.callback_rate == pytest.approx(3 / 5)
    assert noa.ttcb_p50_s == pytest.approx(120) and noa.ttcb_p90_s == pytest.approx(np.percentile([60, 120, 300], 90))
    avi = row(df, "agent_id", "avi")
    assert (avi.entries, avi.called_back, avi.answered_later, avi.open, avi.callback_rate) == (2, 0, 2, 0, 0)
    assert math.isnan(avi.ttcb_p50_s)
    empty = QUERIES["missed_calls"](c, START, START + dt.timedelta(minutes=1))
    assert empty.empty and list(empty.columns) == list(df.columns)
    c.close()
