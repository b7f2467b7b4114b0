"""Execution backends of the runner: how planned work items get scored (the plan and the store
are the runner's; a backend only executes).

A backend takes the work items (one image each, with the (metric index, input hash) pairs it
still needs), the metrics and a batch size, and hands every finished batch's results to
``on_result`` in the calling process, which commits them to the score store. ``LocalBackend``
uses this process or a pool of worker processes; ``RayBackend`` (``aigiqa.benchmark.ray_backend``,
needs the ``ray`` extra) uses Ray Data actors on a local or remote Ray cluster.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from aigiqa.errors import AigiqaError, MetricError, describe_error
from aigiqa.images import load_image
from aigiqa.metrics.base import Metric
from aigiqa.metrics.registry import metric_from_spec
from aigiqa.metrics.scoring import score_isolated

#: Batches in flight per worker process (bounds memory and the work a crash can lose).
IN_FLIGHT_PER_WORKER = 2

#: Names accepted by ``make_backend`` (and the CLI's ``--backend``).
BACKENDS = ("local", "ray")


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One image to decode and the (metric index, input hash) pairs it still needs."""

    path: str
    prompt: str | None
    needs: tuple[tuple[int, str], ...]


Result = tuple[int, str, float | None, str | None]  # metric index, input hash, value, error
OnResult = Callable[[list[Result]], None]


class Backend(Protocol):
    """Executes the runner's plan: scores ``items`` and calls ``on_result`` (in the calling
    process) with each finished batch's results, as soon as it is done."""

    name: str

    def run(
        self, items: list[WorkItem], metrics: list[Metric], batch_size: int, on_result: OnResult
    ) -> None: ...


def make_backend(name: str, *, workers: int = 1, address: str | None = None) -> Backend:
    """The backend called ``name`` (``local`` or ``ray``); ``address`` is for ``ray`` only."""
    if name == "local":
        if address is not None:
            raise AigiqaError("--address is only for --backend ray (the local backend has none)")
        return LocalBackend(workers)
    if name == "ray":
        from aigiqa.benchmark.ray_backend import RayBackend

        return RayBackend(workers=workers, address=address)
    raise AigiqaError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


# Scoring a batch (in a worker process, a Ray actor or in-process) --------------------------------
def _score_metric(
    metric: Metric, index: int, images: list[np.ndarray], prompts: list, hashes: list[str]
) -> list[Result]:
    """Score one metric on decoded images (:func:`aigiqa.metrics.scoring.score_isolated`: its
    rules decide what fails alone and what ends the run)."""
    outcomes = score_isolated(metric, images, prompts)
    return [(index, h, None, describe_error(o)) if isinstance(o, BaseException) else
            (index, h, o, None) for h, o in zip(hashes, outcomes, strict=True)]


def score_batch(items: list[WorkItem], metrics: list[Metric]) -> list[Result]:
    """Decode the batch's images once and score each with the metrics it still needs."""
    results: list[Result] = []
    loaded: list[tuple[WorkItem, np.ndarray]] = []
    for item in items:
        try:
            loaded.append((item, load_image(item.path)))
        except Exception as exc:
            results.extend((j, h, None, describe_error(exc)) for j, h in item.needs)
    for j, metric in enumerate(metrics):
        images, prompts, hashes = [], [], []
        for item, image in loaded:
            for jj, h in item.needs:
                if jj == j:
                    images.append(image)
                    prompts.append(item.prompt)
                    hashes.append(h)
        if images:
            results.extend(_score_metric(metric, j, images, prompts, hashes))
    return results


def batched(items: list[WorkItem], batch_size: int) -> list[list[WorkItem]]:
    """Consecutive batches of at most ``batch_size`` items."""
    return [items[k : k + batch_size] for k in range(0, len(items), batch_size)]


# The local backend: this process or worker processes ---------------------------------------------
_WORKER_METRICS: list[Metric] = []


def _init_worker(payload: list[Metric | tuple[str, str]], parent_pid: int) -> None:
    """Worker start: the metrics (inherited under fork, else made from their specs) and a
    watchdog that ends the worker when its parent is gone (e.g. killed with SIGKILL)."""
    metrics = []
    for item in payload:
        if isinstance(item, Metric):
            metrics.append(item)
        else:
            spec, key = item
            metric = metric_from_spec(spec)
            if metric.key != key:
                raise MetricError(f"metric {spec!r} recreated in a worker has another cache key")
            metrics.append(metric)
    _WORKER_METRICS[:] = metrics

    def watchdog() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watchdog, daemon=True).start()


def _worker_score_batch(items: list[WorkItem]) -> list[Result]:
    return score_batch(items, _WORKER_METRICS)


def _mp_context() -> multiprocessing.context.BaseContext:
    """fork where it is safe (Linux: workers inherit registered metrics), else spawn."""
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


class LocalBackend:
    """Scores in this process (``workers=1``) or in ``workers`` worker processes, at most
    ``IN_FLIGHT_PER_WORKER`` batches in flight per worker."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise AigiqaError(f"workers must be at least 1, not {workers}")
        self.workers = workers

    def run(
        self, items: list[WorkItem], metrics: list[Metric], batch_size: int, on_result: OnResult
    ) -> None:
        batches = batched(items, batch_size)
        if self.workers <= 1 or len(batches) <= 1:
            for batch in batches:
                on_result(score_batch(batch, metrics))
            return
        ctx = _mp_context()
        if ctx.get_start_method() == "fork":
            payload: list = list(metrics)  # inherited by the forked workers, never pickled
        else:
            payload = [(m.spec, m.key) for m in metrics]
        pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(batches)),
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(payload, os.getpid()),
        )
        try:
            queue = iter(batches)
            pending: dict[Future, list[WorkItem]] = {}

            def submit_next() -> None:
                batch = next(queue, None)
                if batch is not None:
                    pending[pool.submit(_worker_score_batch, batch)] = batch

            for _ in range(self.workers * IN_FLIGHT_PER_WORKER):
                submit_next()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    pending.pop(future)
                    try:
                        results = future.result()
                    except AigiqaError:
                        raise  # a metric that cannot get ready: its own message, as in-process
                    except Exception as exc:
                        raise AigiqaError(
                            f"a scoring worker failed ({describe_error(exc)}); scores committed so "
                            "far are kept: run again to continue"
                        ) from exc
                    on_result(results)
                    submit_next()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
