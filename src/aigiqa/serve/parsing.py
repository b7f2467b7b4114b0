"""Reading a score request: multipart uploads or JSON paths into items and metric ids."""

from __future__ import annotations

import re
from contextlib import AsyncExitStack
from dataclasses import dataclass

from fastapi import HTTPException, Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from aigiqa.serve.config import ServeConfig
from aigiqa.serve.inputs import AllowedPathSource, Source, UploadSource
from aigiqa.serve.schemas import GENERATOR_PATTERN, MAX_GENERATOR_CHARS, ScoreRequest

#: Longest text field of a multipart body (a prompt, a list of metric ids), in bytes.
MAX_TEXT_FIELD_BYTES = 64 * 1024


@dataclass
class Item:
    """One image of a request: its name, prompt, where its bytes are, and its generator (read
    only by metrics that read names, served with ``--allow-names``)."""

    name: str
    prompt: str | None
    source: Source
    generator: str | None = None


def http_error(status: int, detail: str) -> HTTPException:
    """An HTTP error answer ``{"detail": detail}`` with the given status."""
    return HTTPException(status_code=status, detail=detail)


def _split_ids(values: list[str]) -> list[str]:
    """Metric ids from repeated or comma-separated values, stripped, duplicates dropped."""
    ids = [s.strip() for v in values for s in v.split(",") if s.strip()]
    return list(dict.fromkeys(ids))


async def parse_multipart(request: Request, config: ServeConfig,
                          stack: AsyncExitStack) -> tuple[list[Item], list[str]]:
    """Items and ids of a multipart body: repeated ``files``, ``prompts``, ``generators``,
    ``metrics``.

    The uploads stay open (Starlette spools them to disk past 1 MB) until ``stack`` closes, so
    their bytes are read only when they are decoded.
    """
    try:
        form = await request.form(max_files=config.max_images,
                                  max_fields=2 * config.max_images + config.max_metrics + 16,
                                  max_part_size=MAX_TEXT_FIELD_BYTES)
    except StarletteHTTPException as exc:  # Starlette stops at the first file over max_files
        text = str(exc.detail).lower()
        if exc.status_code == 400 and "too many files" in text:
            raise http_error(413, f"more than {config.max_images} images in one request "
                             "(--max-images)") from exc
        if exc.status_code == 400 and "maximum size" in text:
            raise http_error(413, f"a text field (prompt or metrics) is longer than "
                             f"{MAX_TEXT_FIELD_BYTES} bytes") from exc
        raise
    stack.push_async_callback(form.close)
    fields = ("prompts", "generators", "metrics")
    unknown = sorted(set(form.keys()) - {"files", *fields})
    if unknown:
        raise http_error(422, f"unknown form field(s) {unknown}; expected files, prompts, "
                         "generators, metrics")
    uploads = form.getlist("files")
    if any(not isinstance(u, UploadFile) for u in uploads):
        raise http_error(422, "every 'files' field must be a file upload (with a filename)")
    texts = {key: form.getlist(key) for key in fields}
    if any(not isinstance(v, str) for vs in texts.values() for v in vs):
        raise http_error(422, "'prompts', 'generators' and 'metrics' must be text fields, "
                         "not files")
    per_file: dict[str, list[str | None]] = {}
    for key in ("prompts", "generators"):
        per_file[key] = list(texts[key]) or [None] * len(uploads)  # type: ignore[arg-type]
        if len(per_file[key]) != len(uploads):
            raise http_error(422, f"{len(uploads)} files but {len(per_file[key])} {key}; "
                             f"give one of the {key} per file, in order, or none")
    bad = [i for i, g in enumerate(per_file["generators"]) if g is not None and not (
        len(g) <= MAX_GENERATOR_CHARS and re.fullmatch(GENERATOR_PATTERN, g))]
    if bad:
        raise http_error(422, f"generators {bad[:10]}: a generator is one line of 1 to "
                         f"{MAX_GENERATOR_CHARS} printable characters")
    items = []
    for i, (upload, prompt, generator) in enumerate(zip(uploads, per_file["prompts"],
                                                        per_file["generators"], strict=True)):
        assert isinstance(upload, UploadFile)
        name = upload.filename or f"files[{i}]"
        items.append(Item(name, prompt or None, UploadSource(upload.file, repr(name)),
                          generator))
    return items, _split_ids(texts["metrics"])


async def parse_json(request: Request, config: ServeConfig) -> tuple[list[Item], list[str]]:
    """Items and ids of a JSON body (ScoreRequest); 422 listing every invalid field."""
    try:
        body = ScoreRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        detail = [{"loc": [str(p) if not isinstance(p, int) else p for p in e["loc"]],
                   "msg": e["msg"], "type": e["type"]} for e in exc.errors(include_url=False)]
        raise HTTPException(status_code=422, detail=detail) from exc
    root = config.allow_root
    items = [Item(ref.path, ref.prompt or None,
                  AllowedPathSource(ref.path, root, config.max_file_bytes), ref.generator)
             for ref in body.images]
    return items, _split_ids(body.metrics)
