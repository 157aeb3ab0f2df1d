"""What the tests and the benchmarks share, and nothing else: starting the real hub and its
stand-ins as processes (``procs``), a bare CRM (``crm``), the load generator that signs agents in
and posts PBX events (``load``), raw HTTP framing for both (``wire``), the statistics the
benchmarks' verdicts rest on (``stats``), and Chromium with the extension loaded (``browser``).

``tests/`` and ``bench/`` import this package and never each other.
"""
