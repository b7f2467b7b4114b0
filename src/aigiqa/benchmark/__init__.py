"""The benchmark: score a database with metrics (cached), evaluate, write results and a report.

``runner`` plans, scores and caches (``score_images``, ``run_benchmark``); ``evaluations``
chooses what a database is evaluated by: ``results`` (SRCC… per split, generator and
hyper-parameter) or ``preference_run`` (pairwise accuracy on a preference database); ``report``
writes results.csv/json and report.html (``preference_report`` the page of a preference bench).
"""

from __future__ import annotations

import importlib

_API = {
    "run_benchmark": "aigiqa.benchmark.runner",
    "score_images": "aigiqa.benchmark.runner",
    "score_files": "aigiqa.benchmark.runner",
    "read_prompts_csv": "aigiqa.benchmark.runner",
    "BenchmarkResult": "aigiqa.benchmark.runner",
    "ScoreTable": "aigiqa.benchmark.runner",
}

__all__ = list(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'aigiqa.benchmark' has no attribute {name!r}")
