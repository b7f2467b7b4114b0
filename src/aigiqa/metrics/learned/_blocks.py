"""Preprocessing shared by the classic learned metrics, matching torchvision's PIL transforms.

Pure numpy/Pillow (cheap to import; torch only inside :func:`resize_bicubic`). Images are RGB
uint8 arrays (H, W, 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from aigiqa.errors import MetricError

if TYPE_CHECKING:  # pragma: no cover
    import torch


def resize_exact(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear (antialiased, Pillow) resize to (height, width): ``transforms.Resize((h, w))``."""
    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def resize_shorter_tv(image: np.ndarray, size: int) -> np.ndarray:
    """Shorter side to ``size``, longer side ``int(size * long / short)``, bilinear (Pillow).

    The rule of ``torchvision.transforms.Resize(size)`` on a PIL image.
    """
    h, w = image.shape[:2]
    if h <= w:
        new_h, new_w = size, int(size * w / h)
    else:
        new_h, new_w = int(size * h / w), size
    return resize_exact(image, new_h, new_w)


def check_min_size(name: str, image: np.ndarray, size: int) -> None:
    """Raise MetricError if the image is smaller than size×size."""
    h, w = image.shape[:2]
    if h < size or w < size:
        raise MetricError(f"metric {name!r}: image of {w}x{h} pixels is smaller than the "
                          f"{size}x{size} crop the model needs")


def five_crop(image: np.ndarray, size: int) -> list[np.ndarray]:
    """Four corners and the centre, as ``transforms.FiveCrop(size)`` (same order)."""
    h, w = image.shape[:2]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), (top, left)]
    return [image[t:t + size, s:s + size] for t, s in corners]


def random_crops(image: np.ndarray, size: int, count: int, seed: int) -> list[np.ndarray]:
    """``count`` size×size crops at positions drawn from ``numpy.random.default_rng(seed)``.

    The positions depend only on the seed and the image size, so a score never depends on batch
    order or on earlier calls.
    """
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    out = []
    for _ in range(count):
        top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        out.append(image[top:top + size, left:left + size])
    return out


def random_crop(image: np.ndarray, size: int, rng: np.random.Generator,
                flip: bool = True) -> np.ndarray:
    """One random size×size crop (training), horizontally flipped with probability 1/2."""
    h, w = image.shape[:2]
    top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    out = image[top:top + size, left:left + size]
    if flip and rng.random() < 0.5:
        out = out[:, ::-1]
    return out


def stack_normalised(crops: Sequence[np.ndarray], mean: Sequence[float],
                     std: Sequence[float]) -> torch.Tensor:
    """Crops (h, w, 3) uint8 -> (K, 3, h, w) float32, /255 then (x - mean) / std."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(np.stack(crops))).permute(0, 3, 1, 2).float()
    x = x.div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


def mean_over_crops(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Run ``model`` on (B, K, C, h, w) crops -> (B,) mean of the K crop scores."""
    b, k = batch.shape[:2]
    return model(batch.flatten(0, 1)).reshape(b, k).mean(dim=1)


def resize_bicubic(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize to (height, width) as OpenCV's ``cv2.resize(…, INTER_CUBIC)`` computes it.

    The same kernel (cubic convolution, a = -0.75), pixel-centre alignment, replicated border and
    no antialiasing when shrinking; computed by ``torch.nn.functional.interpolate`` in float64 and
    rounded to uint8. OpenCV's own integer arithmetic rounds otherwise: at most one grey level
    apart, on up to 2e-5 of the values of noise images and 0.2 % (at most 1.3 %) of those of
    demo images (``benchmarks/resize_cv2.py``)."""
    import torch

    if image.shape[:2] == (height, width):
        return image
    x = torch.tensor(image, dtype=torch.float64).permute(2, 0, 1)[None]  # a copy: any array
    y = torch.nn.functional.interpolate(x, size=(height, width), mode="bicubic",
                                        align_corners=False)
    return y.round_().clamp_(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
