"""The benchmarks (``python -m bench``): user-facing figures of the hub, each beside a bare
baseline measured in the same run; they import ``testkit``, never ``tests``."""
