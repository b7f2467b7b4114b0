"""The one scoring path (aigiqa.metrics.scoring.score_isolated) and its users agree."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from aigiqa.errors import AssetError, MetricError
from aigiqa.metrics.base import Metric
from aigiqa.metrics.scoring import score_isolated


class _Rules(Metric):
    """Mean pixel; raises on a white image, NaN on a black one; counts its score calls."""

    name = "test-scoring-rules"
    needs_prompt = True

    def __init__(self, **options):
        super().__init__(**options)
        self.calls: list[int] = []

    def score_batch(self, images, prompts):
        self.calls.append(len(images))
        means = np.array([im.mean() for im in images])
        if (means == 255).any():
            raise MetricError("white image")
        return np.where(means == 0, np.nan, means + np.array([len(p) for p in prompts]))


def _image(value: int) -> np.ndarray:
    return np.full((4, 4, 3), value, np.uint8)


def test_each_rule():
    metric = _Rules()
    images = [_image(v) for v in (10, 255, 0, 20, 30)]
    outcomes = score_isolated(metric, images, ["a", "bb", "c", "", None])
    assert outcomes[0] == 11.0
    assert isinstance(outcomes[1], MetricError) and "white image" in str(outcomes[1])
    assert isinstance(outcomes[2], MetricError) and "returned nan" in str(outcomes[2])
    assert isinstance(outcomes[3], MetricError) and "the prompt is empty" in str(outcomes[3])
    assert isinstance(outcomes[4], MetricError) and "no prompt given" in str(outcomes[4])
    assert metric.calls == [3, 1, 1, 1]  # images without a prompt are never scored


class _NoFile(_Rules):
    name = "test-scoring-nofile"

    def prepare(self):
        raise AssetError("weights.pt: not found")


class _LateFile(_Rules):
    name = "test-scoring-latefile"

    def score_batch(self, images, prompts):
        raise AssetError("weights.pt: corrupt")


class _NoDevice(_Rules):
    name = "test-scoring-nodevice"

    def prepare(self):
        raise RuntimeError("CUDA error: no device")


@pytest.mark.parametrize(("cls", "error", "words"), [
    (_NoFile, AssetError, "weights.pt: not found"),
    (_LateFile, AssetError, "weights.pt: corrupt"),
    (_NoDevice, MetricError, "cannot load its model (RuntimeError: CUDA error: no device)"),
])
def test_what_ends_a_run_is_raised(cls, error, words):
    with pytest.raises(error) as info:
        score_isolated(cls(), [_image(10), _image(20)], ["a", "b"])
    assert words in str(info.value)


def test_runner_and_service_give_the_same_outcomes(tmp_path):
    from PIL import Image

    from aigiqa.benchmark.runner import score_images
    from aigiqa.serve.batching import MicroBatcher

    values = (10, 255, 0, 20)
    prompts = ["a", "bb", "c", ""]
    paths = []
    for v in values:
        paths.append(tmp_path / f"{v}.png")
        Image.fromarray(_image(v)).save(paths[-1])
    # the runner refuses a run with an image without a prompt before scoring anything
    with pytest.raises(MetricError, match="needs a prompt for every image"):
        score_images(paths, [_Rules()], prompts=prompts, progress=False)
    table = score_images(paths[:3], [_Rules()], prompts=prompts[:3], progress=False, batch_size=8)
    runner = [table.scores.iloc[i, 0] for i in range(3)]
    errors = {f["name"]: f["error"] for f in table.failures}

    async def serve() -> list[object]:
        with ThreadPoolExecutor(1) as pool:
            batcher = MicroBatcher(_Rules(), max_batch=8, max_wait_ms=20, executor=pool)
            futures = [batcher.submit(_image(v), p) for v, p in zip(values, prompts, strict=True)]
            out = await asyncio.gather(*futures, return_exceptions=True)
            await batcher.close()
            return out

    service = asyncio.run(serve())
    assert runner[0] == service[0] == 11.0
    assert np.isnan(runner[1]) and str(service[1]) == errors["255.png"]
    assert np.isnan(runner[2]) and str(service[2]) == errors["0.png"]
    assert isinstance(service[3], MetricError) and "the prompt is empty" in str(service[3])
