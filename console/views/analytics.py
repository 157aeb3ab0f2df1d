"""Analytics: KPI tiles and charts for a time range, every number from the hub's named queries.

The page computes nothing itself: each figure is a named query of ``pipelines/analytics/``,
run by the hub (``GET /api/analytics/{name}?start=&end=&bucket=&tz=``) on its own connection,
and turned back into a DataFrame with its ``from_payload``. The notebooks call the
same queries, so the console and the notebooks cannot disagree.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import time
import zoneinfo

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from console import session
from console.hubclient import HubClient, HubError
from pipelines import analytics

CACHE_S = 30  # a snapshot is kept this long per session: widget clicks do not re-run the queries
RANGES = {  # label -> (span, default bucket)
    "Last hour": (dt.timedelta(hours=1), "5min"),
    "Last 24 hours": (dt.timedelta(days=1), "hour"),
    "Last 7 days": (dt.timedelta(days=7), "day"),
    "Last 30 days": (dt.timedelta(days=30), "day"),
}
CUSTOM = "Custom dates"
LATENCY_BIN_MS, BRIDGE_BIN_S = 50, 1  # histogram bins
OUTCOME_COLORS = {"found": "#2da44e", "multiple": "#1f883d", "not_found": "#8c959f", "timeout": "#d4a72c",
                  "http_error": "#cf222e", "bad_response": "#82071e"}
OUTCOME_NAMES = {"found": "found", "multiple": "several matches", "not_found": "not found", "timeout": "timeout",
                 "http_error": "HTTP error", "bad_response": "bad answer"}


# --- the range ------------------------------------------------------------------------------------

def browser_tz() -> str:
    """The operator's time zone (buckets and hours are local to them); UTC when unknown."""
    try:
        tz = st.context.timezone
    except Exception:  # noqa: BLE001 - no browser (tests)
        tz = None
    return tz if tz and tz in zoneinfo.available_timezones() else "UTC"


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def preset_range(label: str, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in UTC, ending now: rows recorded later fall after the end, so every figure
    of one snapshot counts the same rows (and nothing recorded before now is left out)."""
    return now - RANGES[label][0], now


def custom_range(first: dt.date, last: dt.date, tz: str) -> tuple[dt.datetime, dt.datetime]:
    """Whole local days first..last (inclusive) as [start, end) in UTC."""
    zone = zoneinfo.ZoneInfo(tz)

    def utc(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), zone).astimezone(dt.timezone.utc).replace(tzinfo=None)
    return utc(first), utc(last + dt.timedelta(days=1))


# --- the data -------------------------------------------------------------------------------------

def fetch(client: HubClient, name: str, **params) -> pd.DataFrame:
    """One named query through the hub, as the DataFrame pipelines.analytics returns."""
    return analytics.from_payload(client.analytics(name, **params))


# What the page shows: slot -> (named query, its own parameters, whether it takes the bucket).
FIGURES: dict[str, tuple[str, dict, bool]] = {
    "kpis": ("kpis", {}, False),
    "outcomes": ("lookup_outcomes", {"by": "bucket"}, True),
    "latency": ("lookup_latency", {"by": "bucket"}, True),
    "latency_hist": ("latency_histogram", {"bin_ms": LATENCY_BIN_MS}, False),
    "timeouts": ("lookup_timeouts", {}, True),
    "errors": ("lookup_errors", {}, False),
    "pop_funnel": ("pop_funnel", {}, False),
    "pops_by_agent": ("pops_by_agent", {}, False),
    "dial_funnel": ("dial_funnel", {}, False),
    "ttb": ("time_to_bridge", {"bin_s": BRIDGE_BIN_S}, False),
    "dial_failures": ("dial_failures", {}, False),
    "dials_by_source": ("dials_by", {"by": "source"}, True),
    "by_extension": ("lookup_outcomes", {"by": "extension"}, True),
    "by_hour": ("lookup_outcomes", {"by": "hour"}, True),
    "busiest": ("busiest_hours", {}, False),
    "dials_by_agent": ("dials_by", {"by": "agent"}, True),
    "by_format": ("hit_rate_by_format", {}, False),
    "choices": ("multiple_match_choices", {}, False),
    "missed": ("missed_calls", {}, False),
}


def take_snapshot(client: HubClient, names: set[str], args: dict) -> dict[str, pd.DataFrame | str]:
    """Every figure of the page for one range, asked one after the other: the range's end is
    fixed (a past instant), so tiles and charts count the same rows. A figure the hub cannot
    give is the reason, as text."""
    frames: dict[str, pd.DataFrame | str] = {}
    for slot, (name, params, bucketed) in FIGURES.items():
        if name not in names:
            frames[slot] = f"the hub has no named query {name!r}"
            continue
        given = {"start": args["start"], "end": args["end"], "tz": args["tz"], **params}
        if bucketed:
            given["bucket"] = args["bucket"]
        try:
            frames[slot] = fetch(client, name, **given)
        except HubError as e:
            frames[slot] = e.message
            if e.kind in ("unreachable", "unauthorized"):
                raise
    return frames


def snapshot(client: HubClient, names: set[str], selection: tuple, make_args, refresh: bool = False) -> dict:
    """The page's figures for this selection: kept CACHE_S seconds (widget clicks and reruns
    reuse them), then asked again with a new end."""
    snap = st.session_state.get("analytics_snapshot")
    if refresh or snap is None or snap["selection"] != selection or time.monotonic() - snap["at"] > CACHE_S:
        args = make_args()
        snap = {"selection": selection, "at": time.monotonic(), "args": args,
                "frames": take_snapshot(client, names, args)}
        st.session_state["analytics_snapshot"] = snap
    st.session_state["analytics_args"] = snap["args"]
    return snap


# --- formatting -----------------------------------------------------------------------------------

def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def count(value) -> str:
    return "–" if _missing(value) else f"{int(value):,}"


def pct(value) -> str:
    return "–" if _missing(value) else f"{float(value) * 100:.1f}%"


def ms(value) -> str:
    return "–" if _missing(value) else f"{float(value):,.0f} ms"


def seconds(value) -> str:
    return "–" if _missing(value) else f"{float(value):.1f} s"


# Tiles: (label, kpis column, format, help), five to a row so the values fit.
TILES = (
    ("Calls", "calls", count, "Calls that started in the range."),
    ("Lookups", "lookups", count, "CRM lookups (one per call with a caller number)."),
    ("Hit rate", "hit_rate", pct, "Lookups where the CRM named the caller before the deadline."),
    ("Timeouts", "timeout_share", pct, "Lookups that missed the deadline (the agent got a provisional pop)."),
    ("Errors", "error_share", pct, "Lookups the CRM answered with an HTTP error or a bad answer."),
    ("Latency p50", "p50_ms", ms, "Median wait for the CRM (timeouts count at the deadline)."),
    ("Latency p95", "p95_ms", ms, "95% of lookups answered within this."),
    ("Latency p99", "p99_ms", ms, "99% of lookups answered within this."),
    ("Pops sent", "pops_sent", count, "Pops that reached at least one browser."),
    ("Shown", "show_rate", pct, "Sent pops the browser showed."),
    ("Click-through", "click_through", pct, "Shown pops the agent clicked."),
    ("Dials", "dials_requested", count, "Click-to-calls handed to the phone system."),
    ("Bridged", "bridge_rate", pct, "Dials whose two legs were connected."),
    ("Time to bridge", "ttb_p50_s", seconds, "Median time from the request to the two phones connected."),
    ("Refused dials", "dials_refused", count, "Click-to-calls refused before dialling (bad number, blocked...)."),
)
PER_ROW = 5


def tiles(kpi: pd.DataFrame) -> None:
    row = kpi.iloc[0] if len(kpi) else pd.Series(dtype="object")
    for start in range(0, len(TILES), PER_ROW):
        for col, (label, column, fmt, help_) in zip(st.columns(PER_ROW), TILES[start:start + PER_ROW]):
            col.metric(label, fmt(row.get(column)), help=help_, border=True)


# --- charts ---------------------------------------------------------------------------------------

def _text(values: pd.Series) -> pd.Series:
    """Category labels as plotly text: it renders a subset of HTML in labels (<a>, <b>, <br>),
    and labels such as error kinds or extensions come from outside (a CRM, a PBX)."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
        return values
    return values.astype("str").map(html.escape)


def _layout(fig: go.Figure, title: str, height: int = 320) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="h", y=-0.2, traceorder="normal"))
    return fig


def outcomes_chart(df: pd.DataFrame, key: str, title: str) -> go.Figure:
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = _text(df[key])
    for outcome, color in OUTCOME_COLORS.items():
        if outcome in df:
            fig.add_bar(x=x, y=df[outcome], name=OUTCOME_NAMES[outcome], marker_color=color)
    fig.add_scatter(x=x, y=df["hit_rate"], name="hit rate", mode="lines+markers",
                    line=dict(color="#0969da", width=2), secondary_y=True)
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title_text="lookups", secondary_y=False)
    fig.update_yaxes(title_text="hit rate", tickformat=".0%", range=[0, 1.05], tickvals=[0, 0.25, 0.5, 0.75, 1],
                     showgrid=False, secondary_y=True)
    fig.update_yaxes(rangemode="tozero", secondary_y=False)
    return _layout(fig, title)


def latency_chart(df: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for column, name, color in (("p50_ms", "p50", "#2da44e"), ("p95_ms", "p95", "#d4a72c"), ("p99_ms", "p99", "#cf222e")):
        fig.add_scatter(x=df["bucket"], y=df[column], name=name, mode="lines+markers", line=dict(color=color),
                        connectgaps=False)
    fig.update_yaxes(title_text="ms")
    return _layout(fig, "Lookup latency p50 / p95 / p99")


def histogram_chart(df: pd.DataFrame, x: str, y: str, title: str, x_title: str, width: float) -> go.Figure:
    # Bars drawn over their bins [edge, edge + width), so a lone bin still reads as a range.
    fig = go.Figure(go.Bar(x=df[x] + width / 2, y=df[y], width=width * 0.95, marker_color="#0969da",
                           customdata=df[x], hovertemplate=f"from %{{customdata}} {x_title} (bins of {width:g}): "
                           "%{y}<extra></extra>"))
    fig.update_xaxes(title_text=x_title, rangemode="tozero")
    fig.update_yaxes(title_text=y)
    return _layout(fig, title)


def funnel_chart(df: pd.DataFrame, stage: str, value: str, title: str) -> go.Figure:
    fig = go.Figure(go.Funnel(y=df[stage].str.replace("_", " "), x=df[value], textinfo="value+percent initial",
                              marker=dict(color="#0969da")))
    return _layout(fig, title, height=300)


def timeouts_chart(df: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for column, name, color in (("late_found", "answered late: found", "#2da44e"),
                                ("late_not_found", "answered late: not found", "#8c959f"),
                                ("late_failed", "never answered / error", "#cf222e"),
                                ("unrecorded", "not recorded", "#d0d7de")):
        if column in df:
            fig.add_bar(x=df["bucket"], y=df[column], name=name, marker_color=color)
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title_text="timeouts", rangemode="tozero")
    return _layout(fig, "Timeouts and what the CRM answered after the deadline")


def bars(df: pd.DataFrame, x: str, y: str, title: str, horizontal: bool = False, color: str = "#0969da") -> go.Figure:
    labels = _text(df[x])
    bar = go.Bar(y=labels, x=df[y], orientation="h", marker_color=color) if horizontal else \
        go.Bar(x=labels, y=df[y], marker_color=color)
    fig = go.Figure(bar)
    if horizontal:
        fig.update_yaxes(autorange="reversed", type="category")
    else:
        fig.update_xaxes(type="category")
    return _layout(fig, title)


def heatmap(df: pd.DataFrame, value: str, title: str) -> go.Figure:
    grid = df.pivot(index="weekday", columns="hour", values=value).reindex(index=range(1, 8), columns=range(24))
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    fig = go.Figure(go.Heatmap(z=grid.values, x=list(range(24)), y=days, colorscale="Blues",
                               hovertemplate="%{y} %{x}:00 — %{z}<extra></extra>"))
    fig.update_xaxes(title_text="hour of day", dtick=2)
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, title, height=300)


def chart(fig: go.Figure, key: str) -> None:
    st.plotly_chart(fig, width="stretch", key=key, config={"displaylogo": False})


COLUMN_TITLES = {"agent_id": "agent", "leg_a_answered": "leg A answered", "in_progress": "in progress",
                 "show_rate": "show rate", "click_through": "click-through", "answer_rate": "answer rate",
                 "bridge_rate": "bridge rate", "ttb_p50_s": "to bridge p50 (s)", "ttb_p95_s": "to bridge p95 (s)",
                 "median_s_to_click": "to click, median (s)"}


def table(df: pd.DataFrame, key: str, rates: tuple[str, ...] = ()) -> None:
    """A query's rows as they came, readable: rates as percentages, seconds to one decimal,
    "–" where a rate is over nothing (NULL). Formatted here as text: a null number shows as
    "None" in the grid."""
    shown = df.copy()
    for c in df.columns:
        if c in rates:
            shown[c] = df[c].map(lambda v: "–" if _missing(v) else f"{v:.0%}")
        elif pd.api.types.is_float_dtype(df[c]):
            shown[c] = df[c].map(lambda v: "–" if _missing(v) else f"{v:.1f}")
    st.dataframe(shown, hide_index=True, width="stretch", key=key,
                 column_config={c: st.column_config.Column(COLUMN_TITLES.get(c, c.replace("_", " ")))
                                for c in df.columns})


# --- the page -------------------------------------------------------------------------------------

def range_picker(tz: str) -> tuple[tuple, object, str]:
    """(what the operator picked, a function giving the query arguments for it, its label)."""
    left, right = st.columns([5, 1], vertical_alignment="bottom")
    label = left.segmented_control("Range", [*RANGES, CUSTOM], default="Last 24 hours", key="an_range") \
        or "Last 24 hours"
    if label == CUSTOM:
        today = dt.datetime.now(zoneinfo.ZoneInfo(tz)).date()
        picked = st.date_input("Days (in your time zone)", value=(today - dt.timedelta(days=6), today),
                               max_value=today, key="an_days")
        first, last = picked if isinstance(picked, (tuple, list)) and len(picked) == 2 else (today, today)
        default_bucket = "day" if (last - first).days >= 2 else "hour"
        days: tuple = (first, last)
    else:
        default_bucket, days = RANGES[label][1], ()
    buckets = list(analytics.BUCKETS)
    bucket = right.selectbox("Bucket", buckets, index=buckets.index(default_bucket), key=f"an_bucket_{label}")

    def make_args() -> dict:
        start, end = custom_range(*days, tz) if days else preset_range(label, now_utc())
        return {"start": start.isoformat(), "end": end.isoformat(), "tz": tz, "bucket": bucket}
    return (label, days, bucket, tz), make_args, label


def show(frames: dict, slot: str) -> pd.DataFrame | None:
    """A figure's rows, or None after saying why it is missing."""
    frame = frames.get(slot)
    if isinstance(frame, pd.DataFrame):
        return frame
    st.warning(f"{FIGURES[slot][0]}: {frame}")
    return None


def render() -> None:
    st.title("Analytics")
    if session.require_agent() is None:
        return
    client = session.client()
    try:
        names = {q["name"] for q in client.analytics_list().get("queries", [])}
    except HubError as e:
        if e.status == 404:
            st.info("This hub does not serve analytics yet (GET /api/analytics). Update the hub and restart it.")
        else:
            session.show_error(e)
        return
    selection, make_args, label = range_picker(browser_tz())
    refresh = st.button("Refresh", key="an_refresh", icon=":material/refresh:", type="tertiary")
    try:
        snap = snapshot(client, names, selection, make_args, refresh=refresh)
    except HubError as e:
        session.show_error(e)
        return
    args, frames = snap["args"], snap["frames"]
    st.caption(f"{label}: {args['start'][:19].replace('T', ' ')} to {args['end'][:19].replace('T', ' ')} UTC "
               f"(end excluded) · times shown in {args['tz']} · figures from the hub's named queries, "
               f"refreshed every {CACHE_S} s")

    kpi = show(frames, "kpis")
    if kpi is None:
        return
    row = kpi.iloc[0] if len(kpi) else {}
    if not any(int(row.get(c) or 0) for c in ("calls", "lookups", "pops_sent", "dials_requested")):
        st.info("No calls, lookups or dials in this range yet. Pick a longer range; with `make run` the simulated "
                "PBX fills it within minutes.")
    tiles(kpi)

    lookups_tab, pops_tab, dials_tab, by_tab = st.tabs(["Lookups", "Pops", "Click-to-call",
                                                       "By agent, extension, hour"])
    with lookups_tab:
        if (outcomes := show(frames, "outcomes")) is not None:
            chart(outcomes_chart(outcomes, "bucket", "Lookup outcomes and hit rate"), "an_outcomes")
        left, right = st.columns(2)
        with left:
            if (latency := show(frames, "latency")) is not None:
                chart(latency_chart(latency), "an_latency")
        with right:
            if (hist := show(frames, "latency_hist")) is not None:
                chart(histogram_chart(hist, "bin_ms", "lookups", "Latency distribution", "ms", LATENCY_BIN_MS),
                      "an_latency_hist")
        left, right = st.columns(2)
        with left:
            if (timeouts := show(frames, "timeouts")) is not None:
                if int(timeouts["timeouts"].sum()):
                    chart(timeouts_chart(timeouts), "an_timeouts")
                else:
                    st.success("No lookup missed the deadline in this range.")
        with right:
            if (errors := show(frames, "errors")) is not None:
                if errors.empty:
                    st.success("No timeouts or CRM errors in this range.")
                else:
                    errors = errors.assign(label=errors["outcome"] + ": " + errors["kind"])
                    chart(bars(errors, "label", "lookups", "Timeouts and errors by kind", horizontal=True,
                               color="#cf222e"), "an_errors")
        if (by_format := show(frames, "by_format")) is not None and not by_format.empty:
            st.markdown("**Hits by matching format** (CALLPOP_CRM_PHONE_FORMATS: hits past the first format are "
                        "callers the CRM stores in another format)")
            table(by_format, "an_by_format", rates=("hit_rate", "share_of_hits"))
    with pops_tab:
        if (funnel := show(frames, "pop_funnel")) is not None:
            if int(funnel["pops"].max() or 0):
                chart(funnel_chart(funnel, "stage", "pops", "Pop funnel"), "an_pop_funnel")
            else:
                st.info("No pop reached a browser in this range: pops go to agents signed in with the "
                        "callpop extension.")
        if (by_agent := show(frames, "pops_by_agent")) is not None and not by_agent.empty:
            st.markdown("**Pops and click-through by agent**")
            table(by_agent, "an_pops_by_agent", rates=("show_rate", "click_through"))
        if (choices := show(frames, "choices")) is not None and not choices.empty:
            st.markdown("**Several matches: contacts chosen by agent**")
            table(choices, "an_choices", rates=("choice_rate",))
    with dials_tab:
        left, right = st.columns(2)
        with left:
            if (funnel := show(frames, "dial_funnel")) is not None:
                chart(funnel_chart(funnel, "stage", "dials", "Click-to-call funnel"), "an_dial_funnel")
        with right:
            if (ttb := show(frames, "ttb")) is not None:
                chart(histogram_chart(ttb, "bin_s", "dials", "Time to bridge", "seconds", BRIDGE_BIN_S), "an_ttb")
        if (failures := show(frames, "dial_failures")) is not None and not failures.empty:
            failures = failures.assign(label=failures["outcome"] + ": " + failures["reason"])
            chart(bars(failures, "label", "dials", "Failed and refused dials by reason", horizontal=True,
                       color="#cf222e"), "an_dial_failures")
        if (by_source := show(frames, "dials_by_source")) is not None:
            st.markdown("**By source** (extension, console, api)")
            table(by_source, "an_dials_by_source", rates=("answer_rate", "bridge_rate"))
        if (missed := show(frames, "missed")) is not None and not missed.empty:
            st.markdown("**Missed calls and time to call back by agent** (seconds from the call's end to the call back)")
            table(missed, "an_missed_calls", rates=("callback_rate",))
    with by_tab:
        left, right = st.columns(2)
        with left:
            if (by_ext := show(frames, "by_extension")) is not None:
                chart(outcomes_chart(by_ext, "extension", "Lookups by extension"), "an_by_extension")
        with right:
            if (by_hour := show(frames, "by_hour")) is not None:
                chart(outcomes_chart(by_hour, "hour", "Lookups by hour of day"), "an_by_hour")
        if (busiest := show(frames, "busiest")) is not None:
            chart(heatmap(busiest, "calls", "Calls by weekday and hour"), "an_busiest")
        if (dials_agent := show(frames, "dials_by_agent")) is not None:
            st.markdown("**Click-to-call by agent**")
            table(dials_agent, "an_dials_by_agent", rates=("answer_rate", "bridge_rate"))


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import it without rendering
    render()
