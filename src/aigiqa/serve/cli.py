"""``aigiqa serve``: run the scoring service with uvicorn (mounted by aigiqa.cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aigiqa.errors import AigiqaError
from aigiqa.serve.config import (
    MAX_DECODED_BYTES,
    MAX_PIXELS,
    MAX_REQUEST_PIXELS,
    ServeConfig,
    api_key_from_env,
)

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def build_config(
    *, metrics: str = "", allow_dir: Path | None = None, api_key: str | None = None,
    max_batch: int = 16, max_wait_ms: float = 5.0, max_request_bytes: int = 32 * 1024 * 1024,
    max_json_bytes: int = 1024 * 1024, max_file_bytes: int = 32 * 1024 * 1024,
    max_pixels: int = MAX_PIXELS, max_request_pixels: int = MAX_REQUEST_PIXELS,
    max_decoded_bytes: int = MAX_DECODED_BYTES, max_images: int = 64, max_metrics: int = 8,
    timeout: float = 60.0, threads: int = 2, allow_names: bool = False,
) -> ServeConfig:
    """The validated ServeConfig of the CLI options (the metrics are not created yet)."""
    return ServeConfig(
        metrics=tuple(s.strip() for s in metrics.split(",") if s.strip()), allow_dir=allow_dir,
        api_key=api_key_from_env(api_key), max_batch=max_batch, max_wait_ms=max_wait_ms,
        max_request_bytes=max_request_bytes, max_json_bytes=max_json_bytes,
        max_file_bytes=max_file_bytes, max_pixels=max_pixels,
        max_request_pixels=max_request_pixels, max_decoded_bytes=max_decoded_bytes,
        max_images=max_images, max_metrics=max_metrics, timeout_s=timeout, score_threads=threads,
        allow_names=allow_names,
    ).validate()


@app.command("serve")
def serve(
    metrics: Annotated[str, typer.Option(
        "--metrics", "-m", help="Required. The metrics served, comma-separated: SPEC (id = the "
        "metric name) or ID=SPEC, e.g. 'niqe,koniq=effnet-lite0:checkpoint=/srv/k.pt'. Created "
        "at start-up; clients name them by id and cannot change their options")] = "",
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port")] = 8000,
    allow_dir: Annotated[Path | None, typer.Option(
        help="Folder whose files JSON requests may name (nothing outside it)")] = None,
    api_key: Annotated[str | None, typer.Option(
        help="Require this key (Bearer or X-API-Key); default $AIGIQA_API_KEY")] = None,
    max_batch: Annotated[int, typer.Option(min=1, help="Images per Metric.score call")] = 16,
    max_wait_ms: Annotated[float, typer.Option(
        min=0, help="Longest wait for a batch to fill (ms)")] = 5.0,
    max_request_bytes: Annotated[int, typer.Option(min=1, help="Request body limit")] = 32 << 20,
    max_json_bytes: Annotated[int, typer.Option(
        min=1, help="JSON request body limit (paths and prompts only)")] = 1 << 20,
    max_file_bytes: Annotated[int, typer.Option(
        min=1, help="Limit of one file read from --allow-dir")] = 32 << 20,
    max_pixels: Annotated[int, typer.Option(
        min=1, help="Largest image (width x height) decoded")] = MAX_PIXELS,
    max_request_pixels: Annotated[int, typer.Option(
        min=1, help="Pixels of all images of one request (413 above)")] = MAX_REQUEST_PIXELS,
    max_decoded_bytes: Annotated[int, typer.Option(
        min=1, help="Bytes of images being decoded or waiting to be scored, server-wide "
        "(further images wait)")] = MAX_DECODED_BYTES,
    max_images: Annotated[int, typer.Option(min=1, help="Images per request")] = 64,
    max_metrics: Annotated[int, typer.Option(min=1, help="Metrics per request")] = 8,
    timeout: Annotated[float, typer.Option(min=0.001, help="Per-request limit (s)")] = 60.0,
    threads: Annotated[int, typer.Option(
        min=1, help="Threads running Metric.score (and as many decoding)")] = 2,
    allow_names: Annotated[bool, typer.Option(
        "--allow-names/--name-blind", help="Serve metrics that read the generator (e.g. "
        "clip-prompt-levels:generator_prefix=generator); requests give it per image")] = False,
) -> None:
    """Run the HTTP scoring service (POST /v1/score, GET /v1/metrics, /healthz, /docs)."""
    import uvicorn

    from aigiqa.serve.app import create_app

    try:
        config = build_config(
            metrics=metrics, allow_dir=allow_dir, api_key=api_key, max_batch=max_batch,
            max_wait_ms=max_wait_ms, max_request_bytes=max_request_bytes,
            max_json_bytes=max_json_bytes, max_file_bytes=max_file_bytes, max_pixels=max_pixels,
            max_request_pixels=max_request_pixels, max_decoded_bytes=max_decoded_bytes,
            max_images=max_images, max_metrics=max_metrics, timeout=timeout, threads=threads,
            allow_names=allow_names,
        )
        application = create_app(config)  # creates and prepares every served metric
    except AigiqaError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if config.api_key is None and host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: listening on {host} without an API key", err=True)
    uvicorn.run(application, host=host, port=port, log_level="info")
