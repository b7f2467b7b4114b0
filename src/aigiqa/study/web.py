"""What the study app's rating and paired-comparison routes share: CSRF tokens and checks, JSON
inside a page, and answering an image of a subject's trial (never a file outside the root)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from fastapi.responses import FileResponse, Response

from aigiqa.store.study import StudyInfo

#: Images up to this size are read and answered on the event loop (larger: FileResponse).
INLINE_IMAGE_BYTES = 4 << 20
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                ".webp": "image/webp", ".bmp": "image/bmp", ".gif": "image/gif"}


def csrf_token(study: StudyInfo, subject_id: int) -> str:
    """The subject's CSRF token: HMAC-SHA256 of the subject id under the study's secret."""
    return hmac.new(study.csrf_key.encode(), f"subject:{subject_id}".encode(),
                    hashlib.sha256).hexdigest()


def check_csrf(request: Request, expected: str) -> None:
    """JSON only, same origin if an Origin is sent, and the subject's CSRF header."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise HTTPException(415, "answers are posted as application/json")
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(403, "cross-origin post refused")
    sent = request.headers.get("x-csrf-token", "")
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        raise HTTPException(403, "missing or wrong CSRF token")


def script_json(data: Any) -> str:
    """JSON safe inside a <script> element (no ``<``, ``>`` or ``&`` left raw)."""
    text = json.dumps(data)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class ImageFiles:
    """Answers the image files of trials: a path relative to the database root, resolved once
    per (root, path) and refused (404) if it leads outside the root or is not a regular file."""

    def __init__(self) -> None:
        self._resolved: dict[tuple[str, str], Path | None] = {}

    def _file(self, root_text: str, rel: str) -> Path | None:
        key = (root_text, rel)
        if key not in self._resolved:
            root = Path(root_text).absolute()
            path = (root / rel).resolve()
            self._resolved[key] = path if path.is_relative_to(root.resolve()) else None
        return self._resolved[key]

    def response(self, root_text: str, rel: str) -> Response:
        path = self._file(root_text, rel)
        headers = {"Cache-Control": "private, max-age=3600"}
        try:
            info = os.stat(path) if path is not None else None
        except OSError:
            info = None
        if path is None or info is None or not stat.S_ISREG(info.st_mode):
            raise HTTPException(404, "image file missing")
        if info.st_size > INLINE_IMAGE_BYTES:
            return FileResponse(path, headers=headers)
        try:
            content = path.read_bytes()  # small file, page cache: cheaper than a thread hop
        except OSError:
            raise HTTPException(404, "image file missing") from None
        media = _IMAGE_TYPES.get(path.suffix.lower(), "application/octet-stream")
        return Response(content, media_type=media, headers=headers)
