"""Quality metrics: the Metric base class and the registry."""

from aigiqa.metrics.base import Metric
from aigiqa.metrics.registry import (
    create_metric,
    list_metrics,
    metric_class,
    metric_from_spec,
    metrics_from_list,
    register_metric,
)

__all__ = [
    "Metric",
    "create_metric",
    "list_metrics",
    "metric_class",
    "metric_from_spec",
    "metrics_from_list",
    "register_metric",
]
