"""POST /api/dials/{id}/hangup: an agent ends their own dial; GET /api/dials/{id} says when it ended."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from tests.support.hub import TOKENS, api, wait_rows
from tests.support.pbx import WebhookPbx

ALWAYS_CONNECTS = "0547657777"  # the simulated PBX's test number (README)


def dial(hub, to=ALWAYS_CONNECTS, token="noa") -> str:
    r = api(hub, "POST", "/api/dial", TOKENS[token], json={"to": to})
    assert r.status_code == 202, r.text
    return r.json()["dial_id"]


def state_of(hub, dial_id, token="noa") -> dict:
    r = api(hub, "GET", f"/api/dials/{dial_id}", TOKENS[token])
    assert r.status_code == 200, r.text
    return r.json()


def wait_state(hub, dial_id, states, timeout=10.0) -> dict:
    deadline = time.monotonic() + timeout
    while (answer := state_of(hub, dial_id))["state"] not in states:
        assert time.monotonic() < deadline, answer
        time.sleep(0.03)
    return answer


def hang_up(hub, dial_id, token="noa"):
    return api(hub, "POST", f"/api/dials/{dial_id}/hangup", TOKENS[token])


def ended_at(answer) -> datetime:
    return datetime.fromisoformat(answer["ended_at"].replace("Z", "+00:00"))


def test_hanging_up_a_connected_call_ends_it_and_says_when(start_hub):
    hub = start_hub(sim_speed=20.0)
    dial_id = dial(hub)
    assert state_of(hub, dial_id)["ended_at"] is None
    wait_state(hub, dial_id, ("bridged",))
    before = datetime.now(timezone.utc)
    r = hang_up(hub, dial_id)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["state"] == "ended" and answer["outcome"] == "bridged"
    assert before - timedelta(seconds=1) <= ended_at(answer) <= datetime.now(timezone.utc)
    row = wait_rows(hub, "SELECT outcome, ended_at FROM dials WHERE dial_id = ? AND ended_at IS NOT NULL",
                    [dial_id]).iloc[0]
    assert row.outcome == "bridged"
    time.sleep(0.3)  # the simulated PBX's script was stopped: nothing more comes
    later = state_of(hub, dial_id)  # from the dials table once the row is committed
    assert later["state"] == "ended" and later["ended_at"][:19] == answer["ended_at"][:19]
    assert hang_up(hub, dial_id).json()["error"] == "dial_over"


def test_hanging_up_while_it_rings_fails_the_dial_as_hung_up(start_hub):
    hub = start_hub(sim_speed=1.0)
    dial_id = dial(hub)
    answer = hang_up(hub, dial_id).json()
    assert (answer["state"], answer["error"]) == ("failed", "hung_up") and answer["ended_at"]
    assert wait_rows(hub, "SELECT error FROM dials WHERE dial_id = ? AND ended_at IS NOT NULL",
                     [dial_id]).error[0] == "hung_up"


def test_only_the_dials_own_agent_may_hang_it_up(start_hub):
    hub = start_hub(sim_speed=1.0)
    dial_id = dial(hub)
    for token in ("avi", "dana"):  # another agent, and a supervisor: not their dial
        r = hang_up(hub, dial_id, token)
        assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert hang_up(hub, "d-no-such-dial").status_code == 404
    assert api(hub, "POST", f"/api/dials/{dial_id}/hangup").status_code == 401
    assert state_of(hub, dial_id)["state"] not in ("ended", "failed")
    assert hang_up(hub, dial_id).status_code == 200


def test_the_webhook_provider_cannot_hang_up(start_hub):
    with WebhookPbx() as pbx:
        hub = start_hub(provider="webhook", webhook_dial_url=pbx.url)
        dial_id = dial(hub)
        r = hang_up(hub, dial_id)
        assert r.status_code == 409 and r.json()["error"] == "hangup_unsupported", r.text
        assert "cannot hang up" in r.json()["message"]
        assert state_of(hub, dial_id)["state"] == "requested"  # the PBX still reports its end
