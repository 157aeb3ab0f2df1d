-- callpop's DuckDB schema. The hub (pipelines/store.py) is the only writer of this file.
-- Timestamps are UTC (TIMESTAMP without zone). Tables are append-mostly: rows are inserted
-- when something happens and updated in place as the call, pop or dial moves on; updates are
-- keyed by the row's id plus its creation time so DuckDB's zone maps prune the scan.

-- Every normalised call event the hub accepted, as it arrived (the durable ingest log).
CREATE TABLE IF NOT EXISTS events (
    event_id    VARCHAR NOT NULL,      -- idempotency key: the sender's id, or derived from the event
    call_id     VARCHAR NOT NULL,
    type        VARCHAR NOT NULL,      -- ringing | answered | hangup
    direction   VARCHAR,               -- inbound | outbound
    caller      VARCHAR,
    callee      VARCHAR,
    extension   VARCHAR,
    occurred_at TIMESTAMP,             -- when the PBX says it happened ("at")
    received_at TIMESTAMP NOT NULL,    -- when the hub accepted it
    provider    VARCHAR                -- sim | webhook | voicenter | asterisk
);
-- An event is acted on once, whatever its age: a retried event finds its first copy here.
CREATE UNIQUE INDEX IF NOT EXISTS events_event_id ON events (event_id);

-- One row per call, completed as the call moves on.
CREATE TABLE IF NOT EXISTS calls (
    call_id      VARCHAR NOT NULL,
    direction    VARCHAR,
    caller       VARCHAR,              -- as the network delivered it
    caller_e164  VARCHAR,              -- normalised, NULL when not a phone number
    callee       VARCHAR,              -- the number dialled (DID for inbound calls)
    extension    VARCHAR,              -- first extension rung
    agent_id     VARCHAR,              -- agent who answered, else first agent popped
    started_at   TIMESTAMP NOT NULL,
    answered_at  TIMESTAMP,
    ended_at     TIMESTAMP,
    status       VARCHAR,              -- ringing | answered | ended | missed
    provider     VARCHAR,
    answered_by  VARCHAR,              -- extension that answered
    hangup_cause VARCHAR,
    duration_s   INTEGER,              -- from the provider's call record (Voicenter CDR): whole call
    ring_s       INTEGER,              -- ringing time
    talk_s       INTEGER,              -- talk time, when the record gives it
    cdr_status   VARCHAR,              -- the provider's final status (ANSWER, NOANSWER, BUSY, CANCEL, ABANDONE...)
    recording_url VARCHAR
);

-- One row per CRM lookup made for a call (cache hits included).
CREATE TABLE IF NOT EXISTS lookups (
    call_id         VARCHAR,
    phone           VARCHAR,           -- the value sent to the CRM (with several formats: the last asked)
    phone_e164      VARCHAR,
    started_at      TIMESTAMP NOT NULL,
    latency_ms      DOUBLE,            -- time to the answer (or to the give-up)
    outcome         VARCHAR NOT NULL,  -- found | multiple | not_found | timeout | http_error | bad_response
    http_status     INTEGER,
    total           INTEGER,
    client_name     VARCHAR,
    company         VARCHAR,
    url             VARCHAR,
    error           VARCHAR,           -- why, for every outcome but found/multiple/not_found
    cache           VARCHAR,           -- miss | hit | coalesced (the first format's lookup)
    deadline_ms     INTEGER,           -- the deadline in force
    late_outcome    VARCHAR,           -- for a timeout: what the CRM answered after the deadline
    late_latency_ms DOUBLE,
    extension       VARCHAR,
    did             VARCHAR,
    contract_faults VARCHAR,           -- contract rules the answer broke, comma-separated
    matched_format  VARCHAR            -- for a hit: the CALLPOP_CRM_PHONE_FORMATS entry that found the caller
);

-- One row per (call, agent) that was sent a pop.
CREATE TABLE IF NOT EXISTS pops (
    call_id    VARCHAR NOT NULL,
    agent_id   VARCHAR NOT NULL,
    extension  VARCHAR,
    sent_at    TIMESTAMP NOT NULL,
    status     VARCHAR,                -- pop status last sent: found | multiple | not_found | pending | error
    sessions   INTEGER,                -- browsers the pop reached
    updated_at TIMESTAMP,              -- when a provisional pop was replaced
    shown_at   TIMESTAMP,
    clicked_at TIMESTAMP,
    closed_at  TIMESTAMP,
    candidates INTEGER,                -- contacts offered to choose from (several matches with CONTACTS)
    matched    VARCHAR                 -- why the caller was named: format | chosen (pop's "matched")
);

-- One row per contact an agent chose among several matches; the latest per number is popped
-- directly on its next call while the CRM still answers several matches.
CREATE TABLE IF NOT EXISTS contact_choices (
    e164      VARCHAR NOT NULL,
    url       VARCHAR NOT NULL,
    name      VARCHAR,
    company   VARCHAR,
    agent_id  VARCHAR NOT NULL,
    chosen_at TIMESTAMP NOT NULL,
    call_id   VARCHAR,                 -- the call whose pop offered the choice
    candidates INTEGER                 -- how many contacts were offered
);

-- One row per click-to-call request, refused ones included.
CREATE TABLE IF NOT EXISTS dials (
    dial_id           VARCHAR NOT NULL,
    agent_id          VARCHAR,
    source            VARCHAR,         -- extension | console | api
    leg_a             VARCHAR,         -- number rung first (the agent's phone)
    leg_a_kind        VARCHAR,         -- extension | mobile | home | number
    leg_b             VARCHAR,         -- number the agent asked for
    leg_b_e164        VARCHAR,
    requested_at      TIMESTAMP NOT NULL,
    leg_a_answered_at TIMESTAMP,
    bridged_at        TIMESTAMP,
    ended_at          TIMESTAMP,
    outcome           VARCHAR,         -- NULL while in progress; bridged | failed | refused
    error             VARCHAR,         -- reason code for failed/refused
    provider          VARCHAR,
    provider_call_id  VARCHAR,         -- the provider's id for the call (Voicenter CALLID)
    leg_a_status      VARCHAR,         -- the provider's final status of each leg (Voicenter CDR)
    leg_b_status      VARCHAR,
    duration_s        INTEGER,         -- talk time once bridged, from the provider's call record
    recording_url     VARCHAR,
    callback_for      VARCHAR          -- the missed call this dial calls back (missed_calls.call_id)
);

-- Input the hub refused (bad events, bad tokens, bad dials): what and why, never a secret.
CREATE TABLE IF NOT EXISTS rejects (
    logged_at TIMESTAMP NOT NULL,
    source VARCHAR,                    -- route or provider
    reason VARCHAR,
    detail VARCHAR,
    count INTEGER NOT NULL DEFAULT 1   -- refusals this row stands for (pipelines/limits.py): sum it
);

-- The call log sent to the CRM (CALLPOP_CRM_LOG_URL), as an outbox: one row per revision of a
-- call's entry (1 at its end, then one per note, disposition or call record), written before it
-- is sent and kept with how its delivery went (pipelines/calllog.py).
CREATE TABLE IF NOT EXISTS call_logs (
    call_id      VARCHAR NOT NULL,
    revision     INTEGER NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    agent_id     VARCHAR,
    entry        VARCHAR NOT NULL,      -- the JSON sent (docs/crm-contract.md, "Call log")
    state        VARCHAR NOT NULL,      -- pending | delivered | failed (given up after CALLPOP_CRM_LOG_RETRY_H)
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      TIMESTAMP,             -- pending: when it is tried next
    delivered_at TIMESTAMP,
    http_status  INTEGER,               -- of the last attempt
    last_error   VARCHAR,               -- why the last attempt failed
    activity_url VARCHAR                -- the logged activity's page, from the CRM's answer
);

-- The agents' notes and dispositions, as saved (POST /api/calls/{call_id}/log).
CREATE TABLE IF NOT EXISTS call_notes (
    call_id     VARCHAR NOT NULL,
    agent_id    VARCHAR NOT NULL,
    saved_at    TIMESTAMP NOT NULL,
    revision    INTEGER,                -- the call log revision that carries it; NULL while the call was live
    disposition VARCHAR,
    notes       VARCHAR
);

-- Every change to the agents (pipelines/agent_admin.py): who made it, when, and what changed; a
-- token only as "1 added, 1 removed", never the token or its digest.
CREATE TABLE IF NOT EXISTS agent_changes (
    changed_at TIMESTAMP NOT NULL,
    actor      VARCHAR NOT NULL,       -- the supervisor's (or, signing in with a code, the agent's) id; 'file' for a hand edit
    action     VARCHAR NOT NULL,       -- add | edit | disable | enable | token | signin_code | signin | file
    agent_id   VARCHAR NOT NULL,
    detail     VARCHAR                 -- JSON: {"field": [before, after], ..., "tokens": "1 added, 1 removed"}
);

-- The agents' inbox (pipelines/inbox.py): one row per (call, agent) that rang at the agent and
-- was not answered anywhere (kind missed), or was answered while the agent's pop reached no
-- browser (kind unseen). Open until handled: the hub reloads the open rows when it starts.
CREATE TABLE IF NOT EXISTS missed_calls (
    call_id          VARCHAR NOT NULL,
    agent_id         VARCHAR NOT NULL,
    kind             VARCHAR,          -- missed | unseen
    caller           VARCHAR,          -- as the network delivered it
    e164             VARCHAR,          -- normalised, NULL when not a phone number
    name             VARCHAR,          -- who the pop said it was
    missed_at        TIMESTAMP NOT NULL,  -- when the call ended
    handled_at       TIMESTAMP,
    handled_how      VARCHAR,          -- called_back | done | answered_later | answered_elsewhere
    callback_dial_id VARCHAR           -- the dial that called back (dials.callback_for = call_id)
);

-- Cluster mode: the last journal entry the recorder committed, moved in each entry's own
-- transaction (pipelines/cluster/recorder.py), so an entry is never recorded twice.
CREATE TABLE IF NOT EXISTS journal_marks (
    consumer    VARCHAR NOT NULL PRIMARY KEY,
    last_id     VARCHAR NOT NULL,       -- a Redis stream id, ms-seq
    recorded_at TIMESTAMP NOT NULL
);
