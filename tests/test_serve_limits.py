"""Memory bounds of the scoring service: pixels per image and per request, the server-wide
decoded-bytes budget, body limits by content type, the formats it decodes."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator, Sequence
from typing import ClassVar

import httpx
import numpy as np
import pytest
from PIL import Image

from aigiqa.metrics.base import Metric
from aigiqa.metrics.registry import _METRICS, register_metric
from aigiqa.serve import ServeConfig, create_app
from aigiqa.serve.budget import DecodeBudget
from aigiqa.serve.config import MAX_PIXELS, ServeConfigError
from aigiqa.serve.inputs import DECODE_BYTES_PER_PIXEL, MOST_BYTES_PER_PIXEL
from aigiqa.testing.servers import running_server
from synthetic import header_only_png


def png(side: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()



class _Gate(Metric):
    """Test metric whose score waits until the test opens the gate: mean pixel value."""

    name: ClassVar[str] = "test_serve_gate"
    gate: ClassVar[threading.Event] = threading.Event()

    def score(self, images: Sequence[np.ndarray], prompts: Sequence[str] | None = None):
        assert self.gate.wait(60), "gate never opened"
        return np.array([im.mean() for im in images])


@pytest.fixture(scope="module", autouse=True)
def gate_metric() -> Iterator[None]:
    register_metric(_Gate)
    yield
    _METRICS.pop(_Gate.name, None)


def upload(url: str, images: list[bytes], metrics: str = "entropy",
           **kwargs) -> httpx.Response:
    files = [("files", (f"{i}.png", data)) for i, data in enumerate(images)]
    return httpx.post(f"{url}/v1/score", files=files, data={"metrics": metrics}, timeout=60,
                      **kwargs)


def stats(url: str) -> dict:
    return httpx.get(f"{url}/v1/stats", timeout=10).json()


def wait_for(condition, what: str, limit_s: float = 30.0) -> None:
    """Poll until ``condition()``; fail (not hang) after limit_s. Not a timing assertion."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_default_limits_refuse_the_issues_9400_square_image() -> None:
    assert MAX_PIXELS < 9400 * 9400
    with running_server(create_app(ServeConfig(metrics=("entropy",)))) as url:
        body = upload(url, [header_only_png(9400, 9400), png(32)]).json()
        decoded = stats(url)["decoded"]
    error = body["results"][0]["error"]
    assert f"exceeds the limit of {MAX_PIXELS} pixels per image (--max-pixels" in error
    assert "entropy" in body["results"][1]["scores"]  # the other image is scored
    assert decoded["peak_bytes"] == 32 * 32 * DECODE_BYTES_PER_PIXEL["RGB"]  # the big one: none


def test_request_pixel_budget_is_checked_before_decoding() -> None:
    config = ServeConfig(metrics=("entropy",), max_pixels=10_000, max_request_pixels=25_000,
                         max_decoded_bytes=1 << 20)
    with running_server(create_app(config)) as url:
        # headers only: had anything been decoded, these would fail as truncated images
        refused = upload(url, [header_only_png(100, 100)] * 3)
        assert refused.status_code == 413, refused.text
        detail = refused.json()["detail"]
        assert "30000 pixels" in detail and "limit is 25000 pixels per request" in detail
        assert "--max-request-pixels" in detail
        assert stats(url)["decoded"]["peak_bytes"] == 0  # nothing reserved, nothing decoded
        # images over the per-image limit are refused alone and do not count
        body = upload(url, [png(100), png(100, 1), header_only_png(200, 200)])
        assert body.status_code == 200, body.text
        results = body.json()["results"]
        assert all("entropy" in r["scores"] for r in results[:2])
        assert "exceeds the limit of 10000 pixels per image" in results[2]["error"]


def test_decoded_bytes_budget_queues_requests() -> None:
    """8 concurrent one-image requests, a budget for 4 held images: 4 wait, none over it."""
    side = 64
    reserve = side * side * DECODE_BYTES_PER_PIXEL["RGB"]
    held = side * side * 3
    capacity = MOST_BYTES_PER_PIXEL * side * side  # the least allowed for max_pixels = 64 x 64
    fits = 1 + (capacity - reserve) // held  # images decoded before the next reservation fails
    config = ServeConfig(metrics=("test_serve_gate",), max_pixels=side * side,
                         max_request_pixels=side * side, max_decoded_bytes=capacity,
                         max_batch=16, max_wait_ms=0)
    _Gate.gate.clear()
    responses: list[httpx.Response] = []
    with running_server(create_app(config)) as url:
        callers = [threading.Thread(target=lambda i=i: responses.append(
            upload(url, [png(side, i)], "test_serve_gate"))) for i in range(8)]
        try:
            for caller in callers:
                caller.start()
            # settled: 8 - fits wait and fits images are held (one may still be mid-decode,
            # holding its decoding reservation, when the waiting count first reads 8 - fits)
            wait_for(lambda: (lambda d: (d["waiting"], d["in_use_bytes"]))(
                stats(url)["decoded"]) == (8 - fits, fits * held), "queued images")
            assert fits * held <= capacity
            assert stats(url)["decoded"]["peak_bytes"] <= capacity
        finally:
            _Gate.gate.set()
            for caller in callers:
                caller.join(60)
        final = stats(url)["decoded"]
    assert sorted(r.status_code for r in responses) == [200] * 8
    assert all("test_serve_gate" in r.json()["results"][0]["scores"] for r in responses)
    assert final["in_use_bytes"] == 0 and final["waiting"] == 0
    assert final["peak_bytes"] <= capacity and final["capacity_bytes"] == capacity


def test_timed_out_request_keeps_its_bytes_until_the_batch_is_done() -> None:
    config = ServeConfig(metrics=("test_serve_gate",), timeout_s=0.5)
    _Gate.gate.clear()
    with running_server(create_app(config)) as url:
        try:
            response = upload(url, [png(32)], "test_serve_gate")
            assert response.status_code == 504
            # the metric still has the image: its bytes are still counted
            assert stats(url)["decoded"]["in_use_bytes"] == 32 * 32 * 3
        finally:
            _Gate.gate.set()
        wait_for(lambda: stats(url)["decoded"]["in_use_bytes"] == 0, "bytes given back")


def test_budget_is_fifo_and_gives_back_cancelled_reservations() -> None:
    async def main() -> None:
        budget = DecodeBudget(100)
        first = await budget.acquire(60)
        order: list[str] = []

        async def take(name: str, nbytes: int) -> None:
            lease = await budget.acquire(nbytes)
            order.append(name)
            lease.release()

        big = asyncio.create_task(take("big", 80))
        small = asyncio.create_task(take("small", 10))  # would fit, but waits behind 'big'
        doomed = asyncio.create_task(take("doomed", 90))
        await asyncio.sleep(0)
        assert budget.waiting == 3 and order == []
        doomed.cancel()
        first.shrink(30)  # 30 bytes back: still not enough for "big"
        await asyncio.sleep(0)
        assert order == [] and budget.in_use == 30
        first.hold()
        first.release()  # one holder left: nothing returned yet
        assert budget.in_use == 30
        first.release()
        await asyncio.gather(big, small)
        with pytest.raises(asyncio.CancelledError):
            await doomed
        assert order == ["big", "small"] and budget.in_use == 0 and budget.waiting == 0
        assert budget.peak == 90  # 'big' (80) plus 'small' (10)
        with pytest.raises(ValueError, match="cannot reserve 101 bytes"):
            await budget.acquire(101)

    asyncio.run(main())


def test_limits_are_checked_against_each_other() -> None:
    with pytest.raises(ServeConfigError, match="max_request_pixels=10 must be >= max_pixels"):
        ServeConfig(metrics=("entropy",), max_pixels=100, max_request_pixels=10).validate()
    with pytest.raises(ServeConfigError, match="max_decoded_bytes=1000 must be >="):
        ServeConfig(metrics=("entropy",), max_pixels=100, max_decoded_bytes=1000).validate()


def test_json_and_text_fields_have_their_own_smaller_limits() -> None:
    config = ServeConfig(metrics=("entropy",), max_json_bytes=10_000)
    body = b'{"images": [' + b",".join([b'{"path": "a.png"}'] * 1000) + b'], "metrics": ["x"]}'
    with running_server(create_app(config)) as url:
        for headers in ({"content-type": "application/json"},
                        # a second content type must not buy the multipart limit
                        [("content-type", "application/json"),
                         ("content-type", "multipart/form-data; boundary=x")]):
            response = httpx.post(f"{url}/v1/score", content=body, headers=headers)
            assert response.status_code == 413, response.text
            assert "10000 bytes (--max-json-bytes)" in response.json()["detail"]
        files = [("files", ("a.png", png(32)))]  # a multipart text field is bounded too
        response = httpx.post(f"{url}/v1/score", files=files,
                              data={"metrics": "entropy", "prompts": "x" * 70_000})
        assert response.status_code == 413, response.text
        assert "longer than 65536 bytes" in response.json()["detail"]


def test_only_common_formats_are_decoded() -> None:
    eps = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(eps, "EPS")  # Pillow would run Ghostscript
    with running_server(create_app(ServeConfig(metrics=("entropy",)))) as url:
        error = upload(url, [eps.getvalue()]).json()["results"][0]["error"]
    assert "not an image in a format this server reads (PNG, JPEG" in error
