"""The Ray backend: the runner's plan executed with Ray Data on a local or remote Ray cluster.

The metrics are grouped by the resources they declare (``Metric.resources``, default one CPU):
for each group, the planned work items (image path, prompt, the (metric, input hash) pairs it
still needs) become a dataset (``ray.data.from_items``) mapped by ``MetricActor``
(``map_batches`` with a callable class whose ``__init__`` makes the group's metrics once per
actor, so a model is loaded once per actor and each image decoded once per batch), with as many
actors as the cluster's resources allow. The driver consumes the
result batches with ``iter_batches`` and hands each to the runner, which commits it to the
score store at once: a crash of the driver loses only the batches in flight, and a crashed actor
is restarted and its batch retried (``max_restarts`` / ``max_task_retries``).

Needs the ``ray`` extra (``pip install 'aigiqa[ray]'``, i.e. ``ray[data]``); imported only when
the backend is used. Every node must reach the image files under the driver's absolute paths
(a shared file system) and have the same aigiqa version and assets ($AIGIQA_HOME).
"""

from __future__ import annotations

import inspect
import math
import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from aigiqa.benchmark.backends import OnResult, Result, WorkItem, score_batch
from aigiqa.errors import AigiqaError, AssetError, MetricError, describe_error
from aigiqa.metrics.base import Metric

#: Restarts of a scoring actor that died (crash, OOM kill, lost node) and retries of its batch
#: before the run fails; the scores committed until then are kept.
MAX_RESTARTS = 4

#: The ``metric`` of a result row that carries, instead of a score, the error of a metric that
#: cannot get ready (``aigiqa.metrics.scoring.prepare_metric``); the driver raises it.
FATAL = -1

#: Metric ``resources`` keys → ``map_batches`` arguments and ``ray.cluster_resources()`` names.
_STANDARD = {"num_cpus": "CPU", "num_gpus": "GPU", "memory": "memory"}


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or an AigiqaError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise AigiqaError(
            f"--backend ray needs Ray Data, which is not installed ({exc}); install it with "
            "pip install 'aigiqa[ray]' (or pip install 'ray[data]')"
        ) from exc
    return ray


def metric_resources(metric: Metric) -> dict[str, float]:
    """Ray resources of one actor of ``metric``: its ``resources``, ``num_cpus`` 1 unless given."""
    resources = {"num_cpus": 1.0, **{k: float(v) for k, v in metric.resources.items()}}
    bad = {k: v for k, v in resources.items() if not v >= 0}
    if bad:
        raise MetricError(f"metric {metric.spec!r}: negative or invalid resources {bad}")
    return resources


class MetricActor:
    """Ray Data callable class scoring a group of metrics that need the same resources: the
    metrics (usually one model) are made once per actor from their class and options (the
    spec, parsed) and checked against the cache keys the driver planned with.

    Input batches (numpy format) hold work items: columns ``path``, ``prompt`` ("" for none) and
    ``needs`` ("k:hash;k:hash", k the metric's index in the group). Output: one row per scored
    (metric, input): ``metric`` (index in the group), ``hash``, ``value`` (float64, NaN on
    failure) and ``error`` ("" on success); or one ``FATAL`` row whose ``error`` ends the run.
    """

    def __init__(self, specs: list[tuple[type[Metric], dict[str, Any], str]]) -> None:
        self.metrics: list[Metric] = []
        for metric_class, options, key in specs:
            metric = metric_class(**options)
            if metric.key != key:
                raise MetricError(
                    f"metric {metric.spec!r} recreated on a Ray worker has cache key "
                    f"{metric.key}, not {key}: is the same aigiqa version on every node?"
                )
            self.metrics.append(metric)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items = [
            WorkItem(str(path), str(prompt) if prompt else None, _decode_needs(str(needs)))
            for path, prompt, needs in zip(batch["path"], batch["prompt"], batch["needs"],
                                           strict=True)
        ]
        try:
            results = score_batch(items, self.metrics)
        except AigiqaError as exc:  # a metric that cannot get ready: the driver ends the run
            kind = "AssetError" if isinstance(exc, AssetError) else "AigiqaError"
            results = [(FATAL, kind, None, str(exc))]  # (Ray would keep only its traceback)
        return {
            "metric": np.array([k for k, _, _, _ in results], dtype=np.int64),
            "hash": np.array([h for _, h, _, _ in results], dtype=object),
            "value": np.array([math.nan if v is None else v for _, _, v, _ in results],
                              dtype=np.float64),
            "error": np.array([e or "" for _, _, _, e in results], dtype=object),
        }


def _encode_needs(needs: list[tuple[int, str]]) -> str:
    return ";".join(f"{k}:{h}" for k, h in needs)


def _decode_needs(text: str) -> tuple[tuple[int, str], ...]:
    pairs = (part.split(":", 1) for part in text.split(";") if part)
    return tuple((int(k), h) for k, h in pairs)


def resource_groups(metrics: list[Metric]) -> list[tuple[dict[str, float], list[int]]]:
    """Metric indices grouped by equal resources (one actor pool each), in first-seen order."""
    groups: dict[tuple, tuple[dict[str, float], list[int]]] = {}
    for j, metric in enumerate(metrics):
        resources = metric_resources(metric)
        groups.setdefault(tuple(sorted(resources.items())), (resources, []))[1].append(j)
    return list(groups.values())


class RayBackend:
    """Scores with Ray Data actors: on a local Ray started with ``workers`` CPUs (no
    ``address``; shut down after the run), on the cluster at ``address`` (``ray://…`` or
    ``host:port``), or on the Ray this process has already initialised."""

    name = "ray"

    def __init__(
        self, workers: int = 1, address: str | None = None, *, max_restarts: int = MAX_RESTARTS
    ) -> None:
        if workers < 1:
            raise AigiqaError(f"workers must be at least 1, not {workers}")
        if address is not None and not address.strip():
            raise AigiqaError("--address is empty; give a Ray address like ray://head:10001")
        self.ray = import_ray()
        self.workers = workers
        self.address = address
        self.max_restarts = max_restarts

    def run(
        self, items: list[WorkItem], metrics: list[Metric], batch_size: int, on_result: OnResult
    ) -> None:
        started = self._connect()
        context = self.ray.data.DataContext.get_current()
        bars = context.enable_progress_bars
        context.enable_progress_bars = False  # the runner shows its own bar
        try:
            for resources, indices in resource_groups(metrics):
                local = {j: k for k, j in enumerate(indices)}
                rows = []
                for item in items:
                    needs = [(local[j], h) for j, h in item.needs if j in local]
                    if needs:
                        rows.append({"path": os.path.abspath(item.path),
                                     "prompt": item.prompt or "", "needs": _encode_needs(needs)})
                if rows:
                    group = [metrics[j] for j in indices]
                    self._run_group(group, indices, resources, rows, batch_size, on_result)
        finally:
            context.enable_progress_bars = bars
            if started:
                self.ray.shutdown()

    def _connect(self) -> bool:
        """Start or join Ray unless already initialised; True if this call started it."""
        ray = self.ray
        if ray.is_initialized():
            return False
        try:
            if self.address is None:
                ray.init(num_cpus=self.workers, include_dashboard=False)
            else:
                ray.init(address=self.address)
        except Exception as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
            raise AigiqaError(f"cannot start or join {where} ({describe_error(exc)})") from exc
        return True

    def capacity(self, resources: dict[str, float]) -> int:
        """How many actors needing ``resources`` the cluster holds at once (0: none)."""
        total = self.ray.cluster_resources()
        fits = []
        for key, amount in resources.items():
            if amount > 0:
                fits.append(math.floor(total.get(_STANDARD.get(key, key), 0.0) / amount + 1e-9))
        return min(fits) if fits else self.workers

    def _run_group(
        self,
        group: list[Metric],
        indices: list[int],
        resources: dict[str, float],
        rows: list[dict],
        batch_size: int,
        on_result: OnResult,
    ) -> None:
        """Score the work items ``rows`` with one actor pool for the metrics ``group``
        (``indices`` in the runner's metric list), committing each result batch on arrival."""
        specs = ", ".join(m.spec for m in group)
        capacity = self.capacity(resources)
        if capacity < 1 and self.address is None:
            raise AigiqaError(
                f"metric(s) {specs} need {resources} per actor but the local Ray has "
                f"{self.ray.cluster_resources()}"
            )
        n_batches = math.ceil(len(rows) / batch_size)
        standard = {k: resources[k] for k in _STANDARD if k in resources}
        custom = {k: v for k, v in resources.items() if k not in _STANDARD}
        data = self.ray.data
        with warnings.catch_warnings():
            # Ray Data 2.60 takes max_restarts / max_task_retries only as (deprecated) extra
            # ray_remote_args; where they are gone, its actor default (retry forever) applies.
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset = data.from_items(rows, override_num_blocks=n_batches).map_batches(
                MetricActor,
                fn_constructor_args=([(type(m), dict(m.options), m.key) for m in group],),
                batch_size=batch_size,
                batch_format="numpy",
                compute=data.ActorPoolStrategy(size=max(1, min(capacity, n_batches))),
                resources=custom or None,
                **standard,
                **self._retry_args(),
            )
        for batch in self._batches(dataset, specs):
            fatal = np.flatnonzero(batch["metric"] == FATAL)
            if len(fatal):
                k = fatal[0]
                error = AssetError if batch["hash"][k] == "AssetError" else AigiqaError
                raise error(str(batch["error"][k]))
            results: list[Result] = [
                (indices[int(k)], str(h), None if e else float(v), str(e) or None)
                for k, h, v, e in zip(batch["metric"], batch["hash"], batch["value"],
                                      batch["error"], strict=True)
            ]
            on_result(results)

    def _retry_args(self) -> dict[str, int]:
        """Actor restart / task retry limits, where ``map_batches`` still accepts them."""
        parameters = inspect.signature(self.ray.data.Dataset.map_batches).parameters.values()
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return {}
        return {"max_restarts": self.max_restarts, "max_task_retries": self.max_restarts}

    def _batches(self, dataset: Any, specs: str) -> Iterator[dict[str, np.ndarray]]:
        """The dataset's result batches as they finish; a Ray failure becomes an AigiqaError."""
        iterator = iter(dataset.iter_batches(batch_size=None, batch_format="numpy"))
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except Exception as exc:
                raise AigiqaError(
                    f"the Ray run of metric(s) {specs} failed ({describe_error(exc)}); scores "
                    "committed so far are kept: run again to continue"
                ) from exc
            yield batch
