"""Cheap no-reference baseline metrics: sharpness, colourfulness, entropy and RMS contrast.

All of them work on RGB uint8 arrays (H, W, 3) and need only numpy. Luma is ITU-R BT.601 as
MATLAB's ``rgb2gray`` computes it, Y = 0.298936 R + 0.587043 G + 0.114021 B (documented there as
0.2989, 0.5870, 0.1140; the unrounded weights sum to 1, so a gray pixel keeps its value), on the
0–255 scale. They are baselines: they measure one image property each, not quality.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from aigiqa.errors import MetricError
from aigiqa.metrics.base import Metric
from aigiqa.metrics.registry import register_metric

#: BT.601 luma weights of MATLAB ``rgb2gray`` (rows of the inverse of the NTSC YIQ matrix).
LUMA_WEIGHTS = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])


def check_rgb(metric: str, index: int, image: Any, min_size: int = 1) -> np.ndarray:
    """Return ``image`` if it is an RGB uint8 array (H, W, 3) with H, W >= min_size, else raise."""
    if not isinstance(image, np.ndarray):
        raise MetricError(f"metric {metric!r}: image {index} is a {type(image).__name__}, "
                          "not a numpy array")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise MetricError(f"metric {metric!r}: image {index} has shape {image.shape} and dtype "
                          f"{image.dtype}; expected RGB uint8 (H, W, 3)")
    if min(image.shape[:2]) < min_size:
        raise MetricError(f"metric {metric!r}: image {index} is {image.shape[1]}x{image.shape[0]} "
                          f"pixels; at least {min_size}x{min_size} needed")
    return image


def luma(image: np.ndarray) -> np.ndarray:
    """BT.601 luma (MATLAB ``rgb2gray`` weights) of an RGB uint8 image; float64 (H, W) in 0–255."""
    return image.astype(np.float64) @ LUMA_WEIGHTS


def luma_uint8(image: np.ndarray) -> np.ndarray:
    """Luma rounded to 8 bits, as ``rgb2gray`` returns for uint8 input; uint8 (H, W)."""
    return np.clip(np.rint(luma(image)), 0, 255).astype(np.uint8)


class _BaselineMetric(Metric):
    """Shared part: per-image loop with input checks; subclasses implement ``score_one``."""

    kind: ClassVar[str] = "baseline"
    needs_prompt: ClassVar[bool] = False
    min_size: ClassVar[int] = 1

    def score_batch(
        self, images: Sequence[np.ndarray], prompts: Sequence[str] | None = None
    ) -> np.ndarray:
        """Score RGB uint8 images (H, W, 3), one value per image; float64 array (len(images),)."""
        out = np.empty(len(images), dtype=np.float64)
        for i, image in enumerate(images):
            out[i] = self.score_one(check_rgb(self.name, i, image, self.min_size))
        return out

    def score_one(self, image: np.ndarray) -> float:
        raise NotImplementedError

    def _bad_option(self, key: str, allowed: str) -> MetricError:
        return MetricError(
            f"metric {self.name!r}: option {key}={self.options[key]!r} is invalid; {allowed}"
        )


@register_metric
class Sharpness(_BaselineMetric):
    """Variance of the Laplacian of the luma (valid region, no padding); luma units squared.

    Options: ``neighbours`` 4 (kernel [[0,1,0],[1,-4,1],[0,1,0]]) or 8 ([[1,1,1],[1,-8,1],[1,1,1]]).
    Pech-Pacheco et al., ICPR 2000. Noise raises it as much as detail does.
    """

    name: ClassVar[str] = "sharpness"
    lower_better: ClassVar[bool] = False
    score_range: ClassVar[tuple[float, float] | None] = (0.0, float("inf"))
    citation: ClassVar[str] = (
        "J. L. Pech-Pacheco, G. Cristóbal, J. Chamorro-Martínez, J. Fernández-Valdivia, "
        "\"Diatom autofocusing in brightfield microscopy: a comparative study\", ICPR 2000."
    )
    description: ClassVar[str] = "Variance of the Laplacian of the BT.601 luma (0-255 scale)."
    defaults: ClassVar[dict[str, Any]] = {"neighbours": 4}
    min_size: ClassVar[int] = 3

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options["neighbours"] not in (4, 8):
            raise self._bad_option("neighbours", "use 4 or 8")

    def score_one(self, image: np.ndarray) -> float:
        y = luma(image)
        centre = y[1:-1, 1:-1]
        lap = y[:-2, 1:-1] + y[2:, 1:-1] + y[1:-1, :-2] + y[1:-1, 2:] - 4.0 * centre
        if self.options["neighbours"] == 8:
            lap += y[:-2, :-2] + y[:-2, 2:] + y[2:, :-2] + y[2:, 2:] - 4.0 * centre
        return float(lap.var())


@register_metric
class Colourfulness(_BaselineMetric):
    """Hasler–Süsstrunk colourfulness M = σ_rgyb + 0.3 μ_rgyb on rg = R−G, yb = (R+G)/2 − B.

    σ_rgyb = sqrt(σ_rg² + σ_yb²), μ_rgyb = sqrt(μ_rg² + μ_yb²) over all pixels (RGB 0–255).
    Hasler & Süsstrunk, SPIE Human Vision and Electronic Imaging VIII, 2003.
    """

    name: ClassVar[str] = "colourfulness"
    lower_better: ClassVar[bool] = False
    score_range: ClassVar[tuple[float, float] | None] = (0.0, float("inf"))
    citation: ClassVar[str] = (
        "D. Hasler, S. Süsstrunk, \"Measuring colourfulness in natural images\", "
        "Proc. SPIE 5007, Human Vision and Electronic Imaging VIII, 2003."
    )
    description: ClassVar[str] = "Hasler-Süsstrunk colourfulness M (RGB on the 0-255 scale)."
    defaults: ClassVar[dict[str, Any]] = {}

    def score_one(self, image: np.ndarray) -> float:
        rgb = image.astype(np.float64)
        rg = rgb[..., 0] - rgb[..., 1]
        yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
        sigma = np.hypot(rg.std(), yb.std())
        mu = np.hypot(rg.mean(), yb.mean())
        return float(sigma + 0.3 * mu)


@register_metric
class Entropy(_BaselineMetric):
    """Shannon entropy (bits) of the histogram of the 8-bit luma (``rgb2gray`` rounding).

    Options: ``bins`` (2–256) equal-width bins over the 256 levels; the range is 0..log2(bins).
    Shannon 1948; MATLAB ``entropy`` uses 256 bins the same way.
    """

    name: ClassVar[str] = "entropy"
    lower_better: ClassVar[bool] = False
    score_range: ClassVar[tuple[float, float] | None] = (0.0, 8.0)
    citation: ClassVar[str] = (
        "C. E. Shannon, \"A mathematical theory of communication\", "
        "Bell System Technical Journal 27, 1948."
    )
    description: ClassVar[str] = "Shannon entropy in bits of the 8-bit BT.601 luma histogram."
    defaults: ClassVar[dict[str, Any]] = {"bins": 256}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        bins = self.options["bins"]
        if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= 256:
            raise self._bad_option("bins", "use an integer from 2 to 256")

    def score_one(self, image: np.ndarray) -> float:
        levels = luma_uint8(image).ravel().astype(np.int64)
        bins = self.options["bins"]
        counts = np.bincount(levels * bins // 256, minlength=bins)
        p = counts[counts > 0] / levels.size
        return float(max(0.0, -(p * np.log2(p)).sum()))


@register_metric
class Contrast(_BaselineMetric):
    """RMS contrast: standard deviation of the luma scaled to [0, 1]; range 0–0.5.

    Peli, "Contrast in complex images", JOSA A 7(10), 1990.
    """

    name: ClassVar[str] = "contrast"
    lower_better: ClassVar[bool] = False
    score_range: ClassVar[tuple[float, float] | None] = (0.0, 0.5)
    citation: ClassVar[str] = (
        "E. Peli, \"Contrast in complex images\", J. Opt. Soc. Am. A 7(10), 2032-2040, 1990."
    )
    description: ClassVar[str] = "RMS contrast: std of the BT.601 luma on a 0-1 scale."
    defaults: ClassVar[dict[str, Any]] = {}

    def score_one(self, image: np.ndarray) -> float:
        return float((luma(image) / 255.0).std())
