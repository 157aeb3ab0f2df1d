"""The inbox queries: missed calls, how they were handled, and the time to call back."""

from __future__ import annotations

import pandas as pd

from .params import named
from .ranges import Range
from .sql import df, n, rate

CALLED_BACK = "handled_how = 'called_back'"


@named("Missed calls and time to call back by agent")
def missed_calls(con, *, start, end, tz="UTC") -> pd.DataFrame:
    """Per agent: inbox entries (a call that rang at them and was answered nowhere, or a pop that
    reached none of their browsers), how they were handled, and how long a call back took.

    Columns: ``agent_id``, ``entries``, ``missed``, ``unseen``, ``called_back``, ``done``,
    ``answered_later`` (a later call from the number was answered, or the call itself after all),
    ``open`` (not handled yet), ``callback_rate`` (called back / entries), ``ttcb_p50_s`` /
    ``ttcb_p90_s`` (time to call back: from the call's end to the call-back dial's request, exact
    percentiles over the entries called back). Most entries first.
    """
    r = Range(start, end, tz)
    q = f"quantile_cont(epoch(handled_at - missed_at), [0.5, 0.9]) FILTER ({CALLED_BACK})"
    counts = {"missed": "kind = 'missed'", "unseen": "kind = 'unseen'", "called_back": CALLED_BACK,
              "done": "handled_how = 'done'",
              "answered_later": "handled_how IN ('answered_later', 'answered_elsewhere')",
              "open": "handled_at IS NULL"}
    sql = ("SELECT agent_id, count(*) AS entries, " + ", ".join(f"{n(c)} AS {name}" for name, c in counts.items())
           + f", {rate(n(CALLED_BACK), 'count(*)')} AS callback_rate, {q}[1] AS ttcb_p50_s, {q}[2] AS ttcb_p90_s "
           f"FROM missed_calls WHERE {r.within('missed_at')} GROUP BY agent_id ORDER BY entries DESC, agent_id")
    return df(con, sql, r.binds()).astype({"ttcb_p50_s": "float64", "ttcb_p90_s": "float64"})
