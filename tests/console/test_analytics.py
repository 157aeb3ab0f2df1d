"""Analytics page: every figure comes from the hub's named queries (pipelines/analytics/)."""

from __future__ import annotations

import base64
import datetime as dt
import json

import numpy as np

from console.views import analytics as page
from pipelines import analytics
from tests.support.hub import TOKENS, api, post_event, wait_rows


def with_traffic(hub) -> None:
    """Lookups (found and not found) at three extensions, answered and missed calls, two dials."""
    calls = [("a1", "0722776772", "201"), ("a2", "0527654000", "202"), ("a3", "0722776772", "203"),
             ("a4", "0548129876", "201")]
    for call_id, caller, ext in calls:
        assert post_event(hub, call_id=call_id, type="ringing", caller=caller, callee="0722776773",
                          extension=ext).status_code == 202
    post_event(hub, call_id="a1", type="answered", caller="0722776772", extension="201")
    assert api(hub, "POST", "/api/dial", TOKENS["noa"], json={"to": "+97235557777", "source": "console"}).status_code == 202
    assert api(hub, "POST", "/api/dial", TOKENS["avi"], json={"to": "0722776772", "leg_a": "mobile"}).status_code == 202
    wait_rows(hub, "SELECT * FROM lookups", n=len(calls), timeout=15)
    wait_rows(hub, "SELECT * FROM dials", n=2, timeout=15)


def named_query(hub, name: str, **args):
    """The named query run directly on the hub's database, as a notebook would."""
    return hub.hub.store.run(analytics.run, name, **args)


def test_the_tiles_show_the_named_querys_numbers_for_the_same_range(hub, console):
    with_traffic(hub)
    at = console("analytics", token="dana")
    assert not at.exception and not at.main.error
    args = at.session_state["analytics_args"]
    start, end = dt.datetime.fromisoformat(args["start"]), dt.datetime.fromisoformat(args["end"])
    assert end - start == dt.timedelta(days=1)
    kpis = named_query(hub, "kpis", start=args["start"], end=args["end"], tz=args["tz"]).iloc[0]
    tiles = {m.label: m.value for m in at.main.metric}
    assert kpis["lookups"] == 4 and tiles["Lookups"] == "4"
    assert tiles["Calls"] == page.count(kpis["calls"])
    assert tiles["Hit rate"] == page.pct(kpis["hit_rate"]) == "50.0%"
    assert tiles["Latency p95"] == page.ms(kpis["p95_ms"])
    assert tiles["Dials"] == page.count(kpis["dials_requested"]) == "2"
    assert len(at.get("plotly_chart")) >= 8  # hit rate, latency, distribution, timeouts, funnels, by hour...


def test_a_chart_plots_the_named_querys_rows(hub, console):
    with_traffic(hub)
    at = console("analytics", token="dana")
    args = at.session_state["analytics_args"]
    by_ext = named_query(hub, "lookup_outcomes", by="extension", **args)
    plotted = at.session_state["analytics_snapshot"]["frames"]["by_extension"]
    assert by_ext.equals(plotted)
    assert dict(zip(by_ext["extension"], by_ext["lookups"])) == {"201": 2, "202": 1, "203": 1}
    # The figure sent to the browser carries the same counts.
    spec = next(c for c in at.get("plotly_chart") if '"Lookups by extension"' in c.proto.spec).proto.spec
    found = next(t for t in json.loads(spec)["data"] if t.get("name") == "found")
    assert dict(zip(found["x"], plotted_values(found["y"]))) == dict(zip(by_ext["extension"], by_ext["found"]))


def plotted_values(values) -> list:
    """A trace's numbers as plotly sends them (a typed array: dtype + base64 bytes) or a list."""
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def test_figures_are_one_snapshot_reused_by_reruns(hub, console):
    with_traffic(hub)
    at = console("analytics", token="dana")
    first = at.session_state["analytics_args"]
    post_event(hub, call_id="late", type="ringing", caller="0722776772", extension="204")
    assert len(wait_rows(hub, "SELECT * FROM lookups", n=5, timeout=15)) == 5
    at.run()
    assert at.session_state["analytics_args"] == first
    assert {m.label: m.value for m in at.main.metric}["Lookups"] == "4"  # the same snapshot
    at.button(key="an_refresh").click().run()
    assert {m.label: m.value for m in at.main.metric}["Lookups"] == "5"


def test_other_ranges_and_an_empty_range(hub, console):
    at = console("analytics", token="noa")
    assert "No calls, lookups or dials in this range yet" in at.info[0].value
    at.segmented_control(key="an_range").set_value("Last hour").run()
    assert not at.exception
    assert at.session_state["analytics_args"]["bucket"] == "5min"
    at.segmented_control(key="an_range").set_value(page.CUSTOM).run()
    assert not at.exception
    args = at.session_state["analytics_args"]
    assert dt.datetime.fromisoformat(args["end"]) - dt.datetime.fromisoformat(args["start"]) == dt.timedelta(days=7)


def test_ranges_end_now_or_span_whole_local_days():
    start, end = page.preset_range("Last hour", dt.datetime(2026, 11, 25, 10, 7, 31, 5000))
    assert (start, end) == (dt.datetime(2026, 11, 25, 9, 7, 31, 5000), dt.datetime(2026, 11, 25, 10, 7, 31, 5000))
    start, end = page.custom_range(dt.date(2026, 7, 1), dt.date(2026, 7, 2), "Asia/Jerusalem")
    assert (start, end) == (dt.datetime(2026, 6, 30, 21, 0), dt.datetime(2026, 7, 2, 21, 0))  # UTC+3 in summer
    assert page.pct(float("nan")) == page.ms(None) == "–"


def test_labels_from_a_crm_are_text_in_the_charts(start_hub, monkeypatch):
    from tests.console.conftest import open_console
    from tests.support.crm import FakeCrm
    with FakeCrm() as crm:
        crm.respond("0527654000", {"STATUS": "<a href='https://evil.example'>ERR</a>"})
        hub = start_hub(crm_url=crm.url)
        monkeypatch.setenv("CALLPOP_HUB_URL", hub.url)
        post_event(hub, call_id="e1", type="ringing", caller="0527654000", extension="201")
        wait_rows(hub, "SELECT * FROM lookups WHERE outcome = 'bad_response'", timeout=15)
        at = open_console("analytics", token="dana")
    spec = next(c for c in at.get("plotly_chart") if '"Timeouts and errors by kind"' in c.proto.spec).proto.spec
    (trace,) = json.loads(spec)["data"]
    (label,) = trace["y"]
    assert label.startswith("bad_response: STATUS is ") and "&lt;a href=" in label and "<a" not in label
