"""Helpers for tests and benchmarks, not runtime: nothing in the package imports them.

- :mod:`aigiqa.testing.postgres`: a throwaway PostgreSQL cluster (``initdb`` in a temp folder);
- :mod:`aigiqa.testing.servers`: a free port, an app on a uvicorn thread (``running_server``),
  and ``aigiqa study serve`` in a subprocess (``start_study_server``).
"""
