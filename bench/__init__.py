"""The benchmarks (``python -m bench``): user-facing figures of the hub, each beside a bare
baseline measured in the same run; what they share with the tests they import from
``tests.support``, and nothing under ``tests/`` imports them."""
