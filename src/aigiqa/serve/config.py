"""Settings of the scoring service: limits, batching, auth, the allowed folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aigiqa.errors import AigiqaError
from aigiqa.images import MAX_PIXELS

#: Environment variable read for the API key when none is given explicitly.
API_KEY_ENV = "AIGIQA_API_KEY"


class ServeConfigError(AigiqaError):
    """A scoring-service setting that cannot be used (bad limit, missing allowed folder)."""


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``create_app`` needs; every limit is checked by ``validate``.

    Sizes are in bytes, times in seconds unless the name says ``_ms``.
    """

    preload: tuple[str, ...] = ()  #: metric specs created at start-up (stay warm)
    allow_dir: Path | None = None  #: folder whose files JSON requests may name; None: none
    api_key: str | None = None  #: when set, /v1/* needs ``Authorization: Bearer`` or X-API-Key
    max_batch: int = 16  #: most images per Metric.score call (1 = no batching)
    max_wait_ms: float = 5.0  #: longest wait for more images once a batch has one
    max_request_bytes: int = 32 * 1024 * 1024  #: request body limit (HTTP 413 above it)
    max_file_bytes: int = 32 * 1024 * 1024  #: size limit of one file read from allow_dir
    max_pixels: int = MAX_PIXELS  #: largest image (width x height) decoded; bomb guard
    max_images: int = 64  #: images per request (HTTP 413 above it)
    max_metrics: int = 8  #: metrics per request (HTTP 422 above it)
    timeout_s: float = 60.0  #: whole-request limit (HTTP 504 after it)
    score_threads: int = 2  #: threads running Metric.score (one batch per metric at a time)
    cache_size: int = 16  #: most warm metrics kept (least recently used dropped)

    def validate(self) -> ServeConfig:
        """Return self if every setting is usable; raise ServeConfigError naming the bad one."""
        positive = {
            "max_batch": self.max_batch, "max_request_bytes": self.max_request_bytes,
            "max_file_bytes": self.max_file_bytes, "max_pixels": self.max_pixels,
            "max_images": self.max_images, "max_metrics": self.max_metrics,
            "timeout_s": self.timeout_s, "score_threads": self.score_threads,
            "cache_size": self.cache_size,
        }
        bad = [f"{k}={v!r} must be > 0" for k, v in positive.items() if not v > 0]
        if not self.max_wait_ms >= 0:
            bad.append(f"max_wait_ms={self.max_wait_ms!r} must be >= 0")
        if len(self.preload) > self.cache_size:
            bad.append(f"{len(self.preload)} preloaded metrics exceed cache_size={self.cache_size}")
        if self.allow_dir is not None and not Path(self.allow_dir).is_dir():
            bad.append(f"allow_dir={str(self.allow_dir)!r} is not a folder")
        if self.api_key is not None and not self.api_key.strip():
            bad.append("api_key is empty; leave it unset to disable auth")
        if bad:
            raise ServeConfigError("invalid scoring-service settings", bad)
        return self

    @property
    def allow_root(self) -> Path | None:
        """The allowed folder with symlinks resolved, or None."""
        return None if self.allow_dir is None else Path(self.allow_dir).resolve()


def api_key_from_env(explicit: str | None) -> str | None:
    """The explicit key, else ``$AIGIQA_API_KEY``, else None (no auth)."""
    return explicit if explicit else (os.environ.get(API_KEY_ENV) or None)
