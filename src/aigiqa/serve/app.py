"""The FastAPI app: POST /v1/score, GET /v1/metrics, GET /v1/stats, GET /healthz."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.openapi.utils import get_openapi
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from aigiqa.serve.batching import MicroBatcher
from aigiqa.serve.budget import DecodeBudget
from aigiqa.serve.config import ServeConfig
from aigiqa.serve.limits import BodySizeLimit
from aigiqa.serve.parsing import http_error, parse_json, parse_multipart
from aigiqa.serve.schemas import (
    ErrorResponse,
    Health,
    MetricInfo,
    ScoreRequest,
    ScoreResponse,
    Stats,
)
from aigiqa.serve.scoring import Scorer
from aigiqa.serve.served import load_served, metric_info

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "Malformed multipart body",
        401: "Missing or wrong API key",
        413: "Request body, image count or pixel count over the limit",
        415: "Body is neither JSON nor multipart/form-data",
        422: "Invalid body, or a metric that is not served (or given options)",
        504: "The request took longer than the per-request timeout",
    }.items()
}

_MULTIPART_SCHEMA = {
    "type": "object",
    "required": ["files", "metrics"],
    "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                  "description": "Image files"},
        "prompts": {"type": "array", "items": {"type": "string"},
                    "description": "One prompt per file, in order (or none at all)"},
        "metrics": {"type": "array", "items": {"type": "string"},
                    "description": "Served metric ids (repeated fields or comma-separated)"},
    },
}

_BearerCredentials = Annotated[
    HTTPAuthorizationCredentials | None, Security(HTTPBearer(auto_error=False))
]
_HeaderKey = Annotated[str | None, Security(APIKeyHeader(name="X-API-Key", auto_error=False))]


def _auth_dependency(api_key: str) -> Callable[..., Any]:
    """A dependency that accepts ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    expected = api_key.encode()

    async def check(credentials: _BearerCredentials, key: _HeaderKey) -> None:
        for given in (credentials.credentials if credentials else None, key):
            if given is not None and hmac.compare_digest(given.encode(), expected):
                return
        raise HTTPException(
            status_code=401,
            detail="missing or invalid API key: send 'Authorization: Bearer <key>' "
            "or 'X-API-Key: <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )

    return check


def _openapi_with_request_models(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI's schema plus the JSON request models, which the route reads by hand."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            models = schema.setdefault("components", {}).setdefault("schemas", {})
            request = ScoreRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            models.update(request.pop("$defs", {}))
            models["ScoreRequest"] = request
            app.openapi_schema = schema
        return app.openapi_schema

    return build


def create_app(config: ServeConfig) -> FastAPI:
    """Build the scoring service for ``config.metrics``, all created and prepared now.

    Raises ServeConfigError (one line naming the metric and the file) if one cannot be served.
    """
    config = config.validate()
    served = load_served(config.metrics, config.allow_names)
    infos = [metric_info(served_id, metric) for served_id, metric in served.items()]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scoring = ThreadPoolExecutor(config.score_threads, thread_name_prefix="aigiqa-score")
        decoding = ThreadPoolExecutor(config.score_threads, thread_name_prefix="aigiqa-decode")
        batchers = {
            served_id: MicroBatcher(metric, max_batch=config.max_batch, name=served_id,
                                    max_wait_ms=config.max_wait_ms, executor=scoring)
            for served_id, metric in served.items()
        }
        app.state.scorer = Scorer(config, batchers, DecodeBudget(config.max_decoded_bytes),
                                  decoding)
        try:
            yield
        finally:
            await asyncio.gather(*(b.close() for b in batchers.values()))
            decoding.shutdown(wait=True)
            scoring.shutdown(wait=True)

    app = FastAPI(title="aigiqa scoring service", version="1",
                  description="Quality scores of (AI-generated) images by the metrics its "
                  "operator configured.",
                  lifespan=lifespan)
    app.add_middleware(BodySizeLimit, max_bytes=config.max_request_bytes,
                       max_json_bytes=config.max_json_bytes)
    guard = [Depends(_auth_dependency(config.api_key))] if config.api_key else []

    @app.get("/healthz", response_model=Health, tags=["service"])
    async def healthz() -> Health:
        """Liveness: answers while the server runs (never needs the API key)."""
        return Health(status="ok")

    @app.get("/v1/metrics", response_model=list[MetricInfo], dependencies=guard,
             responses={401: _ERRORS[401]}, tags=["metrics"])
    async def metrics() -> list[MetricInfo]:
        """The served metrics: id, metadata, options (file-valued ones named, not shown)."""
        return infos

    @app.get("/v1/stats", response_model=Stats, dependencies=guard,
             responses={401: _ERRORS[401]}, tags=["service"])
    async def stats(request: Request) -> Stats:
        """Micro-batching counters per served metric id; the decoded-bytes budget."""
        scorer: Scorer = request.app.state.scorer
        budget = scorer.budget
        return Stats.model_validate({
            "batching": {served_id: {"batches": b.batches, "items": b.items,
                                     "mean_batch": b.items / b.batches if b.batches else None}
                         for served_id, b in scorer.batchers.items()},
            "decoded": {"capacity_bytes": budget.capacity, "in_use_bytes": budget.in_use,
                        "peak_bytes": budget.peak, "waiting": budget.waiting},
        })

    @app.post(
        "/v1/score", response_model=ScoreResponse, dependencies=guard, tags=["metrics"],
        responses={code: _ERRORS[code] for code in (400, 401, 413, 415, 422, 504)},
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ScoreRequest"}},
            "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
        }}},
    )
    async def score(request: Request) -> ScoreResponse:
        """Score images (multipart upload, or JSON paths inside the allowed folder) with served
        metrics, named by id.

        Every image gets its scores per metric; an unreadable image or a failing metric is
        reported on that image only.
        """
        scorer: Scorer = request.app.state.scorer
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            async with asyncio.timeout(config.timeout_s), AsyncExitStack() as stack:
                if kind == "multipart/form-data":
                    items, ids = await parse_multipart(request, config, stack)
                elif kind == "application/json":
                    items, ids = await parse_json(request, config)
                else:
                    raise http_error(415, f"content type {kind or 'none'!r} is not accepted; send "
                                     "multipart/form-data (uploads) or application/json (paths)")
                ids = scorer.check_counts(len(items), ids)
                return await scorer.run(items, ids)
        except TimeoutError:
            message = f"request took longer than {config.timeout_s:g} s (--timeout)"
            raise http_error(504, message) from None

    app.openapi = _openapi_with_request_models(app)  # type: ignore[method-assign]
    return app
