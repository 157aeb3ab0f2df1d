"""The Asterisk provider (FreePBX, or any Asterisk from 11 on) over the Manager Interface.

- ``ami``: the AMI wire format, pure (bytes to messages, actions to bytes);
- ``channels``, ``calls``, ``clicktocall``: what AMI events mean, pure: channels grouped into
  calls, a call's ringing/answered/hangup, a click-to-call's progress; ``correlator`` feeds the
  events through them;
- ``client``: the connection (login, actions, reconnects);
- ``provider``: the provider the hub runs (``CALLPOP_PROVIDER=asterisk``).

Nothing is imported here, so the pure parts load without the I/O ones.
"""
