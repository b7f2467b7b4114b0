"""Micro-batching: concurrent callers' images for one metric are scored together.

Each warm metric has a queue and one worker task. The worker takes the first waiting image, then
collects more until it has ``max_batch`` or ``max_wait_ms`` has passed, runs ``Metric.score`` on the
batch in a thread (the event loop stays free) and resolves each caller's future. One batch per
metric is in flight at a time, so a metric object is never used by two threads at once. If a
batched call raises, the batch's images are scored one by one so only the bad ones fail.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from aigiqa.errors import MetricError
from aigiqa.metrics.base import Metric
from aigiqa.metrics.registry import metric_from_spec, parse_metric_spec


@dataclass
class _Job:
    image: np.ndarray
    prompt: str | None
    future: asyncio.Future[float]


class MicroBatcher:
    """A queue and worker for one metric; ``submit`` returns a future of the image's score."""

    def __init__(
        self, metric: Metric, *, max_batch: int, max_wait_ms: float, executor: Executor
    ) -> None:
        self.metric = metric
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._executor = executor
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.batches = 0  #: Metric.score calls made for batches (not counting one-by-one retries)
        self.items = 0  #: images scored

    def submit(self, image: np.ndarray, prompt: str | None = None) -> asyncio.Future[float]:
        """Queue one RGB uint8 image (H, W, 3); the future gets its score or the error."""
        if self._closed:
            raise RuntimeError(f"batcher of {self.metric.spec!r} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        self._queue.put_nowait(_Job(image, prompt, future))
        if self._task is None:
            self._task = loop.create_task(self._run(), name=f"batcher {self.metric.spec}")
        return future

    @property
    def closed(self) -> bool:
        """True once ``close`` was called; ``submit`` then raises."""
        return self._closed

    async def close(self) -> None:
        """Finish the queued images, then stop the worker."""
        self._closed = True
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task

    async def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        """The first job plus whatever arrives within max_wait, up to max_batch; (jobs, stop)."""
        loop = asyncio.get_running_loop()
        batch, deadline = [first], loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    job = self._queue.get_nowait()
                else:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
            except (asyncio.QueueEmpty, TimeoutError):
                break
            if job is None:
                return batch, True
            batch.append(job)
        return batch, False

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stop = False
        while not stop:
            first = await self._queue.get()
            if first is None:
                return
            batch, stop = await self._collect(first)
            live = [job for job in batch if not job.future.done()]  # skip timed-out callers
            if not live:
                continue
            self.batches += 1
            self.items += len(live)
            results = await loop.run_in_executor(self._executor, self._score_isolated, live)
            for job, result in zip(live, results, strict=True):
                if job.future.done():
                    continue
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)

    def _prompts(self, jobs: list[_Job]) -> list[str] | None:
        return [job.prompt or "" for job in jobs] if self.metric.needs_prompt else None

    def _score(self, jobs: list[_Job]) -> list[float]:
        values = np.asarray(
            self.metric.score([job.image for job in jobs], self._prompts(jobs)), dtype=np.float64
        ).reshape(-1)
        if len(values) != len(jobs):
            raise MetricError(
                f"metric {self.metric.spec!r} returned {len(values)} scores for {len(jobs)} images"
            )
        return [float(v) for v in values]

    def _score_isolated(self, jobs: list[_Job]) -> list[float | BaseException]:
        """Score a batch (in a worker thread); on failure score each job alone."""
        try:
            return list(self._score(jobs))
        except Exception as exc:
            if len(jobs) == 1:
                return [exc]
        out: list[float | BaseException] = []
        for job in jobs:
            try:
                out.append(self._score([job])[0])
            except Exception as exc:
                out.append(exc)
        return out


def canonical_spec(spec: str) -> str:
    """``name:opt=value…`` with surrounding spaces removed and options sorted (the cache key)."""
    name, options = parse_metric_spec(spec)
    pairs = sorted((k.strip(), v.strip()) for k, v in options.items())
    return ":".join([name.strip(), *(f"{k}={v}" for k, v in pairs)])


class MetricPool:
    """Warm metrics by spec, each with its batcher; least recently used dropped past ``size``.

    Metrics are created in a thread (loading a model must not stall the event loop), once per
    spec even when many requests ask for it at the same moment.
    """

    def __init__(
        self,
        *,
        size: int,
        max_batch: int,
        max_wait_ms: float,
        executor: Executor,
        factory: Callable[[str], Metric] = metric_from_spec,
    ) -> None:
        self.size = size
        self._make = lambda metric: MicroBatcher(
            metric, max_batch=max_batch, max_wait_ms=max_wait_ms, executor=executor
        )
        self._factory = factory
        self._executor = executor
        self._batchers: OrderedDict[str, MicroBatcher] = OrderedDict()
        self._creating: dict[str, asyncio.Task[MicroBatcher]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    async def get(self, spec: str) -> MicroBatcher:
        """The warm batcher of ``spec``, creating the metric if needed (MetricError if invalid)."""
        key = canonical_spec(spec)
        while True:
            if key in self._batchers:
                self._batchers.move_to_end(key)
                return self._batchers[key]
            task = self._creating.get(key)
            if task is None:  # one creation per spec; it survives the cancellation of a caller
                task = asyncio.get_running_loop().create_task(self._create(spec, key))
                self._creating[key] = task
                task.add_done_callback(lambda t, key=key: self._done_creating(key, t))
            batcher = await asyncio.shield(task)
            if not batcher.closed:  # else it was already evicted again: look again
                return batcher

    def _done_creating(self, key: str, task: asyncio.Task[MicroBatcher]) -> None:
        self._creating.pop(key, None)
        if not task.cancelled():
            task.exception()  # mark retrieved; the awaiting callers re-raise it

    async def _create(self, spec: str, key: str) -> MicroBatcher:
        loop = asyncio.get_running_loop()
        metric = await loop.run_in_executor(self._executor, self._factory, key)
        if not isinstance(metric, Metric):
            raise MetricError(f"metric spec {spec!r} did not create a Metric")
        batcher = self._make(metric)
        self._insert(key, batcher)
        return batcher

    def _insert(self, key: str, batcher: MicroBatcher) -> None:
        self._batchers[key] = batcher
        while len(self._batchers) > self.size:
            _, old = self._batchers.popitem(last=False)
            task = asyncio.get_running_loop().create_task(old.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def stats(self) -> dict[str, dict[str, float | None]]:
        """Per warm spec: batches run, images scored and mean batch size."""
        return {
            key: {
                "batches": b.batches,
                "items": b.items,
                "mean_batch": b.items / b.batches if b.batches else None,
            }
            for key, b in self._batchers.items()
        }

    def warm(self) -> list[str]:
        """Specs of the warm metrics, least recently used first."""
        return list(self._batchers)

    async def close(self) -> None:
        """Finish queued work of every batcher and stop them."""
        batchers = list(self._batchers.values())
        self._batchers.clear()
        await asyncio.gather(*(b.close() for b in batchers), *self._closing)
