"""Who calls and who answers in the generated history, and the figures that shape it.

The shares, hour profiles and agents' habits are described in ``history.py``; ``build_world``
turns the demo's agents and contacts into the small dimension tables the generated rows point
into (callers with what the CRM answers for them, agents with their phones).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa

from .. import phone as phones
from ..agents import Agents
from ..contacts import Contacts

LOCAL_TZ = "Asia/Jerusalem"
BASE_URL = "http://127.0.0.1:8765"  # the demo hub, whose sample CRM the recorded URLs point to
DEADLINE_MS = 1500                    # crm_deadline_ms in force (the default)
LATE_TIMEOUT_MS = 10000               # crm_late_timeout_ms
US = 1_000_000                        # microseconds per second

# Inbound calls by local hour (Sunday-Thursday, Friday) and by ISO weekday (1 = Monday).
HOURS = np.array([.002, .001, .001, .001, .002, .01, .05, .2, .6, 1.0, 1.25, 1.3,
                  1.1, .85, 1.1, 1.2, 1.0, .65, .35, .15, .08, .04, .02, .01])
HOURS_FRIDAY = np.array([.002, .001, .001, .001, .002, .01, .05, .25, .7, 1.0, 1.05, .9,
                         .6, .3, .1, .04, .02, .01, .01, .01, .01, .005, .003, .002])
WEEKDAYS = {1: 1.0, 2: 1.0, 3: .97, 4: .95, 5: .35, 6: .06, 7: 1.05}
# Click-to-calls by local hour: agents call back late morning and mid-afternoon.
DIAL_HOURS = np.array([0, 0, 0, 0, 0, .005, .02, .1, .5, .9, 1.2, 1.0,
                       .7, .6, 1.0, 1.25, 1.1, .7, .3, .1, .03, .01, 0, 0])
DIALS_PER_CALL = 0.35

DID_WEIGHTS = np.array([.6, .3, .1])  # per DID of the simulated PBX (providers/sim.py), in order
UNKNOWN_BY_DID = np.array([.2, .35, .5])   # share of callers the CRM does not know, per DID
WITHHELD = .04
RING_GROUP = .2
CACHE_HIT, CACHE_COALESCED = .04, .01
# Per agent, in the order of agents.csv (a longer list repeats): how often their extension
# rings, how often they are signed in, how keen they are on clicking pops, how often they
# start a click-to-call, how many of those from the console, and how often they have their
# mobile rung first (a mobile answers later, and less often, than a desk extension).
AGENT_TRAITS = ((.3, .96, .62, 1.0, .2, .1), (.28, .9, .35, 1.2, .1, .15), (.2, .93, .78, .8, .45, .25),
                (.17, .8, .1, .9, .05, .6), (.05, .97, .45, .3, .6, .05))

OUTCOMES = ("found", "multiple", "not_found", "timeout", "http_error", "bad_response")
POP_STATUS = ("found", "multiple", "not_found", "error", "error", "error")  # by final outcome
ERRORS = (  # code -> (recorded error, http status or -1)
    ("cannot connect to the CRM (ConnectError: [Errno 111] Connection refused)", -1),
    ("CRM answered HTTP 503", 503),
    ("CRM answered HTTP 500", 500),
    ("CRM answered HTTP 502", 502),
    ("STATUS is missing", 200),
    ("answer is not JSON (starts '<!DOCTYPE html><html><head><title>Sign in')", 200),
    (f"no answer within the {DEADLINE_MS} ms deadline", -1),
)
E_CONNECT, E_503, E_500, E_502, E_STATUS, E_HTML, E_DEADLINE = range(len(ERRORS))
DIAL_SOURCES = ("extension", "console", "api")
LEG_A_KINDS = ("extension", "mobile", "home", "number")
DIAL_ERRORS = ("leg_a_no_answer", "leg_a_busy", "leg_b_busy", "leg_b_no_answer", "ended_before_bridge",
               "provider_error", "not_a_number", "rate_limited", "blocked_prefix", "own_number")
REFUSALS = np.array([6, 7, 8, 9])
REFUSAL_WEIGHTS = np.array([.4, .3, .2, .1])
NOT_NUMBERS = ("2024-11-25", "ext. 12", "12345", "#1234", "Tel: --")
BLOCKED = ("+1 900 555 0199", "+44 871 234 5678", "1-900-123-4567", "+972 1900 123 456")


@dataclasses.dataclass
class World:
    """Who calls and who answers: the small dimension tables the generated rows point into."""
    numbers: pa.Table          # idx, raw, e164, outcome (0 found / 1 multiple / 2 not_found), name, company, url, total
    known: int                 # numbers[:known] are contacts, the rest unknown callers
    contact_weights: np.ndarray
    unknown_weights: np.ndarray
    broken: np.ndarray         # bool per number: the CRM's record for it breaks the answer
    agents: pa.Table           # idx, id, extension, leg_mobile, leg_home
    ring_weights: np.ndarray
    online: np.ndarray
    click: np.ndarray
    dial_weights: np.ndarray
    console_share: np.ndarray
    mobile_share: np.ndarray
    leg_b_weights: np.ndarray  # dial targets: contacts and unknown numbers


def build_world(agents: Agents, contacts: Contacts, region: str, rng: np.random.Generator) -> World:
    people = contacts.all()
    if not people:
        raise ValueError("no contacts to build a history from")
    raw, e164, outcome, name, company, url, total = [], [], [], [], [], [], []
    for c in people:
        p = phones.normalise(c.phone, region)
        matches = contacts.by_phone(c.phone)
        # As the network delivers it: national digits at home, E.164 from abroad.
        raw.append(p.national.replace("-", "").replace(" ", "") if p.region == region else (p.e164 or p.digits))
        e164.append(p.e164)
        if len(matches) > 1:
            outcome.append(1)
            name.append(" / ".join(m.name for m in matches[:3]))
            companies = sorted({m.company for m in matches if m.company})
            company.append(companies[0] if len(companies) == 1 else None)
            url.append(f"{BASE_URL}/crm/search?phone={raw[-1]}")
        else:
            outcome.append(0)
            name.append(c.name)
            company.append(c.company or None)
            url.append(f"{BASE_URL}/crm/contacts/{c.id}")
        total.append(len(matches))
    known = len(people)
    # Unknown callers: a pool where a few numbers call again and again (Zipf-like).
    pool = max(200, 20 * known)
    prefixes = rng.choice(np.array([50, 52, 54, 58, 3, 9]), pool, p=[.3, .25, .2, .1, .1, .05])
    subscriber = rng.integers(0, 10 ** 7, pool)
    for pre, sub in zip(prefixes.tolist(), subscriber.tolist()):
        national = f"0{pre}{sub:07d}"
        raw.append(national)
        e164.append("+972" + national[1:])
        outcome.append(2)
        name.append(None)
        company.append(None)
        url.append(f"{BASE_URL}/crm/new?phone={national}")
        total.append(0)
    rank = rng.permutation(known) + 1
    contact_weights = rank ** -0.5
    contact_weights /= contact_weights.sum()
    unknown_weights = (np.arange(pool) + 1.0) ** -0.7
    unknown_weights /= unknown_weights.sum()
    broken = np.zeros(known + pool, dtype=bool)
    broken[rng.choice(known, min(2, known), replace=False)] = True
    numbers = pa.table({"idx": np.arange(known + pool, dtype=np.int32), "raw": raw, "e164": e164,
                        "outcome": np.array(outcome, dtype=np.int8), "name": name, "company": company,
                        "url": url, "total": np.array(total, dtype=np.int32)})

    staff = [a for a in agents if a.extension]
    if not staff:
        raise ValueError("no agent has an extension")
    traits = np.array([AGENT_TRAITS[i % len(AGENT_TRAITS)] for i in range(len(staff))])

    def e164_or_none(text: str) -> str | None:
        return phones.normalise(text, region).e164 if text else None

    agent_table = pa.table({"idx": np.arange(len(staff), dtype=np.int32), "id": [a.id for a in staff],
                            "extension": [a.extension for a in staff],
                            "leg_mobile": [e164_or_none(a.mobile) for a in staff],
                            "leg_home": [e164_or_none(a.home) for a in staff]})
    leg_b = np.concatenate([contact_weights * .75, unknown_weights * .25])
    return World(numbers, known, contact_weights, unknown_weights, broken, agent_table,
                 traits[:, 0] / traits[:, 0].sum(), traits[:, 1], traits[:, 2],
                 traits[:, 3] / traits[:, 3].sum(), traits[:, 4], traits[:, 5], leg_b / leg_b.sum())
