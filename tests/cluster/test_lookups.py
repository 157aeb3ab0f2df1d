"""The CRM lookup cache and coalescing shared by the hubs, against a real Redis and a real CRM
server: one request per number across hubs, the others wait for its answer; a record one hub
refreshed is what every hub serves; a failed answer reaches the waiters and is not cached; a hub
that took the lock and died holds nobody up for long, one gone nobody at all; Redis down or gone never stops a lookup;
Redis keys never name the number."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from pipelines.cluster.liveness import alive_key
from pipelines.cluster.link import Link
from pipelines.cluster.lookups import LOCK, SharedLookups, digest
from pipelines.crm import CrmClient
from tests.support.crm import FakeCrm, contract
from tests.support.hub import TOKENS, Agent, hub_settings, post_event

NUMBER = "+972501234567"


class TwoHubs:
    """Two hubs' CRM clients (each its own HTTP client, Redis link and shared cache) on one Redis."""

    def __init__(self, tmp_path, redis_url: str, crm_url: str, **overrides):
        self.settings = hub_settings(tmp_path, redis_url=redis_url, **overrides)
        self.crm_url = crm_url

    async def __aenter__(self):
        s = self.settings
        self.links = [Link(s, f"hub{i}") for i in (1, 2)]
        self.http = [httpx.AsyncClient() for _ in self.links]
        for link in self.links:
            await link.start()
            await link.redis.set(alive_key(link.name), 1, px=60_000)  # as a running hub's heartbeat keeps it
        self.shared = [SharedLookups.for_settings(link, s) for link in self.links]
        self.clients = [CrmClient(http, self.crm_url, hard_timeout_s=s.crm_late_timeout_ms / 1000,
                                  cache_ttl_s=s.crm_cache_ttl_s, cache_refresh_s=s.crm_cache_refresh_s, shared=shared)
                        for http, shared in zip(self.http, self.shared)]
        return self

    async def __aexit__(self, *exc):
        for shared, http, link in zip(self.shared, self.http, self.links):
            await shared.stop()
            await http.aclose()
            await link.stop()


async def ask(client: CrmClient, number: str = NUMBER):
    future, _ = client.lookup(number)
    return await future


def test_two_hubs_asking_at_once_make_one_request_and_the_other_waits_for_its_answer(tmp_path, redis_server):
    with FakeCrm() as crm:
        crm.respond(NUMBER, contract(name="Dana Levi", company="Acme"), delay=0.4)

        async def main():
            async with TwoHubs(tmp_path, redis_server.url, crm.url) as hubs:
                first, second = await asyncio.gather(ask(hubs.clients[0]), ask(hubs.clients[1]))
                later = await ask(hubs.clients[1])
                return first, second, later

        first, second, later = asyncio.run(main())
        assert crm.lookups_of(NUMBER) == 1
        assert first.name == second.name == later.name == "Dana Levi"
        assert sorted([first.cache, second.cache]) == ["coalesced", "miss"]
        assert later.cache == "hit"


def test_a_record_refreshed_by_one_hub_is_what_the_other_serves(tmp_path, redis_server):
    with FakeCrm() as crm:
        crm.respond(NUMBER, contract(name="Old Name"))

        async def main():
            async with TwoHubs(tmp_path, redis_server.url, crm.url, crm_cache_refresh_s=0.3) as hubs:
                assert (await ask(hubs.clients[0])).name == "Old Name"
                crm.respond(NUMBER, contract(name="New Name"))
                await asyncio.sleep(0.4)
                stale = await ask(hubs.clients[1])  # served at once, refreshed behind
                deadline = time.monotonic() + 5
                while crm.lookups_of(NUMBER) < 2 and time.monotonic() < deadline:
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.1)
                fresh = await ask(hubs.clients[0])
                return stale, fresh

        stale, fresh = asyncio.run(main())
        assert (stale.name, stale.cache) == ("Old Name", "hit")
        assert (fresh.name, fresh.cache) == ("New Name", "hit")
        assert crm.lookups_of(NUMBER) == 2


def test_a_failed_answer_reaches_the_waiting_hub_and_is_asked_again_next_time(tmp_path, redis_server):
    with FakeCrm() as crm:
        crm.respond(NUMBER, "oops", status=500, content_type="text/plain", delay=0.3)

        async def main():
            async with TwoHubs(tmp_path, redis_server.url, crm.url) as hubs:
                both = await asyncio.gather(ask(hubs.clients[0]), ask(hubs.clients[1]))
                await asyncio.sleep(2.1)  # the failed answer is kept for the waiters only, briefly
                crm.respond(NUMBER, contract(name="Dana Levi"))
                return both, await ask(hubs.clients[1])

        (first, second), after = asyncio.run(main())
        assert first.outcome == second.outcome == "http_error"
        assert after.name == "Dana Levi"
        assert crm.lookups_of(NUMBER) == 2


@pytest.mark.parametrize("holder, lock_ms, at_least, at_most", [
    ("hub1 a-lost-lookup", 400, 0.3, 1.5),  # a living hub's lock that ends with no answer: waited for
    ("hub9 its-lookup", 10_000, 0.0, 0.5),  # a killed hub's lock (it lasts the late timeout): not waited for
], ids=["quiet-hub", "gone-hub"])
def test_a_lock_whose_holder_left_no_answer_holds_the_others_up_only_while_its_hub_lives(
        tmp_path, redis_server, holder, lock_ms, at_least, at_most):
    with FakeCrm() as crm:
        crm.respond(NUMBER, contract(name="Dana Levi"))

        async def main():
            async with TwoHubs(tmp_path, redis_server.url, crm.url) as hubs:
                key = (NUMBER, ())
                await hubs.links[0].redis.set(LOCK + digest(crm.url, key), holder, px=lock_ms)
                started = time.monotonic()
                result = await ask(hubs.clients[1])
                return result, time.monotonic() - started

        result, waited = asyncio.run(main())
        assert result.name == "Dana Levi" and crm.lookups_of(NUMBER) == 1
        assert at_least <= waited < at_most


def test_redis_gone_never_stops_a_lookup(tmp_path, redis_server):
    with FakeCrm() as crm:
        crm.respond(NUMBER, contract(name="Dana Levi"))

        async def main():
            async with TwoHubs(tmp_path, redis_server.url, crm.url) as hubs:
                redis_server.stop()
                started = time.monotonic()
                results = [await ask(client) for client in hubs.clients]
                return results, time.monotonic() - started

        results, took = asyncio.run(main())
        assert [r.name for r in results] == ["Dana Levi", "Dana Levi"]
        assert took < 1.5  # within the CRM deadline, even the first ask that finds Redis gone


def test_redis_keys_name_a_digest_never_the_number_and_expire_with_the_cache(tmp_path, redis_server):
    with FakeCrm() as crm:
        crm.respond(NUMBER, contract(name="Dana Levi"))

        async def main():
            async with TwoHubs(tmp_path, redis_server.url, crm.url, crm_cache_ttl_s=30) as hubs:
                await ask(hubs.clients[0])
                keys = [k async for k in hubs.links[0].redis.scan_iter("callpop:crm:*")]
                return keys, [await hubs.links[0].redis.pttl(k) for k in keys]

        keys, ttls = asyncio.run(main())
        assert keys and not any(b"972501234567" in k for k in keys)
        assert all(0 < ttl <= 30_000 for ttl in ttls)


def test_a_call_ringing_on_two_hubs_asks_the_crm_once_and_pops_both_agents(tmp_path, cluster_hub):
    with FakeCrm() as crm:
        crm.respond("+972501234567", contract(name="Dana Levi", company="Acme"), delay=0.3)
        hub1, hub2 = cluster_hub(crm_url=crm.url), cluster_hub(crm_url=crm.url)
        noa, avi = Agent(hub1, TOKENS["noa"]), Agent(hub2, TOKENS["avi"])
        ext_noa, ext_avi = noa.welcome["agent"]["extension"], avi.welcome["agent"]["extension"]
        ring = dict(caller=NUMBER, callee="+97235550100")
        assert post_event(hub1, call_id="c-a", type="ringing", extension=ext_noa, **ring).status_code == 202
        assert post_event(hub2, call_id="c-b", type="ringing", extension=ext_avi, **ring).status_code == 202
        pops = [noa.recv("pop"), avi.recv("pop")]
        assert [p["name"] for p in pops] == ["Dana Levi", "Dana Levi"]
        assert len([r for r in crm.requests if r.get("phone", "").endswith("501234567")]) == 1


def test_a_contact_chosen_through_one_hub_pops_directly_through_the_other_and_on_a_hub_started_later(cluster_hub):
    from tests.test_hub_matching import NATIONAL, several
    with FakeCrm() as crm:
        crm.respond(NATIONAL, several())
        hub1, hub2 = (cluster_hub(crm_url=crm.url, crm_phone_format="national") for _ in range(2))
        noa = Agent(hub1, TOKENS["noa"])
        ring = dict(caller=NATIONAL, callee="0722776773", extension="201")
        assert post_event(hub1, call_id="mm-1", type="ringing", **ring).status_code == 202
        assert noa.recv("pop")["status"] == "multiple"
        noa.send({"type": "ack", "call_id": "mm-1", "event": "clicked", "chosen": 2})
        noa.nothing("error", within=0.3)
        assert post_event(hub1, call_id="mm-1", type="hangup", **ring).status_code == 202
        hub3 = cluster_hub(crm_url=crm.url, crm_phone_format="national")
        for call_id, hub in (("mm-2", hub2), ("mm-3", hub3)):
            assert post_event(hub, call_id=call_id, type="ringing", **ring).status_code == 202
            pop = noa.recv("pop", where=lambda m, c=call_id: m["call_id"] == c)
            assert (pop["status"], pop["name"], pop["matched"]) == \
                ("found", "Person 2", {"how": "chosen", "by": "noa", "total": 3})
