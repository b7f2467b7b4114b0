"""The HTTP scoring service (``aigiqa serve``): FastAPI app, micro-batching, limits, auth.

``create_app`` is imported lazily so that ``aigiqa --help`` does not pay for FastAPI.
"""

from aigiqa.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from aigiqa.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'aigiqa.serve' has no attribute {name!r}")
