"""The FastAPI app: POST /v1/score, GET /v1/metrics, GET /v1/stats, GET /healthz."""

from __future__ import annotations

import asyncio
import hmac
import math
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.openapi.utils import get_openapi
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from aigiqa.metrics.registry import list_metrics, metric_class
from aigiqa.serve.batching import MetricPool
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

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "Malformed multipart body",
        401: "Missing or wrong API key",
        413: "Request body or image count over the limit",
        415: "Body is neither JSON nor multipart/form-data",
        422: "Invalid body, metric spec or option",
        503: "A metric's asset (parameter/weight file) is missing on the server",
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
                    "description": "Metric specs (repeated fields or comma-separated)"},
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


def _metric_info(name: str) -> MetricInfo:
    cls = metric_class(name)
    return MetricInfo(
        name=cls.name, kind=cls.kind, lower_better=cls.lower_better,
        needs_prompt=cls.needs_prompt,
        score_range=None if cls.score_range is None else [
            float(v) if math.isfinite(v) else None for v in cls.score_range],
        description=cls.description or (cls.__doc__ or "").strip().split("\n")[0],
        citation=cls.citation, version=str(cls.version),
        options={k: v if isinstance(v, str | int | float | bool | None) else str(v)
                 for k, v in cls.defaults.items()},
    )


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


def create_app(config: ServeConfig | None = None) -> FastAPI:
    """Build the scoring service; metrics in ``config.preload`` are created at start-up."""
    config = (config or ServeConfig()).validate()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        executor = ThreadPoolExecutor(config.score_threads, thread_name_prefix="aigiqa-score")
        pool = MetricPool(size=config.cache_size, max_batch=config.max_batch,
                          max_wait_ms=config.max_wait_ms, executor=executor)
        app.state.scorer = Scorer(config, pool)
        try:
            for spec in config.preload:
                await pool.get(spec)
            yield
        finally:
            await pool.close()
            executor.shutdown(wait=True)

    app = FastAPI(title="aigiqa scoring service", version="1",
                  description="Quality scores of (AI-generated) images by registered metrics.",
                  lifespan=lifespan)
    app.add_middleware(BodySizeLimit, max_bytes=config.max_request_bytes)
    guard = [Depends(_auth_dependency(config.api_key))] if config.api_key else []

    @app.get("/healthz", response_model=Health, tags=["service"])
    async def healthz() -> Health:
        """Liveness: answers while the server runs (never needs the API key)."""
        return Health(status="ok")

    @app.get("/v1/metrics", response_model=list[MetricInfo], dependencies=guard,
             responses={401: _ERRORS[401]}, tags=["metrics"])
    async def metrics() -> list[MetricInfo]:
        """Every registered metric with its metadata and option defaults."""
        return [_metric_info(name) for name in list_metrics()]

    @app.get("/v1/stats", response_model=Stats, dependencies=guard,
             responses={401: _ERRORS[401]}, tags=["service"])
    async def stats(request: Request) -> Stats:
        """Warm metrics and their micro-batching counters."""
        pool = request.app.state.scorer.pool
        return Stats.model_validate({"warm": pool.warm(), "batching": pool.stats()})

    @app.post(
        "/v1/score", response_model=ScoreResponse, dependencies=guard, tags=["metrics"],
        responses={code: _ERRORS[code] for code in (400, 401, 413, 415, 422, 503, 504)},
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ScoreRequest"}},
            "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
        }}},
    )
    async def score(request: Request) -> ScoreResponse:
        """Score images (multipart upload, or JSON paths inside the allowed folder).

        Every image gets its scores per metric; an unreadable image or a failing metric is
        reported on that image only.
        """
        scorer: Scorer = request.app.state.scorer
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            async with asyncio.timeout(config.timeout_s):
                if kind == "multipart/form-data":
                    items, specs = await parse_multipart(request, config)
                elif kind == "application/json":
                    items, specs = await parse_json(request, config)
                else:
                    raise http_error(415, f"content type {kind or 'none'!r} is not accepted; send "
                                     "multipart/form-data (uploads) or application/json (paths)")
                scorer.check_counts(len(items), specs)
                return await scorer.run(items, specs)
        except TimeoutError:
            message = f"request took longer than {config.timeout_s:g} s (--timeout)"
            raise http_error(504, message) from None

    app.openapi = _openapi_with_request_models(app)  # type: ignore[method-assign]
    return app
