"""``GET /api/analytics`` and ``/api/analytics/{name}`` on the real hub, over the hand-built history.

The console reads these routes and the notebooks call the functions (through the reader): the
numbers must be the same, so every query's route answer is compared with the function's.
"""

import threading
import time

import duckdb
import pandas as pd
import pytest

from pipelines import analytics
from pipelines.analytics import QUERIES
from tests.support.hub import TOKENS, api

from . import dataset as ds

RANGE = {"start": "2026-11-25T00:00:00Z", "end": "2026-11-26T00:00:00Z"}


@pytest.fixture
def hub(start_hub, tmp_path):
    ds.build_file(tmp_path / "callpop.duckdb")  # the file the hub opens (tests/support.hub_settings)
    return start_hub()


def get(hub, name, token=TOKENS["dana"], **params):  # a supervisor: the whole team
    return api(hub, "GET", f"/api/analytics/{name}", token, params={**RANGE, **params})


def test_the_catalog_lists_every_query_with_its_parameters(hub):
    r = api(hub, "GET", "/api/analytics", TOKENS["noa"])
    assert r.status_code == 200
    queries = {q["name"]: q for q in r.json()["queries"]}
    assert list(queries) == list(QUERIES)
    bucket = next(p for p in queries["lookup_outcomes"]["params"] if p["name"] == "bucket")
    assert "hour" in bucket["choices"] and bucket["default"] == "hour"


def test_a_known_answer_through_the_route(hub):
    r = get(hub, "lookup_outcomes", bucket="hour")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "lookup_outcomes" and body["params"]["bucket"] == "hour"
    assert body["params"]["start"] == "2026-11-25T00:00:00"
    h10 = next(rec for rec in body["records"] if rec["bucket"] == "2026-11-25T10:00:00")
    assert (h10["lookups"], h10["found"], h10["not_found"], h10["timeout"], h10["hit_rate"]) == (10, 7, 2, 1, 0.7)
    assert [c["name"] for c in body["columns"]][:3] == ["bucket", "lookups", "found"]


@pytest.mark.parametrize("name", list(QUERIES))
def test_every_route_answers_what_the_function_answers(hub, name):
    r = get(hub, name, tz="Asia/Jerusalem")
    assert r.status_code == 200, r.text
    through_api = analytics.from_payload(r.json())
    direct = hub.hub.store.run(QUERIES[name], ds.START, ds.END, tz="Asia/Jerusalem")
    pd.testing.assert_frame_equal(through_api, direct)


def test_the_route_and_the_stopped_file_agree(hub, tmp_path):
    """What the console shows (the route, hub running) = what a notebook reads (the file, hub stopped)."""
    answers = {name: analytics.from_payload(get(hub, name).json()) for name in QUERIES}
    hub.stop()
    con = duckdb.connect(str(tmp_path / "callpop.duckdb"), read_only=True)
    try:
        for name, through_api in answers.items():
            pd.testing.assert_frame_equal(through_api, QUERIES[name](con, ds.START, ds.END), obj=name)
    finally:
        con.close()


@pytest.mark.parametrize("params, status, code, says", [
    ({"bucket": "fortnight"}, 422, "invalid_parameter", "bucket:"),
    ({"start": "2026-11-26", "end": "2026-11-25"}, 422, "invalid_parameter", "end: must be after start"),
    ({"start": "last tuesday"}, 422, "invalid_parameter", "start:"),
    ({"colour": "red"}, 422, "invalid_parameter", "colour: unknown parameter"),
    ({"tz": "Nowhere/Land"}, 422, "invalid_parameter", "tz:"),
    ({"start": "2026-01-01", "bucket": "minute"}, 422, "invalid_parameter", "at most 10000"),
    ({"start": "x" * 100}, 422, "invalid_request", "start"),
])
def test_bad_parameters_get_4xx_with_the_reason(hub, params, status, code, says):
    r = get(hub, "lookup_outcomes", **params)
    assert r.status_code == status, r.text
    assert r.json()["error"] == code and says in r.json()["message"]


def test_unknown_query_and_missing_token(hub):
    r = get(hub, "everything")
    assert r.status_code == 404 and "GET /api/analytics" in r.json()["message"]
    assert get(hub, "kpis", token=None).status_code == 401
    assert get(hub, "kpis", token="not-a-token").status_code == 401


def test_a_missing_range_means_the_last_seven_days(hub):
    r = api(hub, "GET", "/api/analytics/kpis", TOKENS["noa"])
    assert r.status_code == 200
    params = r.json()["params"]
    assert pd.Timestamp(params["end"]) - pd.Timestamp(params["start"]) == pd.Timedelta(days=7)


def slow(con, *, start, end, tz="UTC"):
    time.sleep(1.5)
    return pd.DataFrame({"n": [1]})


def test_a_slow_query_runs_beside_the_event_loop(hub, monkeypatch):
    """While a query takes its time in the store, the hub keeps answering."""
    monkeypatch.setitem(QUERIES, "slow", analytics.NamedQuery("slow", "Slow", slow, (analytics.START, analytics.END,
                                                                                        analytics.TZ)))
    answers = []
    worker = threading.Thread(target=lambda: answers.append(get(hub, "slow")))
    worker.start()
    time.sleep(0.2)
    started = time.perf_counter()
    assert api(hub, "GET", "/healthz").status_code == 200
    assert time.perf_counter() - started < 0.5
    worker.join()
    assert answers[0].status_code == 200 and answers[0].json()["records"] == [{"n": 1}]


def test_a_query_past_its_time_is_interrupted():
    def endless(con, *, start, end, tz="UTC"):
        return con.execute("SELECT sum(hash(range)) FROM range(100000000000)").df()
    query = analytics.NamedQuery("endless", "Endless", endless, (analytics.START, analytics.END, analytics.TZ))
    database = duckdb.connect()
    started = time.perf_counter()
    with pytest.raises(duckdb.InterruptException):
        analytics.answer(database.cursor(), query, query.parse(RANGE), timeout_s=0.3)
    assert time.perf_counter() - started < 5
