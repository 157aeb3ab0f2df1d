"""Popper's hot path on its own: when a pop leaves relative to the lookup, and what a lookup that
breaks still yields. A real Store (in memory) records; the CRM and the sockets are stand-ins
that show exactly when ``pop`` hands a message over."""

import asyncio

from pipelines.agents import Agent
from pipelines.calls import Call
from pipelines.crm_contract import LookupResult
from pipelines.events import utcnow
from pipelines.phone import normalise
from pipelines.pops import Popper
from pipelines.store import Store

AGENT = Agent("noa", "Noa", "t", extension="201")


class Crm:
    """Answers every lookup with the future the test holds."""

    def __init__(self, future_of):
        self.future_of = future_of

    def lookup(self, value, context):
        return self.future_of(), "hit"


def cached():
    """A lookup the cache answered: already done when ``pop`` gets it."""
    f = asyncio.get_running_loop().create_future()
    f.set_result(LookupResult("found", name="Dana Levi", total=1))
    return f


class Sockets:
    def __init__(self):
        self.sent: list[tuple[str, str]] = []

    def send(self, agent_id, text):
        self.sent.append((agent_id, text))
        return 1


def popper_for(future_of, store, deadline_ms=1500):
    """A Popper whose every lookup is ``future_of()``, and the sockets it sends to."""
    sockets = Sockets()
    return Popper(Crm(future_of), store, sockets, deadline_ms=deadline_ms, phone_formats=["local"],
                  context_params=[]), sockets


def call(call_id="c1", caller="0501234567"):
    return Call(call_id, "inbound", caller, "0722776773", "test", normalise(caller), utcnow(),
                extensions=["201"], popped={"noa": "201"})


async def committed(store, sql):
    """The rows of ``sql`` once the store's writer has committed any (it commits at once here)."""
    for _ in range(200):
        df = store.query(sql)
        if len(df):
            return df
        await asyncio.sleep(0.01)
    raise AssertionError(f"nothing committed for {sql}")


def run(scenario):
    async def main():
        store = Store(":memory:")
        store.open()
        try:
            return await scenario(store)
        finally:
            store.close()
    return asyncio.run(main())


def test_a_cached_answer_pops_at_the_next_turn_of_the_loop():
    async def scenario(store):
        popper, sockets = popper_for(cached, store)
        popper.pop(call(), [AGENT], "201")
        await asyncio.sleep(0)
        assert len(sockets.sent) == 1 and '"status":"found"' in sockets.sent[0][1]
        assert '"name":"Dana Levi"' in sockets.sent[0][1]
        await asyncio.sleep(0)
        assert not popper.tasks
    run(scenario)


def test_a_pop_waits_for_its_lookup_and_leaves_when_it_answers():
    async def scenario(store):
        pending = asyncio.get_running_loop().create_future()
        popper, sockets = popper_for(lambda: pending, store)
        popper.pop(call(), [AGENT], "201")
        await asyncio.sleep(0.01)
        assert sockets.sent == [] and len(popper.tasks) == 1  # the hub's drain waits for it
        pending.set_result(LookupResult("not_found"))
        await asyncio.wait(popper.tasks, timeout=1)
        assert len(sockets.sent) == 1 and '"status":"not_found"' in sockets.sent[0][1]
        assert not popper.tasks
    run(scenario)


def test_a_lookup_that_raises_still_pops_as_an_error_and_is_recorded():
    async def scenario(store):
        failing = asyncio.get_running_loop().create_future()
        popper, sockets = popper_for(lambda: failing, store)
        popper.pop(call("c2"), [AGENT], "201")
        failing.set_exception(RuntimeError("bug in a CRM adapter"))
        await asyncio.wait(popper.tasks, timeout=1)
        assert len(sockets.sent) == 1 and '"status":"error"' in sockets.sent[0][1]
        row = await committed(store, "SELECT outcome, error FROM lookups WHERE call_id = 'c2'")
        assert row.outcome.tolist() == ["http_error"] and "RuntimeError" in row.error[0]
    run(scenario)


def test_past_the_deadline_the_number_goes_first_and_the_name_follows():
    async def scenario(store):
        slow = asyncio.get_running_loop().create_future()
        popper, sockets = popper_for(lambda: slow, store, deadline_ms=30)
        popper.pop(call("c3"), [AGENT], "201")
        await asyncio.sleep(0.1)
        assert len(sockets.sent) == 1 and '"status":"pending"' in sockets.sent[0][1]
        slow.set_result(LookupResult("found", name="Late Answer", total=1))
        await asyncio.wait(popper.tasks, timeout=1)
        assert len(sockets.sent) == 2 and '"name":"Late Answer"' in sockets.sent[1][1]
    run(scenario)
