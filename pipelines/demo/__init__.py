"""The demo's own world, apart from the hub it runs on: ``callpop demo`` (``run.py``: its settings,
its processes), the generated history (``history.py`` and the modules it draws from), and the
sample CRM the demo hub serves (``samplecrm.py``). The simulated PBX is a provider
(``providers/sim.py``); the sample agents and contacts are the package's data files (``data/``)."""
