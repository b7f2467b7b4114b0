"""Images a request names: decoded from uploaded bytes or read from the allowed folder.

The decompression-bomb guard of ``aigiqa.images`` with a configurable pixel limit: the header's
width x height is checked before any pixel is decoded.
"""

from __future__ import annotations

import io
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
from PIL import Image, ImageOps

from aigiqa.errors import ImageError
from aigiqa.images import to_rgb_array


def decode_image(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    """Decode encoded image bytes to RGB uint8 (H, W, 3), EXIF orientation applied.

    Raises ImageError naming ``name`` for empty, corrupt or truncated data and for images over
    ``max_pixels`` pixels (Pillow's own hard limit, 2 x ``Image.MAX_IMAGE_PIXELS``, also applies).
    """
    if not data:
        raise ImageError(f"{name}: image is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > max_pixels:
            raise ImageError(
                f"{name}: {image.width}x{image.height} pixels exceeds the limit of {max_pixels} "
                "pixels (possible decompression bomb)"
            )
        image.load()
        image = ImageOps.exif_transpose(image)
    except ImageError:
        raise
    except Image.UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not an image in a format Pillow can read") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: rejected as a decompression bomb ({exc})") from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error…
        raise ImageError(f"{name}: cannot read image ({type(exc).__name__}: {exc})") from exc
    return to_rgb_array(image)


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


def read_allowed(ref: str, root: Path | None, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Read and decode a file inside ``root`` to RGB uint8 (H, W, 3); ImageError on any fault."""
    path = resolve_allowed(ref, root)
    if not path.is_file():
        raise ImageError(f"{ref!r}: no such file in the allowed folder")
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ImageError(f"{ref!r}: cannot read file ({exc.strerror})") from exc
    if len(data) > max_bytes:
        raise ImageError(f"{ref!r}: file is larger than the limit of {max_bytes} bytes")
    return decode_image(data, repr(ref), max_pixels)
