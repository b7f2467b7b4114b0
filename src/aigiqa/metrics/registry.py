"""The one metric registry: metrics by name, created with options."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from aigiqa.errors import MetricError
from aigiqa.metrics.base import KINDS, Metric

_METRICS: dict[str, type[Metric]] = {}

#: Modules that register the built-in metrics when imported (they must import cheaply: heavy
#: dependencies such as torch are imported inside the metric, not at module level).
_BUILTIN_MODULES = (
    "aigiqa.metrics.baseline",
    "aigiqa.metrics.classical.niqe",
    "aigiqa.metrics.classical.brisque",
    "aigiqa.metrics.classical.piqe",
    "aigiqa.metrics.learned.backbones",
    "aigiqa.metrics.learned.prompt_regressor",
    "aigiqa.metrics.learned.cnniqa",
    "aigiqa.metrics.learned.hyperiqa",
    "aigiqa.metrics.learned.dbcnn",
    "aigiqa.metrics.learned.stairiqa",
    "aigiqa.metrics.learned.maniqa",
    "aigiqa.metrics.learned.musiq",
    "aigiqa.metrics.learned.clip_levels",
    "aigiqa.metrics.learned.fused_quality",
    "aigiqa.metrics.alignment.clipiqa",
    "aigiqa.metrics.alignment.clipscore",
    "aigiqa.metrics.alignment.pickscore",
    "aigiqa.metrics.alignment.hpsv2",
    "aigiqa.metrics.alignment.imagereward",
    "aigiqa.metrics.alignment.blipscore",
    "aigiqa.metrics.ensemble",
)
_loaded = False


def register_metric(cls: type[Metric]) -> type[Metric]:
    """Class decorator: add a Metric subclass to the registry under ``cls.name``."""
    if cls.kind not in KINDS:
        raise MetricError(f"metric {cls.name!r}: kind {cls.kind!r} is not one of {KINDS}")
    if cls.name in _METRICS and _METRICS[cls.name] is not cls:
        raise MetricError(f"metric {cls.name!r} is registered twice")
    _METRICS[cls.name] = cls
    return cls


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)
    for ep in entry_points(group="aigiqa.metrics"):  # third-party plugins
        ep.load()


def list_metrics() -> list[str]:
    """Names of every registered metric, sorted."""
    _load_builtins()
    return sorted(_METRICS)


def metric_class(name: str) -> type[Metric]:
    _load_builtins()
    try:
        return _METRICS[name]
    except KeyError:
        raise MetricError(
            f"unknown metric {name!r}; known: {', '.join(sorted(_METRICS))}"
        ) from None


def create_metric(name: str, **options: Any) -> Metric:
    """Create a metric by name, e.g. ``create_metric("sharpness")``; options are validated."""
    return metric_class(name)(**options)


def parse_metric_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split ``name:opt=value:opt2=value2`` into the name and its option strings; an option
    given twice is an error (which one was meant cannot be known)."""
    name, *parts = spec.strip().split(":")
    if not name:
        raise MetricError(f"empty metric name in {spec!r}")
    options: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise MetricError(f"metric spec {spec!r}: option {part!r} is not of the form key=value")
        if key in options:
            raise MetricError(f"metric spec {spec!r}: option {key!r} is given twice "
                              f"({key}={options[key]} and {key}={value}); give it once")
        options[key] = value
    return name, options


def metric_from_spec(spec: str) -> Metric:
    """Create a metric from a CLI spec ``name[:opt=value…]``."""
    name, options = parse_metric_spec(spec)
    return create_metric(name, **options)


def metrics_from_list(specs: str) -> list[Metric]:
    """Create metrics from a comma-separated list of specs, e.g. ``"sharpness,entropy"``."""
    items = [s for s in specs.split(",") if s.strip()]
    if not items:
        raise MetricError("no metric given")
    return [metric_from_spec(s) for s in items]
