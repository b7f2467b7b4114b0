"""Micro-batching: concurrent callers' images for one metric are scored together.

Each warm metric has a queue and one worker task. The worker takes the first waiting image, then
collects more until it has ``max_batch`` or ``max_wait_ms`` has passed, runs ``Metric.score`` on the
batch in a thread (the event loop stays free) and resolves each caller's future. One batch per
metric is in flight at a time, so a metric object is never used by two threads at once. If a
batched call raises, the batch's images are scored one by one so only the bad ones fail.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from aigiqa.metrics.base import Metric
from aigiqa.metrics.scoring import score_isolated


@dataclass
class _Job:
    image: np.ndarray | None
    prompt: str | None
    future: asyncio.Future[float]
    on_done: Callable[[], None] | None = None

    def finish(self) -> None:
        """Drop the image and tell its owner."""
        self.image = None
        if self.on_done is not None:
            callback, self.on_done = self.on_done, None
            callback()


class MicroBatcher:
    """A queue and worker for one metric; ``submit`` returns a future of the image's score."""

    def __init__(
        self, metric: Metric, *, max_batch: int, max_wait_ms: float, executor: Executor,
        name: str | None = None,
    ) -> None:
        self.metric = metric
        self.name = name or metric.name  #: the served id (never a spec: it may hold paths)
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._executor = executor
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.batches = 0  #: Metric.score calls made for batches (not counting one-by-one retries)
        self.items = 0  #: images scored

    def submit(self, image: np.ndarray, prompt: str | None = None,
               on_done: Callable[[], None] | None = None) -> asyncio.Future[float]:
        """Queue one RGB uint8 image (H, W, 3); the future gets its score or the error.

        ``on_done`` is called (on the loop) once the batcher has dropped the image.
        """
        if self._closed:
            raise RuntimeError(f"batcher of {self.name!r} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[float] = loop.create_future()
        self._queue.put_nowait(_Job(image, prompt, future, on_done))
        if self._task is None:
            self._task = loop.create_task(self._run(), name=f"batcher {self.name}")
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
            try:
                await self._run_batch(loop, batch)
            finally:
                for job in batch:
                    job.finish()
                del batch, first

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Job]) -> None:
        live = [job for job in batch if not job.future.done()]  # skip timed-out callers
        if not live:
            return
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

    def _score_isolated(self, jobs: list[_Job]) -> list[float | BaseException]:
        """Score a batch (in a worker thread) by the one scoring path of aigiqa
        (:func:`aigiqa.metrics.scoring.score_isolated`); an error it raises (a metric that cannot
        read its files) fails every job of the batch."""
        images = [job.image for job in jobs]
        prompts = [job.prompt for job in jobs]
        try:
            return score_isolated(self.metric, images, prompts)  # type: ignore[arg-type]
        except Exception as exc:
            return [exc] * len(jobs)
