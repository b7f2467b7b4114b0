"""The one scoring path of the runner backends and the scoring service.

:func:`score_isolated` scores a batch with one metric and returns one outcome per image: its
score, or the exception that says why that image has none. The rules, in one place:

- the metric gets ready first (:func:`prepare_metric`); if it cannot (a missing or corrupt
  parameter/weight file, an absent device) that is the metric's or the machine's fault, never the
  images': it raises, and the caller ends the run (runner) or refuses to start (service);
- an AssetError while scoring (a metric that loads its files on first use) raises the same way;
- an image without a usable prompt, for a prompt-aware metric, fails alone
  (:func:`aigiqa.metrics.inputs.prompt_problem` is the rule) and is not scored;
- if the batch raises anything else, each image is scored alone, so only the bad ones fail;
- a non-finite score (NaN, inf) is a failure of that image (MATLAB's NIQE gives NaN on flat
  images: there is no score to cache or to report).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from aigiqa.errors import AigiqaError, AssetError, MetricError, describe_error
from aigiqa.metrics.base import Metric
from aigiqa.metrics.inputs import prompt_problem

Outcome = float | BaseException
"""A score, or why the image has none."""


def prepare_metric(metric: Metric) -> None:
    """``metric.prepare()``; any failure is raised as an AigiqaError naming the metric."""
    try:
        metric.prepare()
    except AigiqaError:
        raise
    except Exception as exc:
        raise MetricError(f"metric {metric.spec!r} cannot load its model "
                          f"({describe_error(exc)})") from exc


def score_isolated(metric: Metric, images: Sequence[np.ndarray],
                   prompts: Sequence[str | None] | None = None) -> list[Outcome]:
    """One outcome per image (see the module docstring); raises only what ends a run."""
    prepare_metric(metric)
    outcomes: list[Outcome | None] = [None] * len(images)
    todo = list(range(len(images)))
    if metric.needs_prompt:
        given = list(prompts) if prompts is not None else [None] * len(images)
        for i in todo:
            problem = prompt_problem(given[i])
            if problem is not None:
                outcomes[i] = MetricError(f"metric {metric.name!r} needs a prompt: {problem}")
        todo = [i for i in todo if outcomes[i] is None]
    for i, outcome in zip(todo, _score(metric, images, prompts, todo), strict=True):
        outcomes[i] = outcome
    return outcomes  # type: ignore[return-value]


def _score(metric: Metric, images: Sequence[np.ndarray], prompts: Sequence[str | None] | None,
           indices: list[int]) -> list[Outcome]:
    if not indices:
        return []
    texts = [prompts[i] for i in indices] if metric.needs_prompt and prompts else None
    try:
        values = metric.score([images[i] for i in indices], texts)
    except AssetError:
        raise
    except Exception as exc:
        if len(indices) == 1:
            return [exc]
        return [_score(metric, images, prompts, [i])[0] for i in indices]
    return [float(v) if math.isfinite(v) else
            MetricError(f"metric {metric.name!r} returned {v} for this image") for v in values]
