"""data/ installed as the package ``pipelines.data`` (pyproject.toml): the schema and the demo's
samples, read through ``pipelines.resources``."""
