"""A metric's metadata as plain data: what ``aigiqa metrics list``, the scoring service
(``GET /v1/metrics``) and benchmark results (``results.json``) say about a metric."""

from __future__ import annotations

import math
from typing import Any

from aigiqa.metrics.base import Metric

_PLAIN = (str, int, float, bool, type(None))


def metric_metadata(metric: Metric | type[Metric]) -> dict[str, Any]:
    """The registry metadata of a metric class, or of a metric created with options.

    Keys: ``name``, ``kind``, ``lower_better``, ``needs_prompt``, ``score_range`` (``[low,
    high]`` floats with None for an unbounded end, or None if unknown), ``description`` (the
    class's, else the first line of its docstring), ``citation``, ``version`` and
    ``file_options`` (names of the options that name files). A metric instance adds ``spec``,
    ``key``, ``options`` (every option's value, defaults included; a value that is not a
    string, number, bool or None as its ``str``) and ``provenance`` (``Metric.provenance``:
    inference protocol, training protocol and name-blind mode of a trained checkpoint).
    For an instance, ``lower_better``, ``needs_prompt`` and ``score_range`` are its own (an
    ensemble takes them from its members).
    """
    cls = metric if isinstance(metric, type) else type(metric)
    info: dict[str, Any] = {
        "name": cls.name,
        "kind": cls.kind,
        "lower_better": bool(metric.lower_better),
        "needs_prompt": bool(metric.needs_prompt),
        "score_range": None if metric.score_range is None else [
            float(v) if math.isfinite(v) else None for v in metric.score_range],
        "description": cls.description or (cls.__doc__ or "").strip().split("\n")[0],
        "citation": cls.citation,
        "version": str(cls.version),
        "file_options": list(cls.file_options),
    }
    if not isinstance(metric, type):
        info = {"spec": metric.spec, **info, "key": metric.key, "options": {
            k: v if isinstance(v, _PLAIN) else str(v) for k, v in metric.options.items()},
            "provenance": metric.provenance()}
    return info
