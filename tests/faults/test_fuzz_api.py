"""schemathesis against the hub's own OpenAPI document: whatever it generates (valid requests and
deliberately invalid ones, sent with an agent's token, the ingest token and none), the hub
answers 2xx, 3xx or 4xx, never a 5xx, and keeps serving.

The document is taken from the app itself at collection time (one test per operation and mode);
the requests go over HTTP to the real hub. `make test` runs a few examples per operation,
`make soak` many more."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from pipelines.api import create_app
from pipelines.server import BackgroundHub
from tests.support import INGEST
from tests.support.hub import TOKENS, Agent, hub_settings, post_event

QUICK, DEEP = 15, 300
TOKENS_TRIED = (TOKENS["noa"], INGEST, None)


def _operations():
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(hub_settings(Path(tmp)))  # builds the routes; the hub itself is not started
        schema = schemathesis.openapi.from_dict(app.openapi())
    return {op.label: op for op in (r.ok() for r in schema.get_all_operations())}


OPERATIONS = _operations()


def _has_inputs(op) -> bool:
    return any(len(part) for part in (op.path_parameters, op.query, op.headers, op.cookies, op.body))


# An operation without parameters or body has nothing to make invalid: positive mode only.
CASES = [pytest.param(label, mode, id=f"{label}-{mode.value}") for label, op in OPERATIONS.items()
         for mode in GenerationMode if mode is GenerationMode.POSITIVE or _has_inputs(op)]


@pytest.fixture(scope="module")
def fuzz_hub(tmp_path_factory):
    # A rate limit the fuzzer cannot hit, so dials reach the dialling code instead of the 429.
    s = hub_settings(tmp_path_factory.mktemp("fuzz"), dial_rate_per_minute=1_000_000)
    with BackgroundHub(s) as bg:
        yield bg


def fuzz(hub, label: str, mode: GenerationMode, examples: int) -> None:
    strategy = OPERATIONS[label].as_strategy(generation_mode=mode)

    @given(case=strategy, token=st.sampled_from(TOKENS_TRIED))
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case, token):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = case.call(base_url=hub.url, headers=headers, timeout=10)
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} {case.query or ''} -> {response.status_code}: {response.text[:300]}")

    run()


@pytest.mark.parametrize("label, mode", CASES)
def test_no_request_makes_the_hub_fail(fuzz_hub, label, mode):
    fuzz(fuzz_hub, label, mode, QUICK)


@pytest.mark.soak
@pytest.mark.parametrize("label, mode", CASES)
def test_no_request_makes_the_hub_fail_deep(fuzz_hub, label, mode):
    fuzz(fuzz_hub, label, mode, DEEP)


def test_the_hub_still_pops_after_being_fuzzed(fuzz_hub):
    noa = Agent(fuzz_hub, TOKENS["noa"])
    r = post_event(fuzz_hub, call_id="after-fuzz", type="ringing", caller="0722776772", extension="201")
    assert r.status_code == 202
    assert noa.recv("pop", where=lambda m: m["call_id"] == "after-fuzz")["name"] == "John Doe"
    assert fuzz_hub.hub.store.last_error == ""  # no write the fuzzer caused was refused by DuckDB
