"""``aigiqa serve``: run the scoring service with uvicorn (mounted by aigiqa.cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aigiqa.errors import AigiqaError
from aigiqa.images import MAX_PIXELS
from aigiqa.metrics.registry import metric_class, parse_metric_spec
from aigiqa.serve.config import ServeConfig, api_key_from_env

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def build_config(
    *, metrics: str = "", allow_dir: Path | None = None, api_key: str | None = None,
    max_batch: int = 16, max_wait_ms: float = 5.0, max_request_bytes: int = 32 * 1024 * 1024,
    max_file_bytes: int = 32 * 1024 * 1024, max_pixels: int = MAX_PIXELS, max_images: int = 64,
    max_metrics: int = 8, timeout: float = 60.0, threads: int = 2, cache_size: int = 16,
) -> ServeConfig:
    """The validated ServeConfig of the CLI options; preloaded specs must name known metrics."""
    preload = tuple(s.strip() for s in metrics.split(",") if s.strip())
    for spec in preload:
        metric_class(parse_metric_spec(spec)[0])  # MetricError naming the spec if unknown
    return ServeConfig(
        preload=preload, allow_dir=allow_dir, api_key=api_key_from_env(api_key),
        max_batch=max_batch, max_wait_ms=max_wait_ms, max_request_bytes=max_request_bytes,
        max_file_bytes=max_file_bytes, max_pixels=max_pixels, max_images=max_images,
        max_metrics=max_metrics, timeout_s=timeout, score_threads=threads,
        cache_size=max(cache_size, len(preload)),
    ).validate()


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port")] = 8000,
    metrics: Annotated[str, typer.Option(
        "--metrics", "-m", help="Comma-separated metric specs loaded at start-up")] = "",
    allow_dir: Annotated[Path | None, typer.Option(
        help="Folder whose files JSON requests may name (nothing outside it)")] = None,
    api_key: Annotated[str | None, typer.Option(
        help="Require this key (Bearer or X-API-Key); default $AIGIQA_API_KEY")] = None,
    max_batch: Annotated[int, typer.Option(min=1, help="Images per Metric.score call")] = 16,
    max_wait_ms: Annotated[float, typer.Option(
        min=0, help="Longest wait for a batch to fill (ms)")] = 5.0,
    max_request_bytes: Annotated[int, typer.Option(min=1, help="Request body limit")] = 32 << 20,
    max_file_bytes: Annotated[int, typer.Option(
        min=1, help="Limit of one file read from --allow-dir")] = 32 << 20,
    max_pixels: Annotated[int, typer.Option(
        min=1, help="Largest image (width x height) decoded")] = MAX_PIXELS,
    max_images: Annotated[int, typer.Option(min=1, help="Images per request")] = 64,
    max_metrics: Annotated[int, typer.Option(min=1, help="Metrics per request")] = 8,
    timeout: Annotated[float, typer.Option(min=0.001, help="Per-request limit (s)")] = 60.0,
    threads: Annotated[int, typer.Option(min=1, help="Threads running Metric.score")] = 2,
    cache_size: Annotated[int, typer.Option(min=1, help="Most warm metrics kept")] = 16,
) -> None:
    """Run the HTTP scoring service (POST /v1/score, GET /v1/metrics, /healthz, /docs)."""
    import uvicorn

    from aigiqa.serve.app import create_app

    try:
        config = build_config(
            metrics=metrics, allow_dir=allow_dir, api_key=api_key, max_batch=max_batch,
            max_wait_ms=max_wait_ms, max_request_bytes=max_request_bytes,
            max_file_bytes=max_file_bytes, max_pixels=max_pixels, max_images=max_images,
            max_metrics=max_metrics, timeout=timeout, threads=threads, cache_size=cache_size,
        )
    except AigiqaError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if config.api_key is None and host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: listening on {host} without an API key", err=True)
    uvicorn.run(create_app(config), host=host, port=port, log_level="info")
