"""Synthetic test images shared by the metric tests."""

from __future__ import annotations

import struct
import zlib

import numpy as np
from scipy import ndimage


def natural(seed: int, h: int = 192, w: int = 256) -> np.ndarray:
    """A 1/f-spectrum RGB uint8 image (H, W, 3): natural-image-like statistics."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2
    shape = (h, w // 2 + 1)
    spec = (rng.normal(size=shape) + 1j * rng.normal(size=shape)) / np.maximum(f, 1e-4) ** 0.9
    img = np.fft.irfft2(spec, s=(h, w))
    img = (img - img.min()) / (img.max() - img.min()) * 255
    rgb = np.stack([img, np.roll(img, 7, 1), img[::-1]], -1)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of each channel, rounded back to uint8."""
    out = ndimage.gaussian_filter(img.astype(float), (sigma, sigma, 0))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def header_only_png(width: int, height: int, *, idat: bool = False) -> bytes:
    """A PNG whose header claims width x height RGB pixels with (almost) no pixel data: a
    decompression bomb's header, a few dozen bytes. ``idat`` adds a tiny, truncated IDAT chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    middle = chunk(b"IDAT", zlib.compress(b"\x00" * 16)) if idat else b""
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + middle + chunk(b"IEND", b"")
