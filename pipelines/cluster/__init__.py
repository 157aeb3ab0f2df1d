"""Cluster mode: several hubs and one recorder on one Redis (``CALLPOP_REDIS_URL``).

Without that setting none of this is imported and the hub is one process with its own DuckDB
file. With it, each part keeps its job and Redis carries what the hubs share:

- ``link``: the connection, its deadline, and whether Redis is up (``redis: down`` on /healthz);
- ``journal``: the hubs' store: each unit of writes (an event and the rows made from it) goes to
  a Redis Stream, and an event's 202 waits for that ``XADD`` (atomic with its idempotency key
  and the call's shared state);
- ``callstate``: the calls every hub needs (ringing calls for a welcome, who answered), in Redis
  with a TTL, a short lock per call, and each hub's copy kept current by pub/sub;
- ``fanout``: messages for an agent reach every hub that holds one of the agent's sockets;
- ``counters``: the limits every hub counts together: one agent's dials a minute, the dial budget
  of the hour, and the one-time sign-in codes with their per-address throttle;
- ``recorder``: ``callpop record``, the one writer of the DuckDB file: it reads the stream with
  a consumer group and acknowledges each entry after DuckDB committed it;
- ``reads``: how a hub reads the database it does not hold (through the recorder).

docs/CLUSTER.md says how to run it and what each Redis setting promises.
"""
