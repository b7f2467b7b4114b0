"""Server-side timing of the study app for the load benchmark (off unless
``$AIGIQA_STUDY_TIMING`` names a folder): per-request times, event-loop lag, GC pauses."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

#: Environment variable: a folder for per-request server timings (benchmarks only).
TIMING_ENV = "AIGIQA_STUDY_TIMING"


class TimingLog:
    """Per-process timing file ``timing-<pid>.tsv``: one line per request (or lag sample),
    written at once (a killed server loses nothing already answered).

    Columns: kind (post, image, state, page, other; ``lag`` for a loop-lag sample, ``gc0``-``gc2``
    for a garbage collection), status,
    start (Unix time, s), server time (ms: from the app's first call to the last body byte
    handed to uvicorn), database time (ms, rating and choice posts only; else empty)."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"timing-{os.getpid()}.tsv"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, kind: str, status: int, start: float, ms: float, db_ms: str = "") -> None:
        os.write(self._fd, f"{kind}\t{status}\t{start:.6f}\t{ms:.3f}\t{db_ms}\n".encode())

    def gc_callback(self, phase: str, info: dict[str, int]) -> None:
        """``gc.callbacks`` hook: a ``gc<generation>`` line per collection (status: objects
        collected) with its pause."""
        if phase == "start":
            self._gc_start = (time.time(), time.perf_counter())
        elif getattr(self, "_gc_start", None) is not None:
            wall, t0 = self._gc_start
            self._gc_start = None
            self.write(f"gc{info['generation']}", info["collected"], wall,
                       (time.perf_counter() - t0) * 1000)


def _request_kind(method: str, path: str) -> str:
    if method == "POST" and path.endswith(("/ratings", "/choices")):
        return "post"
    if "/image/" in path:
        return "image"
    if path.endswith("/state"):
        return "state"
    if path.startswith("/s/"):
        return "page"
    return "other"


class TimingMiddleware:
    """Pure ASGI middleware (outermost of the app's): server time per request to a TimingLog."""

    def __init__(self, app, log: TimingLog):
        self.app, self.log = app, log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wall, t0 = time.time(), time.perf_counter()
        status = 0

        async def timed_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            ms = (time.perf_counter() - t0) * 1000
            db_s = scope.get("state", {}).get("db_s")
            self.log.write(_request_kind(scope["method"], scope["path"]), status, wall, ms,
                           "" if db_s is None else f"{db_s * 1000:.3f}")


async def loop_lag(log: TimingLog, period_s: float = 0.01) -> None:
    """Sample how late 10 ms sleeps wake up on this worker's event loop (CPU or GIL shortage,
    blocking calls on the loop)."""
    while True:
        wall, t0 = time.time(), time.perf_counter()
        await asyncio.sleep(period_s)
        log.write("lag", 0, wall, max(0.0, (time.perf_counter() - t0 - period_s) * 1000))
