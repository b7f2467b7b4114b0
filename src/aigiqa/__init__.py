"""aigiqa: quality assessment of AI-generated images.

Public API: ``load_database``, ``list_databases``, ``create_metric``, ``list_metrics``,
``evaluate``, ``run_benchmark`` and the ``AigiqaError`` family. Imports are lazy so that
``import aigiqa`` stays cheap.
"""

from __future__ import annotations

import importlib

from aigiqa.errors import AigiqaError

__version__ = "0.1.0"

_API = {
    "load_database": "aigiqa.databases.registry",
    "list_databases": "aigiqa.databases.registry",
    "validate_database": "aigiqa.databases.registry",
    "Database": "aigiqa.databases.base",
    "Record": "aigiqa.databases.base",
    "create_metric": "aigiqa.metrics.registry",
    "list_metrics": "aigiqa.metrics.registry",
    "Metric": "aigiqa.metrics.base",
    "evaluate": "aigiqa.evaluation",
    "run_benchmark": "aigiqa.benchmark.runner",
    "load_image": "aigiqa.images",
}

__all__ = ["AigiqaError", "__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'aigiqa' has no attribute {name!r}")

