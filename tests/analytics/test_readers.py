"""``open_analytics`` reads through the hub while it runs and from the file when it is stopped."""

import subprocess
import sys
import time

import pandas as pd
import pytest

from pipelines import analytics
from pipelines.readers import AnalyticsUnavailable, HubHoldsFile, open_analytics
from tests.support.hub import TOKENS

from . import dataset as ds


@pytest.fixture
def db(tmp_path):
    return ds.build_file(tmp_path / "callpop.duckdb")


def test_through_the_hub_while_it_runs_and_from_the_file_once_it_stopped(start_hub, db):
    hub = start_hub()
    with open_analytics(db_path=db, hub_url=hub.url, token=TOKENS["dana"]) as reader:
        assert reader.mode == "hub"
        running = reader.query("lookup_outcomes", ds.START, ds.END, bucket="hour")
        assert running.loc[running.bucket == ds.at(10), "hit_rate"].item() == 0.7
    hub.stop()
    with open_analytics(db_path=db, hub_url=hub.url, token=TOKENS["dana"]) as reader:
        assert reader.mode == "file"
        stopped = reader.query("lookup_outcomes", ds.START, ds.END, bucket="hour")
    pd.testing.assert_frame_equal(running, stopped)


def test_a_reader_follows_the_hub_stopping_between_two_queries(start_hub, db):
    hub = start_hub()
    reader = open_analytics(db_path=db, hub_url=hub.url, token=TOKENS["dana"])
    first = reader.query("kpis", ds.START, ds.END)
    assert reader.mode == "hub"
    hub.stop()
    second = reader.query("kpis", ds.START, ds.END)
    assert reader.mode == "file"
    pd.testing.assert_frame_equal(first, second)
    assert reader.data_range() == (ds.at(-1), ds.END)  # the call the hour before .. the lookup at the end
    reader.close()


def test_the_file_of_a_running_hub_cannot_be_read_without_the_hub(start_hub, db):
    hub = start_hub()
    with pytest.raises(HubHoldsFile, match="hub_url= and token="):
        open_analytics(db_path=db)
    with pytest.raises(AnalyticsUnavailable, match="agent token"):
        open_analytics(db_path=db, hub_url=hub.url)


def test_a_file_locked_by_another_process_is_reported(db):
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('open', flush=True); time.sleep(30)", str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(HubHoldsFile):
            open_analytics(db_path=db, hub_url="http://127.0.0.1:9")  # nothing listens there
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    with open_analytics(db_path=db, hub_url="http://127.0.0.1:9") as reader:
        assert reader.mode == "file" and reader.query("kpis", ds.START, ds.END).iloc[0].lookups == ds.N_LOOKUPS


def test_bad_parameters_are_refused_the_same_way_both_ways(start_hub, db):
    hub = start_hub()
    with open_analytics(db_path=db, hub_url=hub.url, token=TOKENS["dana"]) as reader:
        with pytest.raises(analytics.InvalidParameter) as through_hub:
            reader.query("lookup_outcomes", ds.START, ds.END, bucket="fortnight")
    hub.stop()
    with open_analytics(db_path=db) as reader:
        with pytest.raises(analytics.InvalidParameter) as from_file:
            reader.query("lookup_outcomes", ds.START, ds.END, bucket="fortnight")
    assert str(through_hub.value) == str(from_file.value) and through_hub.value.name == "bucket"


def test_nothing_to_read(tmp_path):
    with pytest.raises(AnalyticsUnavailable, match="no database"):
        open_analytics(db_path=tmp_path / "missing.duckdb", hub_url="http://127.0.0.1:9")
