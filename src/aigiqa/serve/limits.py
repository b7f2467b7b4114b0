"""Request-body size limits as a pure ASGI middleware (checked before any parsing).

JSON bodies name files and carry prompts only, so they get a smaller limit than uploads: parsing
JSON takes many times its size in Python objects.
"""

from __future__ import annotations

import json
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    """Answer 413 to any request whose body (declared or streamed) exceeds its limit:
    ``max_json_bytes`` for ``application/json``, ``max_bytes`` for anything else."""

    def __init__(self, app: Any, max_bytes: int, max_json_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_json_bytes = min(max_bytes, max_bytes if max_json_bytes is None
                                  else max_json_bytes)

    def _message(self, limit: int, is_json: bool) -> str:
        if is_json and limit < self.max_bytes:
            return (f"JSON request body exceeds the limit of {limit} bytes (--max-json-bytes); "
                    "name fewer images per request")
        return (f"request body exceeds the limit of {limit} bytes "
                "(--max-request-bytes); send fewer or smaller images per request")

    async def _reject(self, send: Any, limit: int, is_json: bool) -> None:
        body = json.dumps({"detail": self._message(limit, is_json)}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for key, value in scope.get("headers", []):  # the first of repeated headers, as Starlette
            headers.setdefault(key.lower(), value)
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        is_json = kind == b"application/json"
        limit = self.max_json_bytes if is_json else self.max_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(send, limit, is_json)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await self._reject(send, limit, is_json)
