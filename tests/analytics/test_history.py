"""The history generator: repeatable, shaped like the hub's own rows, and realistic where it matters."""

import datetime as dt

import duckdb
import pytest

from pipelines import analytics, cli
from pipelines.demo import history

END = dt.date(2026, 11, 22)  # a Sunday: the last 14 days hold two full weeks


@pytest.fixture(scope="module")
def two_weeks(tmp_path_factory):
    path = tmp_path_factory.mktemp("history") / "two_weeks.duckdb"
    history.generate(path, days=14, calls_per_day=2000, seed=3, end=END)
    con = duckdb.connect(str(path), read_only=True)
    yield con
    con.close()


def one(con, sql):
    return con.execute(sql).fetchone()[0]


def test_same_seed_same_rows_other_seed_other_rows(tmp_path):
    def digest(path):
        con = duckdb.connect(str(path), read_only=True)
        try:
            return {t: con.execute(f"SELECT count(*), md5(string_agg(t::VARCHAR, '|' ORDER BY t::VARCHAR)) "
                                   f"FROM {t} t").fetchone() for t in ("calls", "events", "lookups", "pops", "dials")}
        finally:
            con.close()
    a = history.generate(tmp_path / "a.duckdb", days=3, calls_per_day=300, seed=5, end=END)
    history.generate(tmp_path / "b.duckdb", days=3, calls_per_day=300, seed=5, end=END)
    history.generate(tmp_path / "c.duckdb", days=3, calls_per_day=300, seed=6, end=END)
    assert digest(tmp_path / "a.duckdb") == digest(tmp_path / "b.duckdb")
    assert digest(tmp_path / "a.duckdb")["lookups"] != digest(tmp_path / "c.duckdb")["lookups"]
    assert 700 < a.rows["calls"] < 1100 and a.rows["lookups"] < a.rows["calls"] < a.rows["pops"]


def distinct(con, sql):
    return {r[0] for r in con.execute(sql).fetchall()}


def test_values_are_the_ones_the_hub_writes(two_weeks):
    con = two_weeks
    assert set(r[0] for r in con.execute("SELECT DISTINCT outcome FROM lookups").fetchall()) == set(analytics.OUTCOMES)
    assert {r[0] for r in con.execute("SELECT DISTINCT cache FROM lookups").fetchall()} == {"miss", "hit", "coalesced"}
    assert {r[0] for r in con.execute("SELECT DISTINCT status FROM pops").fetchall()} <= {
        "found", "multiple", "not_found", "pending", "error"}
    assert distinct(con, "SELECT DISTINCT source FROM dials") == {"extension", "console", "api"}
    assert {r[0] for r in con.execute("SELECT DISTINCT error FROM dials WHERE outcome = 'failed'").fetchall()} == {
        "leg_a_no_answer", "leg_a_busy", "leg_b_busy", "leg_b_no_answer", "ended_before_bridge", "provider_error"}
    assert {r[0] for r in con.execute("SELECT DISTINCT error FROM dials WHERE outcome = 'refused'").fetchall()} == {
        "not_a_number", "rate_limited", "blocked_prefix", "own_number"}
    assert distinct(con, "SELECT DISTINCT type FROM events") == {"ringing", "answered", "hangup"}
    agents = {r[0] for r in con.execute("SELECT DISTINCT agent_id FROM pops").fetchall()}
    assert agents == {"noa", "avi", "sarah", "james", "dana"}


def test_rows_hang_together_as_the_hub_records_them(two_weeks):
    con = two_weeks
    # A timeout is recorded at its deadline with the late answer beside it; nothing else has one.
    assert one(con, "SELECT count(*) FROM lookups WHERE outcome = 'timeout' AND (latency_ms <> deadline_ms "
                    "OR late_outcome IS NULL OR late_latency_ms <= deadline_ms)") == 0
    assert one(con, "SELECT count(*) FROM lookups WHERE outcome <> 'timeout' AND late_outcome IS NOT NULL") == 0
    assert one(con, "SELECT count(*) FROM lookups WHERE outcome = 'timeout' AND late_outcome IN ('found', "
                    "'multiple')") > 0
    # Every lookup belongs to a call with a number; withheld calls have none.
    assert one(con, "SELECT count(*) FROM lookups l ANTI JOIN calls c USING (call_id)") == 0
    assert one(con, "SELECT count(*) FROM calls c SEMI JOIN lookups l USING (call_id) WHERE c.caller = ''") == 0
    # Pending pops come from timeouts only; pops go out after the lookup started.
    assert one(con, "SELECT count(*) FROM pops p JOIN lookups l USING (call_id) WHERE (p.status = 'pending' OR "
                    "p.updated_at IS NOT NULL) AND l.outcome <> 'timeout'") == 0
    assert one(con, "SELECT count(*) FROM pops p JOIN lookups l USING (call_id) WHERE p.sent_at < l.started_at") == 0
    # Acks only on pops that reached a browser, in order.
    assert one(con, "SELECT count(*) FROM pops WHERE sessions = 0 "
                    "AND (shown_at IS NOT NULL OR clicked_at IS NOT NULL)") == 0
    assert one(con, "SELECT count(*) FROM pops WHERE clicked_at < shown_at OR shown_at < sent_at") == 0
    # Dials move forward in time; refused ones never rang.
    assert one(con, "SELECT count(*) FROM dials WHERE bridged_at < leg_a_answered_at "
                    "OR leg_a_answered_at < requested_at OR ended_at < requested_at") == 0
    assert one(con, "SELECT count(*) FROM dials WHERE outcome = 'bridged' AND bridged_at IS NULL") == 0
    assert one(con, "SELECT count(*) FROM dials WHERE outcome = 'refused' AND (leg_a IS NOT NULL "
                    "OR leg_a_answered_at IS NOT NULL)") == 0
    # Ring groups: some calls pop two or three agents.
    assert one(con, "SELECT count(*) FROM (SELECT call_id FROM pops GROUP BY call_id HAVING count(*) > 1)") > 0


def test_the_shape_of_a_working_week(two_weeks):
    con = two_weeks
    start, end = END - dt.timedelta(days=14), END
    hours = analytics.QUERIES["busiest_hours"](con, start, end, tz="Asia/Jerusalem")
    by_day = hours.groupby("weekday")["calls"].sum()
    assert by_day[6] < 0.1 * by_day[3] and by_day[5] < 0.5 * by_day[3]  # Saturday, Friday vs Wednesday
    working = hours[(hours.hour >= 8) & (hours.hour < 19)]["calls"].sum()
    assert working > 0.85 * hours["calls"].sum()
    # The CRM slows down at peak: p95 latency and timeouts are higher at 11:00 than at 19:00.
    by_hour = analytics.QUERIES["lookup_latency"](con, start, end, by="hour", tz="Asia/Jerusalem").set_index("hour")
    assert by_hour.loc[11, "p95_ms"] > 1.5 * by_hour.loc[19, "p95_ms"]
    kpis = analytics.QUERIES["kpis"](con, start, end).iloc[0]
    assert 0.6 < kpis.hit_rate < 0.8 and 0.01 < kpis.timeout_share < 0.06 and 0.5 < kpis.bridge_rate < 0.85
    # Agents click more or less.
    ctr = analytics.QUERIES["pops_by_agent"](con, start, end).set_index("agent_id")["click_through"]
    assert ctr["sarah"] > 3 * ctr["james"]


def test_seed_command(tmp_path, capsys):
    db = tmp_path / "seeded.duckdb"
    args = ["seed", "--db", str(db), "--days", "2", "--calls-per-day", "100", "--seed", "2", "--end", "2026-11-20"]
    assert cli.main(args) == 0
    assert "calls" in capsys.readouterr().out
    assert cli.main(args) == 2  # a second time: the file already holds calls
    assert "--replace" in capsys.readouterr().err
    assert cli.main(args + ["--replace", "--no-events"]) == 0
    con = duckdb.connect(str(db), read_only=True)
    assert one(con, "SELECT count(*) FROM events") == 0 and one(con, "SELECT count(*) FROM calls") > 100
    con.close()
