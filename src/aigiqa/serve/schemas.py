"""Request and response bodies of the scoring service (pydantic; they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ImageRef(BaseModel):
    """One image of a JSON request: a file inside the server's allowed folder."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(
        min_length=1, max_length=4096,
        description="Path relative to the allowed folder, absolute inside it, or a file:// URL",
    )
    prompt: str | None = Field(default=None, max_length=10_000,
                               description="Text prompt (needed by prompt-aware metrics)")


class ScoreRequest(BaseModel):
    """JSON body of POST /v1/score: images by path and the metrics to run on each."""

    model_config = ConfigDict(extra="forbid")
    images: list[ImageRef] = Field(min_length=1)
    metrics: list[str] = Field(
        min_length=1, description='Metric specs, name[:opt=value…], e.g. "entropy:bins=64"'
    )


class ItemResult(BaseModel):
    """Scores of one image; a failed image has ``error``, a failed metric an ``errors`` entry."""

    index: int = Field(description="Position of the image in the request")
    name: str = Field(description="Uploaded file name or the path given")
    scores: dict[str, float] = Field(description="Score per metric spec (as requested)")
    errors: dict[str, str] = Field(description="Error per metric spec that failed on this image")
    error: str | None = Field(default=None, description="Why the image could not be read")


class ScoreResponse(BaseModel):
    """Result of POST /v1/score: one entry per image, in request order."""

    metrics: list[str]
    results: list[ItemResult]


class MetricInfo(BaseModel):
    """Registry metadata of one metric."""

    name: str
    kind: str
    lower_better: bool
    needs_prompt: bool
    score_range: list[float | None] | None = Field(
        description="[low, high]; null for an unbounded end; null if unknown")
    description: str
    citation: str
    version: str
    options: dict[str, Any] = Field(description="Option names and their defaults")


class Health(BaseModel):
    """Liveness answer of GET /healthz."""

    status: str


class BatchStats(BaseModel):
    """Micro-batching counters of one warm metric."""

    batches: int
    items: int
    mean_batch: float | None


class Stats(BaseModel):
    """GET /v1/stats: warm metrics (least recently used first) and their batching counters."""

    warm: list[str]
    batching: dict[str, BatchStats]


class ErrorDetail(BaseModel):
    """One problem of an invalid JSON body."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Any error answer: a message, or the list of problems of an invalid body."""

    detail: str | list[ErrorDetail]
