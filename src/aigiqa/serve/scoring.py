"""Scoring a parsed request: metrics warmed, images decoded, futures from the batchers."""

from __future__ import annotations

import asyncio
import math

import numpy as np

from aigiqa.errors import AigiqaError, AssetError
from aigiqa.serve.batching import MetricPool
from aigiqa.serve.config import ServeConfig
from aigiqa.serve.parsing import Item, http_error
from aigiqa.serve.schemas import ItemResult, ScoreResponse


class Scorer:
    """Turns a parsed request into per-image, per-metric results through the metric pool."""

    def __init__(self, config: ServeConfig, pool: MetricPool) -> None:
        self.config = config
        self.pool = pool

    def check_counts(self, n_images: int, specs: list[str]) -> None:
        """Raise 413/422 if there are no or too many images, or no or too many metrics."""
        if n_images == 0:
            raise http_error(422, "no image given: upload 'files' or list 'images'")
        if n_images > self.config.max_images:
            raise http_error(413, f"{n_images} images in one request; the limit is "
                             f"{self.config.max_images} (--max-images)")
        if not specs:
            raise http_error(422, "no metric given: name at least one in 'metrics'")
        if len(specs) > self.config.max_metrics:
            raise http_error(422, f"{len(specs)} metrics in one request; the limit is "
                             f"{self.config.max_metrics} (--max-metrics)")

    async def warm(self, specs: list[str]) -> None:
        """Create (or find warm) every metric; a bad spec fails the whole request."""
        for spec in specs:
            try:
                await self.pool.get(spec)
            except AssetError as exc:
                message = f"metric {spec!r} is unavailable on this server: {exc}"
                raise http_error(503, message) from exc
            except AigiqaError as exc:
                raise http_error(422, f"metric {spec!r}: {exc}") from exc
            except Exception as exc:
                raise http_error(422, f"metric {spec!r} cannot be created "
                                 f"({type(exc).__name__}: {exc})") from exc

    async def run(self, items: list[Item], specs: list[str]) -> ScoreResponse:
        """Scores of every item for every spec, per-item errors kept in the result."""
        await self.warm(specs)
        loaded = await asyncio.gather(*(asyncio.to_thread(_load, item) for item in items))
        futures: dict[tuple[int, str], asyncio.Future[float]] = {}
        results = [ItemResult(index=i, name=item.name, scores={}, errors={})
                   for i, item in enumerate(items)]
        for spec in specs:
            batcher = await self.pool.get(spec)  # warm: returns without yielding, then submit
            for i, (item, image) in enumerate(zip(items, loaded, strict=True)):
                if isinstance(image, str):
                    results[i].error = image
                elif batcher.metric.needs_prompt and not item.prompt:
                    results[i].errors[spec] = f"metric {spec!r} needs a prompt; none given"
                else:
                    futures[i, spec] = batcher.submit(image, item.prompt)
        outcomes = await asyncio.gather(*futures.values(), return_exceptions=True)
        for (i, spec), outcome in zip(futures, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                results[i].errors[spec] = _describe(outcome)
            elif not math.isfinite(outcome):
                results[i].errors[spec] = f"metric {spec!r} returned {outcome} for this image"
            else:
                results[i].scores[spec] = outcome
        return ScoreResponse(metrics=specs, results=results)


def _load(item: Item) -> np.ndarray | str:
    """Pixels of an item, or the message saying why they cannot be read."""
    try:
        return item.load()
    except Exception as exc:
        return _describe(exc)


def _describe(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, AigiqaError) else f"{type(exc).__name__}: {exc}"
