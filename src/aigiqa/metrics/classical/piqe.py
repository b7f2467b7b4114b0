"""PIQE: Perception-based Image Quality Evaluator, as MATLAB's ``piqe`` (0-100, lower is better).

Venkatanath N., Praneeth D., Maruthi Chandrasekhar Bh., S. S. Channappayya and S. S. Medasani,
"Blind image quality evaluation using perception based features", NCC 2015.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from aigiqa.errors import MetricError
from aigiqa.metrics.base import Metric
from aigiqa.metrics.registry import register_metric

BLOCK = 16
ACTIVITY_THRESHOLD = 0.1
IMPAIRED_THRESHOLD = 0.1
SEGMENT = 6


@dataclass(frozen=True, slots=True)
class PiqeResult:
    """PIQE score and MATLAB's three block masks, each bool (H, W) of the input's size."""

    score: float
    activity: np.ndarray
    artifacts: np.ndarray
    noise: np.ndarray


def piqe(image: np.ndarray) -> PiqeResult:
    """PIQE of an RGB uint8 (H, W, 3) or gray (H, W) 0-255 image, with its masks.

    The image is padded (replicate, after the last row/column) to a multiple of 16, made gray
    with MATLAB's rgb2gray (uint8) and normalised (Gaussian 7x7, sigma 7/6, replicate); each 16x16
    block with variance > 0.1 is active and scores 1 - var if an edge segment of 6 pixels is flat
    (std < 0.1) and var if it looks noisy. Score = 100 (sum + 1) / (active blocks + 1).
    """
    from aigiqa.metrics.classical import _matlab

    gray = _matlab.gray_image(image, "piqe")
    height, width = gray.shape
    if height < BLOCK or width < BLOCK:
        raise MetricError(
            f"metric 'piqe': image of {height}x{width} pixels is too small; PIQE needs at least "
            f"{BLOCK}x{BLOCK} pixels"
        )
    pad_rows, pad_cols = -height % BLOCK, -width % BLOCK
    im = np.pad(gray, ((0, pad_rows), (0, pad_cols)), mode="edge")
    norm, _ = _matlab.local_normalize(im, "replicate")
    rows, cols = im.shape[0] // BLOCK, im.shape[1] // BLOCK
    blocks = norm.reshape(rows, BLOCK, cols, BLOCK).transpose(0, 2, 1, 3)
    blocks = blocks.reshape(rows * cols, BLOCK, BLOCK)
    var = blocks.reshape(len(blocks), -1).var(axis=1, ddof=1)
    active = var > ACTIVITY_THRESHOLD
    impaired = _flat_edge_segment(blocks)
    noisy = _noisy(blocks, var)
    dist = np.where(active & impaired, 1 - var, 0.0) + np.where(active & noisy, var, 0.0)
    score = 100.0 * (dist.sum() + 1) / (active.sum() + 1)

    def mask(flags: np.ndarray) -> np.ndarray:
        grid = flags.reshape(rows, cols)
        return np.kron(grid, np.ones((BLOCK, BLOCK), dtype=bool))[:height, :width]

    return PiqeResult(float(score), mask(active), mask(active & impaired), mask(active & noisy))


def _flat_edge_segment(blocks: np.ndarray) -> np.ndarray:
    """Whether any 6-pixel segment along any of a block's 4 edges has std < 0.1: (n,)."""
    edges = np.stack([blocks[:, 0, :], blocks[:, :, -1], blocks[:, -1, :], blocks[:, :, 0]], 1)
    segments = np.lib.stride_tricks.sliding_window_view(edges, SEGMENT, axis=2)
    return (segments.std(axis=3, ddof=1) < IMPAIRED_THRESHOLD).any(axis=(1, 2))


def _noisy(blocks: np.ndarray, var: np.ndarray) -> np.ndarray:
    """MATLAB's noise criterion: sigma > 2·|sigma - csd| / max(sigma, csd), csd the ratio of
    the std of the two centre columns to the std of the other columns (as MATLAB removes them:
    columns 8 and 10, 1-based, leaving 9 in the surround)."""
    n = len(blocks)
    sigma = np.sqrt(var)
    centre = blocks[:, :, 7:9].reshape(n, -1)
    surround = np.delete(blocks, [7, 9], axis=2).reshape(n, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        csd = centre.std(axis=1, ddof=1) / surround.std(axis=1, ddof=1)
        csd = np.nan_to_num(csd, nan=0.0)
        beta = np.abs(sigma - csd) / np.maximum(sigma, csd)
    return sigma > 2 * beta


@register_metric
class Piqe(Metric):
    """PIQE as MATLAB's ``piqe``: share of distorted active 16x16 blocks, 0-100, lower is better.

    Flat images have no active block and score 100, as MATLAB documents. ``piqe(image)`` in
    this module also returns the activity, noticeable-artifact and noise masks.
    """

    name: ClassVar[str] = "piqe"
    kind: ClassVar[str] = "classical"
    lower_better: ClassVar[bool] = True
    score_range: ClassVar[tuple[float, float] | None] = (0.0, 100.0)
    citation: ClassVar[str] = (
        "N. Venkatanath, D. Praneeth, M. C. Bh, S. S. Channappayya, S. S. Medasani, Blind image "
        "quality evaluation using perception based features, NCC 2015"
    )
    description: ClassVar[str] = "PIQE, as MATLAB's piqe"
    defaults: ClassVar[dict[str, Any]] = {}
    version: ClassVar[str] = "1"

    def score_batch(
        self, images: Sequence[np.ndarray], prompts: Sequence[str] | None = None
    ) -> np.ndarray:
        """PIQE of each RGB uint8 (H, W, 3) image; float64 (n,)."""
        return np.array([piqe(im).score for im in images], dtype=np.float64)

    def masks(self, image: np.ndarray) -> PiqeResult:
        """Score and masks of one image."""
        return piqe(image)
