"""What the hubs of a cluster count together, against a real Redis: one agent's dials a minute
and the dial budget hold across hubs, a sign-in code made on one hub works once on any, the
one-try-per-address throttle holds across hubs, and Redis down refuses (503) rather than lets
anything through uncounted, until it is back."""

from __future__ import annotations

import asyncio
import shutil

import httpx
import pytest
from pydantic import SecretStr

from pipelines.cluster.counters import SharedCodes, SharedRateLimiter, SharedTries, dial_limits, signin_limits
from pipelines.cluster.link import Link
from pipelines.dialplan import DialRefused
from pipelines.errors import ApiError
from pipelines.signin_codes import digest, normalise
from tests.support import ROOT, wait_until
from tests.support.hub import TOKENS, api, hub_settings, wait_rows
from tests.support.redis import RedisServer

DANA = TOKENS["dana"]


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


def settings_for(tmp_path, url, **overrides):
    return hub_settings(tmp_path, redis_url=url, **overrides)


async def links(settings, *names):
    """One Link per hub, started (their watchers mark Redis up again after it was down)."""
    made = [Link(settings, name) for name in names]
    for link in made:
        await link.start()
    return made


async def until(check, what, timeout=10.0):
    """Await ``check()`` until it returns something truthy (its value); the failures before are ignored."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            if result := await check():
                return result
        except (DialRefused, ApiError):
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def test_two_hubs_share_one_agents_minute(tmp_path, redis_server):
    async def run():
        a, b = await links(settings_for(tmp_path, redis_server.url), "a", "b")
        on_a, on_b = (SharedRateLimiter(link, "dial_rate", 3, 60) for link in (a, b))
        assert [await on_a.allow("noa"), await on_b.allow("noa"), await on_a.allow("noa")] == [True] * 3
        assert await on_b.allow("noa") is False and await on_a.allow("noa") is False
        assert await on_a.used("noa") == await on_b.used("noa") == 3  # refused tries are not counted
        assert await on_b.allow("avi") is True  # another agent has a minute of its own
        for link in (a, b):
            await link.stop()
    asyncio.run(run())


def test_the_window_slides_on_redis_clock(tmp_path, redis_server):
    async def run():
        a, b = await links(settings_for(tmp_path, redis_server.url), "a", "b")
        on_a, on_b = SharedRateLimiter(a, "short", 2, 0.3), SharedRateLimiter(b, "short", 2, 0.3)
        assert await on_a.allow("noa") and await on_b.allow("noa") and not await on_a.allow("noa")
        assert await until(lambda: on_b.allow("noa"), "the first two to age out of the window")
        for link in (a, b):
            await link.stop()
    asyncio.run(run())


def test_the_dial_budget_is_shared_and_redis_down_refuses_with_503(tmp_path, redis_server):
    async def run():
        settings = settings_for(tmp_path, redis_server.url, dial_budget_per_hour=3, dial_rate_per_minute=100)
        a, b = await links(settings, "a", "b")
        (rate_a, budget_a), (rate_b, budget_b) = dial_limits(a, settings), dial_limits(b, settings)
        assert (rate_a.limit, budget_a.limit) == (100, 3)
        assert [await budget_a.allow("all"), await budget_b.allow("all"), await budget_b.allow("all")] == [True] * 3
        assert not await budget_a.allow("all") and not await budget_b.allow("all")
        assert budget_a.known("all") == 3  # the last count this hub read

        redis_server.stop()
        for limit in (rate_a, budget_b):
            with pytest.raises(DialRefused) as refused:
                await limit.allow("noa")
            assert (refused.value.code, refused.value.status) == ("limits_unavailable", 503)
        assert budget_b.known("all") == 3  # status still answers, with the last count

        redis_server.start()  # the same port and its append-only file: the hour's count is kept
        assert await until(lambda: rate_a.allow("noa"), "redis to answer again")
        assert not await budget_a.allow("all") and await budget_b.used("all") == 3
        for link in (a, b):
            await link.stop()
    asyncio.run(run())


def test_a_code_made_on_one_hub_works_once_on_another(tmp_path, redis_server):
    async def run():
        a, b = await links(settings_for(tmp_path, redis_server.url), "a", "b")
        on_a, on_b = SharedCodes(a, 600), SharedCodes(b, 600)
        code = await on_a.make("noa", "dana")
        found, why = await on_b.take(code.lower().replace("-", " "))
        assert why == "" and (found.agent_id, found.made_by) == ("noa", "dana")
        assert await on_a.take(code) == (None, "used") and await on_b.take(code) == (None, "used")
        kept = f"callpop:signin:code:{digest(code)}"  # digests only, never the code
        assert kept in redis_server.cli("KEYS", "callpop:signin:*").split()
        stored = redis_server.cli("HGETALL", kept) + redis_server.cli("GET", "callpop:signin:agent:noa")
        assert "noa" in stored and normalise(code) not in normalise(stored)
        first = await on_a.make("avi", "dana")
        second = await on_b.make("avi", "dana")  # one live code per agent, whichever hub made it
        assert await on_a.take(first) == (None, "unknown")
        assert (await on_a.take(second))[1] == ""
        assert await on_b.take("ABCD-EFGH") == (None, "unknown") and await on_b.take("nope") == (None, "malformed")
        gone = await on_a.make("sarah", "dana")
        await on_b.forget("sarah")
        assert await on_a.take(gone) == (None, "unknown")
        for link in (a, b):
            await link.stop()
    asyncio.run(run())


def test_codes_expire_on_any_hub(tmp_path, redis_server):
    async def run():
        a, b = await links(settings_for(tmp_path, redis_server.url), "a", "b")
        code = await SharedCodes(a, 0.2).make("noa", "dana")
        assert await until(lambda: _is(SharedCodes(b, 0.2).take(code), (None, "expired")), "the code to expire")
        assert await SharedCodes(b, 0.2).take(code) == (None, "unknown")  # forgotten once found expired
        for link in (a, b):
            await link.stop()
    asyncio.run(run())


async def _is(answer, expected):
    return await answer == expected


def test_one_try_per_address_holds_across_hubs_and_redis_down_is_503(tmp_path, redis_server):
    async def run():
        a, b = await links(settings_for(tmp_path, redis_server.url), "a", "b")
        on_a, on_b = SharedTries(a, 30), SharedTries(b, 30)
        assert await on_a.allow("198.51.100.7") == (True, 0)
        assert await on_b.allow("198.51.100.7") == (False, 0) and await on_a.allow("198.51.100.7") == (False, 0)
        assert await on_b.allow("198.51.100.8") == (True, 0)  # another address
        redis_server.stop()
        for ask in (on_a.allow("198.51.100.9"), SharedCodes(b, 600).take("ABCD-EFGH")):
            with pytest.raises(ApiError) as refused:
                await ask
            assert (refused.value.status, refused.value.code) == (503, "signin_unavailable")
        for link in (a, b):
            await link.stop()
    asyncio.run(run())


# --- two real hubs, wired to one Redis the way the hub does it in cluster mode

@pytest.fixture
def two_hubs(start_hub, tmp_path, redis_server):
    """Two hubs on one agents file, each with its own database, their counters in one Redis."""
    agents_csv = tmp_path / "agents.csv"
    shutil.copy(ROOT / "data" / "agents.csv", agents_csv)
    hubs, made = [], []
    for name in ("a", "b"):
        bg = start_hub(agents_csv=str(agents_csv), agents_check_s=0.1, signin_try_every_s=30, dial_budget_per_hour=3,
                       trusted_proxies="127.0.0.1", db_path=str(tmp_path / f"{name}.duckdb"))
        settings = bg.settings.model_copy(update={"redis_url": SecretStr(redis_server.url)})

        async def wire(bg=bg, settings=settings, name=name):
            link = Link(settings, name)
            await link.start()
            bg.hub.dialer.limiter, bg.hub.dialer.budget = dial_limits(link, settings)
            bg.hub.agent_file.codes, bg.hub.agent_file.tries = signin_limits(link, settings)
            return link
        made.append((bg, bg.call(wire())))
        hubs.append(bg)
    yield hubs
    for bg, link in made:
        bg.call(link.stop())


def dial(hub, token, to="054-555-7777"):
    return api(hub, "POST", "/api/dial", token, json={"to": to})


def test_two_hubs_spend_one_dial_budget_and_refuse_with_503_while_redis_is_down(two_hubs, redis_server):
    a, b = two_hubs
    assert dial(a, TOKENS["noa"]).status_code == 202
    assert dial(b, TOKENS["avi"]).status_code == 202
    assert dial(a, TOKENS["avi"]).status_code == 202
    for hub in (b, a):
        r = dial(hub, TOKENS["noa"])
        assert r.status_code == 429 and r.json()["error"] == "dial_budget_exhausted", r.text
    assert wait_until(lambda: api(b, "GET", "/api/status", DANA).json()["dial"] == {
        "budget_per_hour": 3, "used_last_hour": 3, "exhausted": True}, what="hub b's status to show the shared budget")

    redis_server.stop()
    r = dial(b, TOKENS["sarah"])
    assert r.status_code == 503 and r.json()["error"] == "limits_unavailable" and r.json()["message"], r.text
    assert api(b, "GET", "/api/status", DANA).status_code == 200  # the last count, without waiting on Redis
    row = wait_rows(b, "SELECT * FROM dials WHERE error = 'limits_unavailable'").iloc[0]
    assert (row.agent_id, row.outcome) == ("sarah", "refused")

    redis_server.start()
    assert wait_until(lambda: dial(b, TOKENS["sarah"]).status_code == 429,
                      what="the budget (kept by Redis) to answer again")


def signin(hub, code, client):
    """POST /api/signin as ``client`` (the hubs trust the loopback proxy's X-Forwarded-For)."""
    return httpx.post(f"{hub.url}/api/signin", json={"code": code}, headers={"X-Forwarded-For": client}, timeout=10)


def test_a_code_made_on_one_hub_signs_in_once_on_another_and_tries_are_throttled_across(two_hubs):
    a, b = two_hubs
    made = api(a, "POST", "/api/agents/noa/signin-code", DANA)
    assert made.status_code == 200, made.text
    code = made.json()["code"]
    r = signin(b, code, "198.51.100.1")
    assert r.status_code == 200 and r.json()["agent"]["id"] == "noa", r.text
    assert wait_until(lambda: api(a, "GET", "/api/me", r.json()["token"]).status_code == 200,
                      what="hub a to read the agents file hub b wrote")
    again = signin(a, code, "198.51.100.1")  # the same client waits 30 s, whichever hub it asks
    assert again.status_code == 429 and again.json()["error"] == "too_many_tries", again.text
    again = signin(a, code, "198.51.100.2")
    assert again.status_code == 410 and again.json()["error"] == "bad_code" and "used" in again.json()["message"]
