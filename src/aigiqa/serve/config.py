"""Settings of the scoring service: served metrics, limits, batching, auth, the allowed folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aigiqa.errors import AigiqaError

#: Environment variable read for the API key when none is given explicitly.
API_KEY_ENV = "AIGIQA_API_KEY"

#: Default limits. They keep the heaviest classical metrics (NIQE, BRISQUE, PIQE need about
#: 60 B/px while scoring) under 1.5 GB over an idle server for the worst request they allow, with
#: two scoring threads: see ``benchmarks/serve_limits.py`` and the README.
MAX_PIXELS = 1 << 23  #: 8,388,608 px per image: 3840x2160 (4K UHD), 4096x2048, 2896x2896
MAX_REQUEST_PIXELS = 1 << 26  #: 67,108,864 px per request: 64 images of 1024x1024
MAX_DECODED_BYTES = 256 << 20  #: 256 MiB of images being decoded or held, server-wide


class ServeConfigError(AigiqaError):
    """A scoring-service setting that cannot be used (bad limit, metric, missing folder)."""


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``create_app`` needs; every limit is checked by ``validate``.

    Sizes are in bytes, times in seconds unless the name says ``_ms``.
    """

    #: served metrics, ``SPEC`` or ``ID=SPEC`` (created and prepared at start-up; required)
    metrics: tuple[str, ...] = ()
    allow_dir: Path | None = None  #: folder whose files JSON requests may name; None: none
    api_key: str | None = None  #: when set, /v1/* needs ``Authorization: Bearer`` or X-API-Key
    max_batch: int = 16  #: most images per Metric.score call (1 = no batching)
    max_wait_ms: float = 5.0  #: longest wait for more images once a batch has one
    max_request_bytes: int = 32 * 1024 * 1024  #: request body limit (HTTP 413 above it)
    max_json_bytes: int = 1024 * 1024  #: JSON body limit (paths and prompts only; HTTP 413)
    max_file_bytes: int = 32 * 1024 * 1024  #: size limit of one file read from allow_dir
    max_pixels: int = MAX_PIXELS  #: largest image (width x height) decoded; bomb guard
    max_request_pixels: int = MAX_REQUEST_PIXELS  #: pixels of all images of a request (413)
    #: server-wide bytes of images being decoded or held until scored (requests wait for them)
    max_decoded_bytes: int = MAX_DECODED_BYTES
    max_images: int = 64  #: images per request (HTTP 413 above it)
    max_metrics: int = 8  #: metrics per request (HTTP 422 above it)
    timeout_s: float = 60.0  #: whole-request limit (HTTP 504 after it)
    #: threads running Metric.score (one batch per metric at a time), and as many decoding
    score_threads: int = 2
    #: serve metrics that read the generator (``reads_names``); requests then give it per image
    allow_names: bool = False

    def validate(self) -> ServeConfig:
        """Return self if every setting is usable; raise ServeConfigError naming the bad one."""
        from aigiqa.serve.inputs import MOST_BYTES_PER_PIXEL
        from aigiqa.serve.served import parse_served

        bad: list[str] = []
        if not any(m.strip() for m in self.metrics):
            bad.append("no metric to serve: give --metrics SPEC[,ID=SPEC…] (clients can use "
                       "only the metrics named there)")
        else:
            try:
                parse_served(self.metrics)
            except ServeConfigError as exc:
                bad += exc.problems
        positive = {
            "max_batch": self.max_batch, "max_request_bytes": self.max_request_bytes,
            "max_json_bytes": self.max_json_bytes, "max_file_bytes": self.max_file_bytes,
            "max_pixels": self.max_pixels, "max_request_pixels": self.max_request_pixels,
            "max_decoded_bytes": self.max_decoded_bytes, "max_images": self.max_images,
            "max_metrics": self.max_metrics, "timeout_s": self.timeout_s,
            "score_threads": self.score_threads,
        }
        bad += [f"{k}={v!r} must be > 0" for k, v in positive.items() if not v > 0]
        if not self.max_wait_ms >= 0:
            bad.append(f"max_wait_ms={self.max_wait_ms!r} must be >= 0")
        if self.max_request_pixels < self.max_pixels:
            bad.append(f"max_request_pixels={self.max_request_pixels} must be >= "
                       f"max_pixels={self.max_pixels} (one image of the largest size)")
        if self.max_decoded_bytes < MOST_BYTES_PER_PIXEL * self.max_pixels:
            bad.append(f"max_decoded_bytes={self.max_decoded_bytes} must be >= "
                       f"{MOST_BYTES_PER_PIXEL} x max_pixels = "
                       f"{MOST_BYTES_PER_PIXEL * self.max_pixels} (decoding one image of the "
                       "largest size)")
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
