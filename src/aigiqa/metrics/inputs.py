"""What ``Metric.score`` accepts: the images and prompts users have, turned into one form.

Every metric scores RGB uint8 arrays (H, W, 3). A user may pass instead:

- a path (``str`` or ``os.PathLike``): read with :func:`aigiqa.images.load_image` (EXIF
  orientation applied, decompression-bomb guard on);
- a PIL image: converted with :func:`aigiqa.images.to_rgb_array` (as read, no EXIF rotation:
  the caller already holds the pixels it means);
- a numpy array: uint8 (H, W, 3), (H, W) gray or (H, W, 4) RGBA (alpha dropped, as Pillow's
  ``convert("RGB")``); or floating point in [0, 1] of those shapes, scaled by 255 and rounded;
- a torch tensor, as pyiqa users pass them: (C, H, W) with C = 1 or 3, floating point in [0, 1]
  (or uint8), moved to the CPU.

A batch is a list or tuple of such images, a 4-D numpy array (B, H, W, C) or a 4-D tensor
(B, C, H, W). Prompts are a list (one per image) or, for one image, a string.
Anything else is a MetricError naming the metric, the image's position and what was found.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from aigiqa.errors import MetricError


def _is_tensor(x: Any) -> bool:
    """A torch tensor, recognised without importing torch."""
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def _is_pil(x: Any) -> bool:
    return type(x).__module__.startswith("PIL.") and hasattr(x, "mode") and hasattr(x, "size")


def is_single_image(x: Any) -> bool:
    """True for one image (path, PIL image, 2-/3-D array or 3-D tensor), False for a batch."""
    if isinstance(x, str | os.PathLike) or _is_pil(x):
        return True
    if isinstance(x, np.ndarray):
        return x.ndim in (2, 3)
    if _is_tensor(x):
        return x.dim() == 3
    return False


def as_batch(images: Any, metric: str) -> list[np.ndarray]:
    """The images of a batch as RGB uint8 arrays (H, W, 3); see the module docstring."""
    if is_single_image(images):
        raise MetricError(f"metric {metric!r}: score() takes a batch (a list of images, or a "
                          "4-D array/tensor); for one image use metric(image)")
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise MetricError(f"metric {metric!r}: a batch array must be 4-D (B, H, W, C), "
                              f"got shape {images.shape}")
        items: Sequence[Any] = list(images)
    elif _is_tensor(images):
        if images.dim() != 4:
            raise MetricError(f"metric {metric!r}: a batch tensor must be 4-D (B, C, H, W), "
                              f"got shape {tuple(images.shape)}")
        items = list(images)
    elif isinstance(images, list | tuple):
        items = images
    else:
        raise MetricError(f"metric {metric!r}: images must be a list of images (paths, PIL "
                          f"images, arrays or tensors), got {type(images).__name__}")
    return [as_rgb_uint8(item, metric, i) for i, item in enumerate(items)]


def as_rgb_uint8(image: Any, metric: str, index: int = 0) -> np.ndarray:
    """One image as an RGB uint8 array (H, W, 3); MetricError naming the image otherwise."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 \
            and image.shape[2] == 3:
        return image  # the common case: nothing to convert, no copy
    if isinstance(image, str | os.PathLike):
        from aigiqa.images import load_image

        return load_image(image)
    if _is_pil(image):
        from aigiqa.images import to_rgb_array

        return to_rgb_array(image)
    if _is_tensor(image):
        return _from_tensor(image, metric, index)
    if isinstance(image, np.ndarray):
        return _from_array(image, metric, index, layout="HWC")
    raise MetricError(f"metric {metric!r}: image {index} is a {type(image).__name__}; expected a "
                      "path, a PIL image, a numpy array or a torch tensor")


def _from_tensor(image: Any, metric: str, index: int) -> np.ndarray:
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise MetricError(f"metric {metric!r}: image {index} is a tensor of shape "
                          f"{tuple(image.shape)}; expected (C, H, W) with C = 1 or 3")
    array = image.detach().cpu()
    if array.is_floating_point():
        array = array.float()
    return _from_array(array.numpy(), metric, index, layout="CHW")


def _from_array(array: np.ndarray, metric: str, index: int, layout: str) -> np.ndarray:
    """uint8 or [0, 1]-float array in ``layout`` (HWC, HW or CHW) → RGB uint8 (H, W, 3)."""
    if layout == "CHW":
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or 0 in array.shape:
        raise MetricError(f"metric {metric!r}: image {index} has shape {array.shape}; expected "
                          "(H, W, 3) RGB, (H, W) gray or (H, W, 4) RGBA (tensors: (C, H, W))")
    if array.dtype == np.uint8:
        out = array
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise MetricError(f"metric {metric!r}: image {index} has NaN or infinite values")
        if array.min() < 0 or array.max() > 1:
            raise MetricError(f"metric {metric!r}: image {index} is floating point with values "
                              f"outside [0, 1] (min {array.min():g}, max {array.max():g}); "
                              "pass uint8 0-255 or floats in [0, 1]")
        out = np.rint(array.astype(np.float64) * 255.0).astype(np.uint8)
    else:
        raise MetricError(f"metric {metric!r}: image {index} has dtype {array.dtype}; expected "
                          "uint8 (0-255) or floating point in [0, 1]")
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    elif out.shape[2] == 4:
        out = out[:, :, :3]
    return np.ascontiguousarray(out)


def as_prompts(prompts: Any, n: int, metric: str) -> list[str | None] | None:
    """Prompts aligned with ``n`` images: None, a list/tuple of n, or one string when n == 1."""
    if prompts is None:
        return None
    if isinstance(prompts, str):
        if n != 1:
            raise MetricError(f"metric {metric!r}: one prompt string for {n} images; give a "
                              "list with one prompt per image")
        return [prompts]
    if not isinstance(prompts, Sequence):
        raise MetricError(f"metric {metric!r}: prompts must be a list of strings, got "
                          f"{type(prompts).__name__}")
    if len(prompts) != n:
        raise MetricError(f"metric {metric!r}: {n} images but {len(prompts)} prompts")
    return list(prompts)


def prompt_problem(prompt: Any) -> str | None:
    """Why ``prompt`` cannot be used by a prompt-aware metric (None if it can): the one rule."""
    if not isinstance(prompt, str):
        return "no prompt given"
    if not prompt.strip():
        return "the prompt is empty"
    return None
