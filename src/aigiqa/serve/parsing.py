"""Reading a score request: multipart uploads or JSON paths into items and metric specs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from fastapi import HTTPException, Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from aigiqa.serve.config import ServeConfig
from aigiqa.serve.inputs import decode_image, read_allowed
from aigiqa.serve.schemas import ImageRef, ScoreRequest


@dataclass
class Item:
    """One image of a request: its name, prompt and how to get its pixels (run in a thread)."""

    name: str
    prompt: str | None
    load: Callable[[], np.ndarray]


def http_error(status: int, detail: str) -> HTTPException:
    """An HTTP error answer ``{"detail": detail}`` with the given status."""
    return HTTPException(status_code=status, detail=detail)


def _split_specs(values: list[str]) -> list[str]:
    """Metric specs from repeated or comma-separated values, stripped, duplicates dropped."""
    specs = [s.strip() for v in values for s in v.split(",") if s.strip()]
    return list(dict.fromkeys(specs))


async def parse_multipart(request: Request, config: ServeConfig) -> tuple[list[Item], list[str]]:
    """Items and specs of a multipart body: repeated ``files``, ``prompts``, ``metrics``."""
    try:
        form = await request.form(max_files=config.max_images,
                                  max_fields=2 * config.max_images + config.max_metrics + 16)
    except StarletteHTTPException as exc:  # Starlette stops at the first file over max_files
        if exc.status_code == 400 and "too many files" in str(exc.detail).lower():
            raise http_error(413, f"more than {config.max_images} images in one request "
                             "(--max-images)") from exc
        raise
    try:
        unknown = sorted(set(form.keys()) - {"files", "prompts", "metrics"})
        if unknown:
            raise http_error(422, f"unknown form field(s) {unknown}; "
                             "expected files, prompts, metrics")
        uploads = form.getlist("files")
        if any(not isinstance(u, UploadFile) for u in uploads):
            raise http_error(422, "every 'files' field must be a file upload (with a filename)")
        texts = {key: form.getlist(key) for key in ("prompts", "metrics")}
        if any(not isinstance(v, str) for vs in texts.values() for v in vs):
            raise http_error(422, "'prompts' and 'metrics' must be text fields, not files")
        prompts: list[str | None] = list(texts["prompts"]) or [None] * len(uploads)
        if len(prompts) != len(uploads):
            raise http_error(422, f"{len(uploads)} files but {len(prompts)} prompts; "
                             "give one prompt per file, in order, or none")
        specs = _split_specs(texts["metrics"])
        items = []
        for i, (upload, prompt) in enumerate(zip(uploads, prompts, strict=True)):
            name = upload.filename or f"files[{i}]"
            data = await upload.read()
            items.append(Item(name, prompt or None, _decoder(data, name, config.max_pixels)))
        return items, specs
    finally:
        await form.close()


def _decoder(data: bytes, name: str, max_pixels: int) -> Callable[[], np.ndarray]:
    return lambda: decode_image(data, repr(name), max_pixels)


def _reader(ref: ImageRef, config: ServeConfig) -> Callable[[], np.ndarray]:
    root = config.allow_root
    return lambda: read_allowed(ref.path, root, config.max_file_bytes, config.max_pixels)


async def parse_json(request: Request, config: ServeConfig) -> tuple[list[Item], list[str]]:
    """Items and specs of a JSON body (ScoreRequest); 422 listing every invalid field."""
    try:
        body = ScoreRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        detail = [{"loc": [str(p) if not isinstance(p, int) else p for p in e["loc"]],
                   "msg": e["msg"], "type": e["type"]} for e in exc.errors(include_url=False)]
        raise HTTPException(status_code=422, detail=detail) from exc
    items = [Item(ref.path, ref.prompt or None, _reader(ref, config)) for ref in body.images]
    return items, _split_specs(body.metrics)
