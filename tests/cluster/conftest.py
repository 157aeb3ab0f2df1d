import pytest

from tests.support.redis import RedisServer

RECORDER_TOKEN = "test-recorder-token"


@pytest.fixture
def redis_server(tmp_path):
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def recorder(tmp_path, redis_server):
    from tests.support.procs import start_recorder
    with start_recorder(tmp_path / "callpop.duckdb", redis_server.url, recorder_token=RECORDER_TOKEN) as proc:
        yield proc


@pytest.fixture
def cluster_hub(redis_server, recorder, start_hub):
    """A hub of the cluster (call it once per hub): same Redis, same recorder, its own name."""
    count = [0]

    def start(**overrides):
        count[0] += 1
        return start_hub(redis_url=redis_server.url, hub_name=f"hub{count[0]}", recorder_url=recorder.url,
                         recorder_token=RECORDER_TOKEN, **overrides)
    return start


def recorder_reads(recorder):
    """The recorder's read API, as a hub uses it."""
    from pipelines import settings as settings_mod
    from pipelines.cluster.reads import RemoteReads
    return RemoteReads(settings_mod.load(env_file=None, recorder_url=recorder.url, recorder_token=RECORDER_TOKEN))
