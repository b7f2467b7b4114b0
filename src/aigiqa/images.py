"""Reading images: one function, Pillow, RGB uint8, EXIF orientation applied, bomb guard on."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from aigiqa.errors import ImageError

#: Largest image (in pixels) aigiqa opens; Pillow's own default guard is 89.5 Mpx (warning) and
#: twice that (error). We make anything above MAX_PIXELS an error.
MAX_PIXELS = 89_478_485

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"})


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise ImageError(f"{path}: image file not found")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: image file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            if image.width * image.height > MAX_PIXELS:
                raise ImageError(
                    f"{path}: {image.width}x{image.height} pixels exceeds the limit of "
                    f"{MAX_PIXELS} pixels (possible decompression bomb)"
                )
            image.load()
    except ImageError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageError(f"{path}: rejected as a decompression bomb ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: cannot read image ({exc})") from exc
    return image


def verify_image(path: str | Path) -> tuple[int, int]:
    """Fully decode an image to check it; return (width, height). Raises ImageError."""
    image = _open(Path(path))
    return image.width, image.height


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as an RGB uint8 array of shape (H, W, 3), EXIF orientation applied.

    Grayscale, palette and 16-bit images are converted the way Pillow's ``convert("RGB")`` does;
    16-bit grayscale is scaled to 8 bits first. Transparency (RGBA, LA, a palette's transparent
    colour) is dropped, not composited: each pixel keeps the colour stored under its alpha, so a
    fully transparent pixel shows whatever colour the file holds there.
    """
    path = Path(path)
    image = _open(path)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception as exc:  # malformed EXIF should not hide the pixels
        raise ImageError(f"{path}: cannot apply EXIF orientation ({exc})") from exc
    return to_rgb_array(image)


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Convert a Pillow image of any mode to an RGB uint8 array (H, W, 3)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        wide = np.asarray(image, dtype=np.float64)
        scale = 257.0 if image.mode.startswith("I;16") or wide.max() > 255 else 1.0
        gray = np.clip(np.round(wide / scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode == "F":
        gray = np.clip(np.round(np.asarray(image)), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def find_images(paths: list[str | Path]) -> list[Path]:
    """Expand files and folders (recursively) into a sorted list of image files."""
    found: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            found.extend(
                sorted(
                    f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                )
            )
        elif p.is_file():
            found.append(p)
        else:
            raise ImageError(f"{p}: no such file or folder")
    return found
