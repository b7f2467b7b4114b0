"""What the runner scores with: the metrics, the prompts aligned with the images, and the text
each metric reads for each image.

Name-blind by default: a metric is given decoded pixels and the image's prompt, never its file
name or generator id. A metric that reads them (``Metric.reads_names``: e.g. ``clip-prompt-levels``
with ``generator_prefix``) is refused unless the caller allows names (``aigiqa bench
--allow-names``, ``run_benchmark(..., allow_names=True)``); then it reads
``metric.model_text(prompt, name, generator)`` for each image, and the results say the numbers
are not name-blind (:mod:`aigiqa.benchmark.provenance`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from aigiqa.errors import AigiqaError, MetricError
from aigiqa.metrics.base import Metric
from aigiqa.metrics.inputs import prompt_problem
from aigiqa.metrics.registry import metric_from_spec, metrics_from_list

__all__ = ["align_prompts", "check_names", "check_prompts", "metric_texts", "read_prompts_csv",
           "resolve_metrics"]


def resolve_metrics(metrics: Sequence[Metric | str] | str) -> list[Metric]:
    """Metric instances from instances and/or specs (``"name:opt=v"``, or one comma list);
    the registry creates them. MetricError if none is given or a spec appears twice."""
    if isinstance(metrics, str):
        resolved = metrics_from_list(metrics)
    else:
        resolved = [_metric(item) for item in metrics]
    if not resolved:
        raise MetricError("no metric given")
    specs = [m.spec for m in resolved]
    duplicates = sorted({s for s in specs if specs.count(s) > 1})
    if duplicates:
        raise MetricError(f"metric(s) given twice: {', '.join(duplicates)}")
    return resolved


def _metric(item: Metric | str) -> Metric:
    if isinstance(item, Metric):
        return item
    if isinstance(item, str):
        return metric_from_spec(item)
    raise MetricError(f"not a metric or metric spec: {item!r}")


def align_prompts(
    prompts: Sequence[str | None] | Mapping[str, str] | None, names: list[str]
) -> list[str | None]:
    """Prompts aligned with ``names``: from a list of the same length or a name → prompt map."""
    if prompts is None:
        return [None] * len(names)
    if isinstance(prompts, Mapping):
        return [prompts.get(name) for name in names]
    if isinstance(prompts, str):
        raise AigiqaError("prompts must be a list aligned with the images or a name → prompt map")
    aligned = list(prompts)
    if len(aligned) != len(names):
        raise AigiqaError(f"{len(names)} images but {len(aligned)} prompts")
    return aligned


def check_prompts(metrics: list[Metric], names: list[str], prompts: list[str | None]) -> None:
    """MetricError naming every image without a prompt if a prompt-aware metric is asked for."""
    for metric in metrics:
        if not metric.needs_prompt:
            continue
        missing = [names[i] for i, p in enumerate(prompts) if prompt_problem(p) is not None]
        if missing:
            raise MetricError(
                f"metric {metric.spec!r} needs a prompt for every image; {len(missing)} of "
                f"{len(names)} images have none (give prompts, e.g. --prompts CSV)",
                missing,
            )


def check_names(metrics: Sequence[Metric], allow_names: bool) -> None:
    """MetricError naming the metrics that read file names or generator ids, unless allowed."""
    reading = [m.spec for m in metrics if m.reads_names]
    if reading and not allow_names:
        raise MetricError(
            f"metric(s) {', '.join(reading)} read file names or generator ids; scoring is "
            "name-blind unless you allow them (aigiqa bench --allow-names; run_benchmark or "
            "score_images(..., allow_names=True)); such a metric is never scored without them")


def metric_texts(metrics: Sequence[Metric], prompts: list[str | None], names: list[str],
                 generators: Sequence[str | None] | None,
                 allow_names: bool) -> list[list[str | None]]:
    """The text each metric reads for each image (metric-major): the prompt, or for a metric
    that reads names ``model_text(prompt, name, generator)`` (:func:`check_names` first)."""
    check_names(metrics, allow_names)
    gens = [None] * len(names) if generators is None else list(generators)
    if len(gens) != len(names):
        raise AigiqaError(f"{len(names)} images but {len(gens)} generators")
    return [[metric.model_text(p or "", name, g or "")
             for p, name, g in zip(prompts, names, gens, strict=True)]
            if metric.reads_names else list(prompts) for metric in metrics]


def read_prompts_csv(path: str | Path) -> dict[str, str]:
    """Read a ``name,prompt`` CSV (header required) into {image name: prompt}."""
    path = Path(path)
    if not path.is_file():
        raise AigiqaError(f"{path}: prompts file not found")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise AigiqaError(f"{path}: cannot read prompts CSV ({exc})") from exc
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    missing = [c for c in ("name", "prompt") if c not in frame.columns]
    if missing:
        raise AigiqaError(
            f"{path}: prompts CSV lacks column(s) {', '.join(missing)}; it needs a header "
            f"'name,prompt' (found: {', '.join(frame.columns) or 'none'})"
        )
    names = frame["name"].str.strip()
    empty = [f"row {k + 2}: empty name" for k in np.flatnonzero((names == "").to_numpy())]
    if empty:
        raise AigiqaError(f"{path}: rows without an image name", empty)
    dup = names[names.duplicated(keep=False)]
    if not dup.empty:
        problems = [f"row {k + 2}: {name!r}" for k, name in dup.items()]
        raise AigiqaError(f"{path}: duplicate image names", problems)
    return dict(zip(names, frame["prompt"], strict=True))
