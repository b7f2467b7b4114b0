"""Images a request names: uploaded files or files inside the allowed folder.

An image is read twice: first its header only (Pillow's ``Image.open`` is lazy), to check its
size against the limits and to reserve the memory its decoding takes; then, once the memory is
granted, its pixels. The decompression-bomb guard: width x height is checked before any pixel is
decoded. Only the formats of ``aigiqa.images.IMAGE_SUFFIXES`` are opened (no plug-in that runs
an external program, such as EPS through Ghostscript).
"""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import unquote, urlparse

import numpy as np
from PIL import Image, ImageOps

from aigiqa.errors import ImageError
from aigiqa.images import to_rgb_array

#: Pillow formats the server decodes (the suffixes of aigiqa.images.IMAGE_SUFFIXES).
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF")  # JPEG includes MPO

#: Peak bytes per pixel while decoding: Pillow's buffer (4 B/px for RGB) plus NumPy's copy out of
#: it (3 B/px, briefly twice); other modes also convert (another buffer), 16- and 32-bit integer
#: modes go through float64 (measured at 2896x2896: RGB 10, RGBA/LA/CMYK 14, L/P 11, F 12,
#: I;16 26, I 28). Afterwards the image holds its RGB uint8 array (3 B/px).
DECODE_BYTES_PER_PIXEL = {"RGB": 10, "F": 20, "I": 32, "I;16": 32, "I;16B": 32, "I;16L": 32}
OTHER_MODES_BYTES_PER_PIXEL = 14
MOST_BYTES_PER_PIXEL = max(*DECODE_BYTES_PER_PIXEL.values(), OTHER_MODES_BYTES_PER_PIXEL)


@dataclass(frozen=True)
class Header:
    """What an image's header says: size and Pillow mode."""

    width: int
    height: int
    mode: str

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def decode_bytes(self) -> int:
        """Most bytes decoding this image to RGB uint8 takes at once."""
        return self.pixels * DECODE_BYTES_PER_PIXEL.get(self.mode, OTHER_MODES_BYTES_PER_PIXEL)


class Source(Protocol):
    """Where an image's bytes are; ``open`` may raise ImageError (missing, outside, too big)."""

    name: str

    def open(self) -> AbstractContextManager[BinaryIO]: ...


class UploadSource:
    """An uploaded file (Starlette keeps it in memory up to 1 MB, on disk beyond)."""

    def __init__(self, file: BinaryIO, name: str) -> None:
        self.file = file
        self.name = name

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        self.file.seek(0, io.SEEK_END)
        if self.file.tell() == 0:
            raise ImageError(f"{self.name}: image is empty (0 bytes)")
        self.file.seek(0)
        yield self.file


class AllowedPathSource:
    """A file a JSON request names, inside the allowed folder and under the file-size limit."""

    def __init__(self, ref: str, root: Path | None, max_bytes: int) -> None:
        self.ref = ref
        self.root = root
        self.max_bytes = max_bytes
        self.name = repr(ref)

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        path = resolve_allowed(self.ref, self.root)
        try:  # non-blocking: a FIFO put in the folder must not hang the server
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise ImageError(f"{self.ref!r}: no such file in the allowed folder") from None
        except OSError as exc:
            raise ImageError(f"{self.ref!r}: cannot read file ({exc.strerror})") from exc
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise ImageError(f"{self.ref!r}: no such file in the allowed folder")
        with os.fdopen(fd, "rb") as handle:
            size = info.st_size
            if size > self.max_bytes:
                raise ImageError(
                    f"{self.ref!r}: file is larger than the limit of {self.max_bytes} bytes")
            if size == 0:
                raise ImageError(f"{self.ref!r}: image is empty (0 bytes)")
            yield handle


def _open_image(handle: BinaryIO, name: str, max_pixels: int) -> Image.Image:
    """Pillow's lazy image of ``handle`` (header read only) if it is within ``max_pixels``."""
    try:
        image = Image.open(handle, formats=FORMATS)
    except Image.UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not an image in a format this server reads "
                         f"({', '.join(FORMATS)})") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: rejected as a decompression bomb ({exc})") from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error…
        raise ImageError(f"{name}: cannot read image ({type(exc).__name__}: {exc})") from exc
    if image.width * image.height > max_pixels:
        raise ImageError(
            f"{name}: {image.width}x{image.height} pixels exceeds the limit of {max_pixels} "
            "pixels per image (--max-pixels; possible decompression bomb)"
        )
    return image


def read_header(source: Source, name: str, max_pixels: int) -> Header:
    """Size and mode of an image without decoding it; ImageError on any fault or over the limit."""
    with source.open() as handle:
        image = _open_image(handle, name, max_pixels)
        return Header(image.width, image.height, image.mode)


def decode(source: Source, name: str, header: Header) -> np.ndarray:
    """Decode an image whose header was read to RGB uint8 (H, W, 3), EXIF orientation applied.

    ImageError naming ``name`` for corrupt or truncated data, or if the file no longer has the
    size its header had (the reservation was made for that size).
    """
    with source.open() as handle:
        image = _open_image(handle, name, sys.maxsize)
        if (image.width, image.height, image.mode) != (header.width, header.height, header.mode):
            raise ImageError(f"{name}: image changed while the request was read")
        try:
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # no copy when nothing to rotate
            return to_rgb_array(image)
        except Exception as exc:  # truncated or corrupt data, malformed EXIF
            raise ImageError(f"{name}: cannot read image ({type(exc).__name__}: {exc})") from exc


def resolve_allowed(ref: str, root: Path | None) -> Path:
    """The file a JSON request names (path or ``file://`` URL) if it lies inside ``root``.

    Relative paths are taken from ``root``. Symlinks and ``..`` are resolved first, so a link
    that points out of the folder is refused like any other outside path. Raises ImageError.
    """
    if root is None:
        raise ImageError(f"{ref!r}: this server reads no paths (start it with --allow-dir)")
    text = ref
    if "://" in ref:
        url = urlparse(ref)
        if url.scheme != "file" or url.netloc not in ("", "localhost"):
            raise ImageError(
                f"{ref!r}: only paths and file:// URLs inside the allowed folder are accepted; "
                "the server fetches nothing from the network"
            )
        text = unquote(url.path)
    if not text or "\x00" in text:
        raise ImageError(f"{ref!r}: not a valid path")
    try:
        candidate = Path(text) if Path(text).is_absolute() else root / text
        resolved = candidate.resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # symlink loops, bad names
        raise ImageError(f"{ref!r}: cannot resolve path ({exc})") from exc
    if not resolved.is_relative_to(root):
        raise ImageError(f"{ref!r}: resolves outside the allowed folder; refused")
    return resolved
