"""rejects.count on a database made before it existed: older rows count as one refusal each."""

import duckdb

from pipelines.store import Store


def test_an_older_rejects_table_gets_count_1_for_its_rows(tmp_path):
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE rejects (logged_at TIMESTAMP NOT NULL, source VARCHAR, reason VARCHAR, "
                    "detail VARCHAR)")
        con.execute("INSERT INTO rejects VALUES (now(), '/ws', 'unauthorized', 'unknown token'), "
                    "(now(), '/api/me', 'unauthorized', NULL)")
    store = Store(path).open()
    try:
        store.insert("rejects", {"logged_at": "2026-01-01", "source": "/ws", "reason": "unauthorized",
                                 "detail": None, "count": 40}).result(10)
        assert store.query("SELECT sum(count) AS n FROM rejects").n[0] == 42
    finally:
        store.close()
