"""Every named query gives the numbers it gave before, across daylight-saving changes.

``expected/same_numbers.json`` holds the answers of every query in ``QUERIES`` over a generated
history (fixed seed), for time zones with and without daylight saving, windows around each 2026
change (Israel 27 March and 25 October, Berlin 29 March and 25 October, New York 8 March and
1 November) and several bucket widths. It was written by the implementation that did local time
with its own offset tables, before local time went to DuckDB's ICU functions: the same numbers
show that the change changed none.

Refreeze (``python -m tests.analytics.test_same_numbers``) only when a change of numbers is
meant; the diff of the file then shows which answers changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import zoneinfo
from pathlib import Path

import duckdb
import pytest

from pipelines import analytics
from pipelines.demo import history

EXPECTED = Path(__file__).resolve().parent / "expected" / "same_numbers.json"
HISTORY = {"days": 260, "calls_per_day": 120, "seed": 18, "end": dt.date(2026, 11, 21), "events": False}
TABLES = ("calls", "lookups", "pops", "dials", "rejects")

# (time zone, window [start, end) in UTC, bucket widths). Windows hold a change of that zone, or
# (the odd one) start and end off any bucket edge and span several changes.
WINDOWS = {
    "il_spring": ("2026-03-26T00:00:00", "2026-03-28T00:00:00"),
    "eu_spring": ("2026-03-28T12:00:00", "2026-03-30T12:00:00"),
    "autumn": ("2026-10-24T00:00:00", "2026-10-26T00:00:00"),
    "ny_spring": ("2026-03-07T12:00:00", "2026-03-09T12:00:00"),
    "ny_autumn": ("2026-10-31T12:00:00", "2026-11-02T12:00:00"),
    "night": ("2026-10-24T21:00:00", "2026-10-25T03:00:00"),
    "weeks": ("2026-10-10T13:37:00", "2026-11-20T05:20:00"),
}
SHORT = ("hour", "day")
CASES = [
    ("UTC", "il_spring", SHORT), ("UTC", "autumn", SHORT), ("UTC", "weeks", ("day", "week")),
    ("Asia/Jerusalem", "il_spring", SHORT), ("Asia/Jerusalem", "autumn", SHORT),
    ("Europe/Berlin", "eu_spring", SHORT), ("Europe/Berlin", "autumn", SHORT),
    ("Europe/Berlin", "night", ("5min", "15min", "hour")), ("Europe/Berlin", "weeks", ("day", "week")),
    ("America/New_York", "ny_spring", SHORT), ("America/New_York", "ny_autumn", SHORT),
    ("America/New_York", "weeks", ("week",)),
]
# Groupings and parameters that do not involve time are compared in these windows only.
UNTIMED_IN = ("autumn", "ny_autumn")
TIMED = {"bucket", "hour", "weekday"}
BY_OPTIONS = {"lookup_outcomes": analytics.LOOKUP_BY, "lookup_latency": analytics.LOOKUP_BY,
              "dials_by": analytics.DIAL_BY, "dispositions": ("agent", "hour")}


def calls() -> list[tuple[str, dict]]:
    """(key, arguments) of every query to compare: each query of each case, once per bucket
    width it takes and once per grouping; more for the parameters that change the SQL."""
    out = []
    for tz, window, buckets in CASES:
        start, end = WINDOWS[window]
        for name, query in analytics.QUERIES.items():
            params = {p.name for p in query.params}
            if "by" in params:
                variants = [{"by": by, **({"bucket": b} if by == "bucket" else {})}
                            for by in BY_OPTIONS[name] for b in (buckets if by == "bucket" else (None,))
                            if by in TIMED or window in UNTIMED_IN]
            elif "bucket" in params:
                variants = [{"bucket": b} for b in buckets]
            else:
                variants = [{}]
            if name == "lookup_latency" and window in UNTIMED_IN:
                variants.append({"by": "bucket", "bucket": buckets[0], "cache": "miss"})
            if name == "failing_numbers" and window in UNTIMED_IN:
                variants.append({"limit": 5, "min_lookups": 1})
            for v in variants:
                args = {"start": start, "end": end, "tz": tz, **v}
                key = " ".join([name, tz, window] + [f"{k}={v[k]}" for k in sorted(v)])
                out.append((key, args))
    return out


def digest(con: duckdb.DuckDBPyConnection) -> dict[str, list]:
    """Row count and md5 of every table's rows: the history the expectation was computed on."""
    return {t: list(con.execute(f"SELECT count(*), md5(coalesce(string_agg(t::VARCHAR, '|' ORDER BY t::VARCHAR), '')) "
                                f"FROM {t} t").fetchone()) for t in TABLES}


def answer(con: duckdb.DuckDBPyConnection, args: dict) -> dict:
    """A query's answer as its JSON payload, records as lists and floats to 12 significant
    digits (the file stays small; ``same`` compares to 1e-9)."""
    payload = analytics.to_payload(analytics.run(con, args["name"], **args["given"]))
    names = [c["name"] for c in payload["columns"]]
    return {"columns": payload["columns"],
            "rows": [[float(f"{v:.12g}") if isinstance(v, float) else v for v in (r[n] for n in names)]
                     for r in payload["records"]]}


def frozen(con: duckdb.DuckDBPyConnection) -> dict:
    """The file's content: the history's digest, each distinct list of columns once, and each
    answer as (index of its columns, rows)."""
    schemas: list[list[dict]] = []
    out = {}
    for key, args in calls():
        got = answer(con, {"name": key.split()[0], "given": args})
        if got["columns"] not in schemas:
            schemas.append(got["columns"])
        out[key] = {"columns": schemas.index(got["columns"]), "rows": got["rows"]}
    return {"history": digest(con), "schemas": schemas, "answers": out}


def build(path: Path) -> duckdb.DuckDBPyConnection:
    history.generate(path, **HISTORY)
    return duckdb.connect(str(path), read_only=True)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    con = build(tmp_path_factory.mktemp("same_numbers") / "history.duckdb")
    yield con
    con.close()


@pytest.fixture(scope="module")
def expected():
    return json.loads(EXPECTED.read_text(encoding="utf-8"))


def same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and \
            math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def test_the_generated_history_is_the_one_the_numbers_were_computed_on(generated, expected):
    assert digest(generated) == expected["history"], \
        "the history generator makes other rows for the same seed: the comparison below is void"


def test_every_query_covers_a_daylight_saving_change_in_its_zone():
    for tz, window, _ in CASES:
        if tz != "UTC":
            start, end = (dt.datetime.fromisoformat(t).replace(tzinfo=dt.timezone.utc) for t in WINDOWS[window])
            zone = zoneinfo.ZoneInfo(tz)
            assert start.astimezone(zone).utcoffset() != end.astimezone(zone).utcoffset(), (tz, window)
    assert {key.split()[0] for key, _ in calls()} == set(analytics.QUERIES)


@pytest.mark.parametrize("key,args", calls(), ids=[key for key, _ in calls()])
def test_same_numbers_as_before(generated, expected, key, args):
    want = expected["answers"][key]
    got = answer(generated, {"name": key.split()[0], "given": args})
    assert got["columns"] == expected["schemas"][want["columns"]]
    assert len(got["rows"]) == len(want["rows"]), f"{len(got['rows'])} rows, expected {len(want['rows'])}"
    for i, (g, w) in enumerate(zip(got["rows"], want["rows"])):
        assert all(same(a, b) for a, b in zip(g, w)), f"row {i}: {g} != {w}"


def freeze() -> None:
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        con = build(Path(tmp) / "history.duckdb")
        try:
            body = frozen(con)
        finally:
            con.close()
    EXPECTED.parent.mkdir(exist_ok=True)
    text = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    # One answer a line: a refreeze's diff shows which answers changed.
    text = text.replace('"answers":{', '\n"answers":{\n').replace(']]},"', ']]},\n"')
    EXPECTED.write_text(text + "\n", encoding="utf-8")
    print(f"{EXPECTED}: {len(body['answers'])} answers, {EXPECTED.stat().st_size:,} bytes")


if __name__ == "__main__":
    freeze()
