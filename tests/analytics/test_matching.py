"""The matching queries on a small history written by hand: hit rate by matching format and the
multiple-match choices by agent."""

import datetime as dt
import math

import duckdb
import pytest

from pipelines import analytics

from .dataset import SCHEMA

START, END = dt.datetime(2026, 11, 25), dt.datetime(2026, 11, 26)
AT = dt.datetime(2026, 11, 25, 10)


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute(SCHEMA.read_text(encoding="utf-8"))
    yield c
    c.close()


def lookups(con, *rows):
    for i, (outcome, fmt, latency) in enumerate(rows):
        con.execute("INSERT INTO lookups (call_id, started_at, outcome, matched_format, latency_ms) "
                    "VALUES (?, ?, ?, ?, ?)", [f"l{i}", AT + dt.timedelta(minutes=i), outcome, fmt, latency])


def test_hit_rate_by_format(con):
    lookups(con, ("found", "national", 100), ("found", "national", 120), ("multiple", "national", 110),
            ("found", "e164", 300), ("found", "last9", 500), ("not_found", None, 600), ("timeout", None, 1500),
            ("found", None, 90))  # a hit recorded before the format was
    con.execute("INSERT INTO lookups (call_id, started_at, outcome, matched_format) VALUES "
                "('out', '2026-11-26 00:00:00', 'found', 'e164')")  # the range's end is excluded
    df = analytics.run(con, "hit_rate_by_format", start=START, end=END)
    assert df["format"].tolist() == ["national", "(not recorded)", "e164", "last9"]
    assert df["hits"].tolist() == [3, 1, 1, 1]
    assert df["hit_rate"].tolist() == [3 / 8, 1 / 8, 1 / 8, 1 / 8]
    assert df["share_of_hits"].tolist() == [3 / 6, 1 / 6, 1 / 6, 1 / 6]
    assert df["mean_latency_ms"].tolist() == [110, 90, 300, 500]


def test_hit_rate_by_format_over_nothing_is_empty(con):
    assert analytics.run(con, "hit_rate_by_format", start=START, end=END).empty


def pop(con, call_id, agent, status, candidates=None, matched=None, sessions=1):
    con.execute("INSERT INTO pops (call_id, agent_id, sent_at, status, sessions, candidates, matched) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", [call_id, agent, AT, status, sessions, candidates, matched])


def choice(con, call_id, agent):
    con.execute("INSERT INTO contact_choices (e164, url, agent_id, chosen_at, call_id, candidates) "
                "VALUES ('+972722776772', 'https://crm.example.com/c/1', ?, ?, ?, 3)", [agent, AT, call_id])


def test_multiple_match_choices_by_agent(con):
    pop(con, "m1", "noa", "multiple", 3)
    pop(con, "m2", "noa", "multiple", 2)
    pop(con, "m3", "noa", "multiple")  # no CONTACTS: the results page
    pop(con, "m4", "noa", "found", matched="chosen")  # named from the choice
    pop(con, "m1", "avi", "multiple", 3)  # a ring group: avi saw the same call, noa chose
    pop(con, "m5", "avi", "multiple", 3, sessions=0)  # never reached a browser
    pop(con, "f1", "avi", "found", matched="format")
    choice(con, "m1", "noa")
    choice(con, "m2", "noa")
    choice(con, "m2", "noa")  # chose twice on one pop: one pop chosen
    df = analytics.run(con, "multiple_match_choices", start=START, end=END).set_index("agent_id")
    assert df.loc["noa", ["multiple_pops", "with_candidates", "chosen", "remembered"]].tolist() == [4, 2, 2, 1]
    assert df.loc["noa", "choice_rate"] == 1.0
    assert df.loc["avi", ["multiple_pops", "with_candidates", "chosen", "remembered"]].tolist() == [1, 1, 0, 0]
    assert df.loc["avi", "choice_rate"] == 0.0


def test_a_choice_rate_over_no_candidates_is_null(con):
    pop(con, "m3", "noa", "multiple")
    df = analytics.run(con, "multiple_match_choices", start=START, end=END)
    assert df["with_candidates"].tolist() == [0] and math.isnan(df["choice_rate"][0])
