"""An agent's own rows: temporary views that make every named query see one agent's calls,
pops and dials."""

from __future__ import annotations

import duckdb

# An agent's own rows, table by table: their calls are those they were popped for or answered.
_OWN_CALLS = "SELECT call_id FROM {db}.main.pops WHERE agent_id = {a} UNION SELECT call_id FROM {db}.main.calls " \
             "WHERE agent_id = {a}"
AGENT_SCOPE = {
    "pops": "agent_id = {a}", "dials": "agent_id = {a}", "calls": "call_id IN (" + _OWN_CALLS + ")",
    "lookups": "call_id IN (" + _OWN_CALLS + ")", "events": "call_id IN (" + _OWN_CALLS + ")",
    "call_logs": "call_id IN (" + _OWN_CALLS + ")", "call_notes": "agent_id = {a}",
    "contact_choices": "agent_id = {a}", "missed_calls": "agent_id = {a}", "rejects": "false",
}


def scope_to_agent(con: duckdb.DuckDBPyConnection, agent_id: str) -> None:
    """Make every query on this cursor see only one agent's rows: temporary views of the same
    names shadow the tables for this cursor alone, so each named query stays one SQL text."""
    db = '"' + con.execute("SELECT current_database()").fetchone()[0].replace('"', '""') + '"'
    a = "'" + agent_id.replace("'", "''") + "'"
    for table, where in AGENT_SCOPE.items():
        con.execute(f"CREATE TEMP VIEW {table} AS SELECT * FROM {db}.main.{table} WHERE "
                    + where.format(db=db, a=a))
