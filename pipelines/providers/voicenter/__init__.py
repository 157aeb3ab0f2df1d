"""The Voicenter provider: Voicenter's cloud PBX on its own wire formats.

``wire`` reads and writes those formats (pure); ``provider`` acts on them through the hub's
``ProviderHost``; ``routes`` are the URLs Voicenter calls. Nothing is imported here, so the pure
parts load without the others.

- ``/voicenter/popup`` takes Voicenter's pop-up screen requests (GET with ``statusCall``, POST
  form with ``status``, POST JSON), one per call phase and ringing extension. ``ivrid`` is the
  call id; ``extenUser`` (the Voicenter extension's SIP user) picks the agent: the agent whose
  ``voicenter_user`` column in the agents CSV holds it, else the agent whose extension is that
  very text. Ringing pops like any call and is answered with the contract JSON from the call's
  one CRM lookup within the hub's deadline (later: ``TOTAL: 0`` and empty fields, and the pop is
  updated when the CRM answers). So a Voicenter customer can point the pop-up URL they have at
  callpop and keep their CRM: callpop asks the CRM (``CALLPOP_CRM_URL``) and passes its answer
  through, cleaned by the contract's rules. Later phases become ``answered`` and ``hangup``.
- ``/voicenter/cdr`` takes the call record Voicenter POSTs after each call and completes the
  ``calls`` row (duration, final status, who answered) or, for Click2Call legs, the ``dials`` row.
- Click-to-call goes through Voicenter's Click2Call API (``code`` token, ``format=json``);
  ERRORCODE 1-4 become dial failures an agent can act on.

Every route checks the source address against ``CALLPOP_VOICENTER_ALLOWED_IPS`` if set (403),
then ``?key=`` against ``CALLPOP_VOICENTER_SECRET`` (401); the settings refuse a hub reachable from
outside this machine without that secret.

Unknown fields, a missing ``extenUser`` and bad bodies are logged and recorded in ``rejects``
(each unknown field name once) and never stop the answer Voicenter is waiting for.
"""

