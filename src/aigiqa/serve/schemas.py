"""Request and response bodies of the scoring service (pydantic; they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: Longest ``generator`` of an image, and what it may hold (one line, printable).
MAX_GENERATOR_CHARS = 200
GENERATOR_PATTERN = r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$"


class ImageRef(BaseModel):
    """One image of a JSON request: a file inside the server's allowed folder."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(
        min_length=1, max_length=4096,
        description="Path relative to the allowed folder, absolute inside it, or a file:// URL",
    )
    prompt: str | None = Field(default=None, max_length=10_000,
                               description="Text prompt (needed by prompt-aware metrics)")
    generator: str | None = Field(
        default=None, min_length=1, max_length=MAX_GENERATOR_CHARS, pattern=GENERATOR_PATTERN,
        description="Generator of the image, e.g. \"SD1.5\" (needed by metrics that read "
        "names, served only with --allow-names)")


class ScoreRequest(BaseModel):
    """JSON body of POST /v1/score: images by path and the metrics to run on each."""

    model_config = ConfigDict(extra="forbid")
    images: list[ImageRef] = Field(min_length=1)
    metrics: list[str] = Field(
        min_length=1, description="Ids of served metrics (GET /v1/metrics), e.g. \"niqe\"; "
        "their options are fixed by the operator",
    )


class ItemResult(BaseModel):
    """Scores of one image; a failed image has ``error``, a failed metric an ``errors`` entry."""

    index: int = Field(description="Position of the image in the request")
    name: str = Field(description="Uploaded file name or the path given")
    scores: dict[str, float] = Field(description="Score per metric id")
    errors: dict[str, str] = Field(description="Error per metric id that failed on this image")
    error: str | None = Field(default=None, description="Why the image could not be read")


class ScoreResponse(BaseModel):
    """Result of POST /v1/score: one entry per image, in request order."""

    metrics: list[str] = Field(description="Metric ids, as requested")
    results: list[ItemResult]


class MetricInfo(BaseModel):
    """One served metric: its id, registry metadata and the options the operator fixed."""

    id: str = Field(description="What clients name in 'metrics'")
    name: str = Field(description="Registered metric name")
    kind: str
    lower_better: bool
    needs_prompt: bool
    score_range: list[float | None] | None = Field(
        description="[low, high]; null for an unbounded end; null if unknown")
    description: str
    citation: str
    version: str
    options: dict[str, Any] = Field(description="Option values (fixed by the operator)")
    file_options: list[str] = Field(
        description="Options naming files on the server (set by the operator; not shown)")


class Health(BaseModel):
    """Liveness answer of GET /healthz."""

    status: str


class BatchStats(BaseModel):
    """Micro-batching counters of one served metric."""

    batches: int
    items: int
    mean_batch: float | None


class DecodeStats(BaseModel):
    """The server-wide budget of bytes of images being decoded or held until scored."""

    capacity_bytes: int = Field(description="The budget (--max-decoded-bytes)")
    in_use_bytes: int = Field(description="Reserved now")
    peak_bytes: int = Field(description="Most reserved at once since start-up")
    waiting: int = Field(description="Images waiting for bytes now")


class Stats(BaseModel):
    """GET /v1/stats: micro-batching counters per served metric id, and the decode budget."""

    batching: dict[str, BatchStats]
    decoded: DecodeStats


class ErrorDetail(BaseModel):
    """One problem of an invalid JSON body."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Any error answer: a message, or the list of problems of an invalid body."""

    detail: str | list[ErrorDetail]
