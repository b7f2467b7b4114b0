"""Micro-batching: concurrent callers share Metric.score calls; failures stay per image."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import httpx
import numpy as np
import pytest
from PIL import Image

from aigiqa.errors import MetricError
from aigiqa.metrics.base import Metric
from aigiqa.metrics.registry import _METRICS, metric_from_spec, register_metric
from aigiqa.serve import ServeConfig, create_app
from aigiqa.serve.batching import MicroBatcher
from aigiqa.testing.servers import running_server


class _Recorder(Metric):
    """Test metric: mean pixel x ``gain``; records every batch size; 20 ms per call (a model).

    An all-white image makes the whole batch raise (to test isolation); an all-black one scores
    NaN.
    """

    name: ClassVar[str] = "test_serve_recorder"
    defaults: ClassVar[dict] = {"gain": 1.0}
    batch_sizes: ClassVar[list[int]] = []
    created: ClassVar[list[str]] = []
    _lock = threading.Lock()

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.created.append(self.spec)

    def score(self, images: Sequence[np.ndarray], prompts: Sequence[str] | None = None):
        with self._lock:
            self.batch_sizes.append(len(images))
        time.sleep(0.02)
        if any(im.min() == 255 for im in images):
            raise MetricError("white image")
        means = np.array([im.mean() for im in images]) * self.options["gain"]
        return np.where(means == 0, np.nan, means)


@pytest.fixture(autouse=True, scope="module")
def recorder() -> Iterator[type[_Recorder]]:
    register_metric(_Recorder)
    yield _Recorder
    _METRICS.pop(_Recorder.name, None)


def image(value: int, size: int = 8) -> np.ndarray:
    return np.full((size, size, 3), value, dtype=np.uint8)


def run_batcher(values: list[int], max_batch: int, max_wait_ms: float) -> list[object]:
    """Submit one image per value at once to a fresh batcher; results (float or exception)."""
    async def main() -> list[object]:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(_Recorder(), max_batch=max_batch, max_wait_ms=max_wait_ms,
                                   executor=pool)
            futures = [batcher.submit(image(v)) for v in values]
            out = await asyncio.gather(*futures, return_exceptions=True)
            await batcher.close()
            return out
    return asyncio.run(main())


def test_batches_are_bounded_and_results_equal_single_calls(recorder) -> None:
    recorder.batch_sizes.clear()
    values = list(range(1, 40))
    results = run_batcher(values, max_batch=16, max_wait_ms=50)
    assert recorder.batch_sizes == [16, 16, 7]
    single = [float(_Recorder().score([image(v)])[0]) for v in values]
    assert results == single


def test_unbatched_scores_one_at_a_time(recorder) -> None:
    recorder.batch_sizes.clear()
    run_batcher([1, 2, 3, 4], max_batch=1, max_wait_ms=50)
    assert recorder.batch_sizes == [1, 1, 1, 1]


def test_a_failing_batch_is_rescored_one_by_one(recorder) -> None:
    recorder.batch_sizes.clear()
    results = run_batcher([10, 255, 0, 20], max_batch=8, max_wait_ms=20)
    assert recorder.batch_sizes == [4, 1, 1, 1, 1]  # the batch, then each image alone
    assert results[0] == 10.0 and results[3] == 20.0
    assert isinstance(results[1], MetricError) and "white image" in str(results[1])
    # a non-finite score fails its image, by the rule the runner follows too
    assert isinstance(results[2], MetricError) and "returned nan" in str(results[2])


def test_wait_is_bounded_for_a_lone_caller(recorder) -> None:
    started = time.monotonic()
    run_batcher([5], max_batch=16, max_wait_ms=100)
    elapsed = time.monotonic() - started
    assert 0.1 <= elapsed < 1.0


def png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image(value, 16)).save(buf, "PNG")
    return buf.getvalue()


def test_concurrent_http_callers_share_batches(recorder) -> None:
    config = ServeConfig(max_batch=8, max_wait_ms=30, metrics=("test_serve_recorder:gain=2",))
    values = list(range(1, 33))

    async def call(client: httpx.AsyncClient, value: int) -> dict:
        files = [("files", (f"{value}.png", png(value)))]
        response = await client.post("/v1/score", files=files,
                                     data={"metrics": "test_serve_recorder"})  # the id
        assert response.status_code == 200, response.text
        return response.json()["results"][0]

    async def clients(url: str) -> list[dict]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            return await asyncio.gather(*(call(client, v) for v in values))

    recorder.created.clear()
    with running_server(create_app(config)) as url:
        recorder.batch_sizes.clear()
        results = asyncio.run(clients(url))
        asyncio.run(clients(url))  # a second wave reuses the warm metric
        stats = httpx.get(f"{url}/v1/stats").json()["batching"]["test_serve_recorder"]
    assert len(recorder.created) == 1  # created once, at start-up, for both waves
    assert sum(recorder.batch_sizes) == 2 * len(values)
    assert max(recorder.batch_sizes) > 1 and max(recorder.batch_sizes) <= 8
    assert stats["items"] == 2 * len(values) and stats["batches"] == len(recorder.batch_sizes)
    metric = metric_from_spec("test_serve_recorder:gain=2")
    for value, result in zip(values, results, strict=True):
        assert result["scores"]["test_serve_recorder"] == metric.score([image(value)])[0]


def test_failures_in_a_shared_batch_stay_with_their_item() -> None:
    config = ServeConfig(max_batch=8, max_wait_ms=50, metrics=("test_serve_recorder",))
    files = [("files", (f"{v}.png", png(v))) for v in (7, 255, 0, 9)]
    with running_server(create_app(config)) as url:
        body = httpx.post(f"{url}/v1/score", files=files,
                          data={"metrics": "test_serve_recorder"}, timeout=30).json()
    results = body["results"]
    assert results[0]["scores"] == {"test_serve_recorder": 7.0}
    assert results[3]["scores"] == {"test_serve_recorder": 9.0}
    assert "white image" in results[1]["errors"]["test_serve_recorder"]
    assert "returned nan" in results[2]["errors"]["test_serve_recorder"]
