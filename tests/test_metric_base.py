"""The Metric contract and the registry: options, keys, specs, errors."""

from __future__ import annotations

import numpy as np
import pytest

from aigiqa.errors import MetricError
from aigiqa.metrics.base import Metric
from aigiqa.metrics.registry import (
    create_metric,
    list_metrics,
    parse_metric_spec,
    register_metric,
)


@register_metric
class _MeanMetric(Metric):
    name = "test-mean"
    description = "mean pixel value (test only)"
    defaults = {"scale": 1.0, "channel": -1, "invert": False, "mode": "mean"}

    def score(self, images, prompts=None):
        self.check_batch(images, prompts)
        return np.array([float(im.mean()) * self.options["scale"] for im in images])


@register_metric
class _PromptMetric(Metric):
    name = "test-prompt"
    needs_prompt = True

    def score(self, images, prompts=None):
        self.check_batch(images, prompts)
        return np.array([len(p) for p in prompts], dtype=float)


def test_registry_lists_and_creates():
    assert {"test-mean", "test-prompt"} <= set(list_metrics())
    metric = create_metric("test-mean", scale=2.0)
    assert metric.score([np.full((2, 2, 3), 3, np.uint8)])[0] == 6.0


def test_unknown_metric_and_option():
    with pytest.raises(MetricError, match="unknown metric 'nope'"):
        create_metric("nope")
    with pytest.raises(MetricError, match="unknown option.*colour.*allowed: channel"):
        create_metric("test-mean", colour=1)


def test_option_strings_are_typed():
    metric = create_metric("test-mean", scale="0.5", channel="2", invert="yes")
    assert metric.options == {"scale": 0.5, "channel": 2, "invert": True, "mode": "mean"}
    with pytest.raises(MetricError, match="scale='abc' is not a valid float"):
        create_metric("test-mean", scale="abc")
    with pytest.raises(MetricError, match="invert='maybe'"):
        create_metric("test-mean", invert="maybe")


def test_key_depends_on_options_only():
    a, b = create_metric("test-mean"), create_metric("test-mean", scale=1.0)
    c = create_metric("test-mean", scale=2.0)
    assert a.key == b.key != c.key
    assert a.spec == "test-mean" and c.spec == "test-mean:scale=2.0"
    name, options = parse_metric_spec(c.spec)
    assert create_metric(name, **options).key == c.key


def test_spec_parsing():
    assert parse_metric_spec("niqe") == ("niqe", {})
    assert parse_metric_spec("m:a=1:b=x") == ("m", {"a": "1", "b": "x"})
    with pytest.raises(MetricError, match="key=value"):
        parse_metric_spec("m:oops")


def test_prompt_checks():
    metric = create_metric("test-prompt")
    image = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(MetricError, match="needs a prompt"):
        metric.score([image])
    with pytest.raises(MetricError, match="1 images but 2 prompts"):
        metric.score([image], ["a", "b"])
    with pytest.raises(MetricError, match=r"no prompt for image\(s\) \[1\]"):
        metric.score([image, image], ["a", ""])
    assert metric.score([image], ["abc"])[0] == 3
