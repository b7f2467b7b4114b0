"""Scoring a parsed request: headers checked, memory reserved, images decoded and batched.

Per request: every header is read first (no pixel decoded) and the sum of width x height is
checked against ``max_request_pixels``. Then each image on its own: reserve its decoding's bytes
from the server-wide DecodeBudget (waiting if needed), decode in a thread, keep the array's bytes
reserved until every metric has scored it. Images of one request do not wait for each other, so
two requests can never hold parts of the budget that the other needs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import Executor
from pathlib import PurePosixPath

import numpy as np

from aigiqa.errors import AssetError, MetricError, describe_error
from aigiqa.metrics.base import Metric
from aigiqa.serve.batching import MicroBatcher
from aigiqa.serve.budget import DecodeBudget, Lease
from aigiqa.serve.config import ServeConfig
from aigiqa.serve.inputs import Header, decode, read_header
from aigiqa.serve.parsing import Item, http_error
from aigiqa.serve.schemas import ItemResult, ScoreResponse
from aigiqa.serve.served import resolve_ids

log = logging.getLogger("aigiqa.serve")


class Scorer:
    """Turns a parsed request into per-image, per-metric results through the batchers."""

    def __init__(self, config: ServeConfig, batchers: Mapping[str, MicroBatcher],
                 budget: DecodeBudget, decoder: Executor) -> None:
        self.config = config
        self.batchers = batchers
        self.budget = budget
        self._decoder = decoder

    def check_counts(self, n_images: int, ids: list[str]) -> list[str]:
        """The served ids asked for; 413/422 if there are no or too many images or metrics."""
        if n_images == 0:
            raise http_error(422, "no image given: upload 'files' or list 'images'")
        if n_images > self.config.max_images:
            raise http_error(413, f"{n_images} images in one request; the limit is "
                             f"{self.config.max_images} (--max-images)")
        if not ids:
            raise http_error(422, "no metric given: name at least one in 'metrics' "
                             f"({', '.join(self.batchers)})")
        if len(ids) > self.config.max_metrics:
            raise http_error(422, f"{len(ids)} metrics in one request; the limit is "
                             f"{self.config.max_metrics} (--max-metrics)")
        return resolve_ids(ids, {k: b.metric for k, b in self.batchers.items()})

    async def run(self, items: list[Item], ids: list[str]) -> ScoreResponse:
        """Scores of every item for every id, per-item errors kept in the result."""
        headers = await asyncio.to_thread(self._headers, items)
        total = sum(h.pixels for h in headers if isinstance(h, Header))
        if total > self.config.max_request_pixels:
            raise http_error(413, f"the images of this request have {total} pixels in all; the "
                             f"limit is {self.config.max_request_pixels} pixels per request "
                             "(--max-request-pixels); send fewer or smaller images per request")
        results = [ItemResult(index=i, name=item.name, scores={}, errors={})
                   for i, item in enumerate(items)]
        await asyncio.gather(*(self._score_item(item, header, ids, result)
                               for item, header, result in zip(items, headers, results,
                                                               strict=True)))
        return ScoreResponse(metrics=ids, results=results)

    def _headers(self, items: list[Item]) -> list[Header | str]:
        out: list[Header | str] = []
        for item in items:
            try:
                out.append(read_header(item.source, item.source.name, self.config.max_pixels))
            except Exception as exc:
                out.append(describe_error(exc))
        return out

    async def _score_item(self, item: Item, header: Header | str, ids: list[str],
                          result: ItemResult) -> None:
        if isinstance(header, str):
            result.error = header
            return
        lease = await self.budget.acquire(header.decode_bytes)
        try:
            image = await self._decode(item, header, lease)
            if isinstance(image, str):
                result.error = image
                return
            futures: dict[str, asyncio.Future[float]] = {}
            for metric_id in ids:
                batcher = self.batchers[metric_id]
                try:
                    text = model_text(batcher.metric, item)
                except MetricError as exc:
                    result.errors[metric_id] = str(exc)
                    continue
                futures[metric_id] = batcher.submit(image, text, lease.hold().release)
            del image  # the batchers hold it now
            outcomes = await asyncio.gather(*futures.values(), return_exceptions=True)
        finally:
            lease.release()
        for metric_id, outcome in zip(futures, outcomes, strict=True):
            if isinstance(outcome, BaseException):  # the rule of metrics.scoring.score_isolated
                result.errors[metric_id] = _metric_failure(metric_id, outcome)
            else:
                result.scores[metric_id] = outcome

    async def _decode(self, item: Item, header: Header, lease: Lease) -> np.ndarray | str:
        """The item's pixels (the lease shrunk to them), or why they cannot be read.

        The decode thread holds the lease until it ends, even if this request is cancelled.
        """
        loop = asyncio.get_running_loop()
        lease.hold()
        work = self._decoder.submit(decode, item.source, item.source.name, header)
        work.add_done_callback(lambda _: loop.call_soon_threadsafe(lease.release))
        try:
            image = await asyncio.wrap_future(work)
        except Exception as exc:
            return describe_error(exc)
        lease.shrink(image.nbytes)
        return image


def model_text(metric: Metric, item: Item) -> str | None:
    """What ``metric`` reads for ``item``: its prompt, or for a metric that reads names (served
    with ``--allow-names``) ``model_text(prompt, file name, generator)`` with the generator the
    request gives (MetricError without one)."""
    if not metric.reads_names:
        return item.prompt
    if item.generator is None:
        raise MetricError(f"metric {metric.name!r} reads the generator of each image: give it "
                          "('generator' of each image, or the 'generators' form field)")
    return metric.model_text(item.prompt or "", PurePosixPath(item.name).name, item.generator)


def _metric_failure(metric_id: str, exc: BaseException) -> str:
    """What a client is told about a metric that failed on an image: no server file names."""
    if isinstance(exc, AssetError | OSError):
        log.warning("metric %r failed on an image: %s", metric_id, describe_error(exc))
        return f"metric {metric_id!r} failed on the server (see its log)"
    return describe_error(exc)
