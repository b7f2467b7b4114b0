"""MANIQA (Yang et al. 2022): multi-dimension attention over ViT features."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from aigiqa.errors import MetricError
from aigiqa.metrics.learned._blocks import (
    check_min_size,
    mean_over_crops,
    random_crop,
    resize_bicubic,
    stack_normalised,
)
from aigiqa.metrics.learned.base import LEARNED_DEFAULTS, LearnedMetric, checkpoint_table
from aigiqa.metrics.registry import register_metric

if TYPE_CHECKING:  # pragma: no cover
    import torch


def official_crops(image: np.ndarray, size: int, count: int, seed: int) -> list[np.ndarray]:
    """``count`` size×size crops as the official ``predict_one_image.py``, seeded.

    Positions are ``randint(0, side - size)`` (upper bound exclusive, as ``np.random.randint``
    there; 0 when the side equals the crop) drawn from ``numpy.random.default_rng(seed)``.
    """
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    out = []
    for _ in range(count):
        top = int(rng.integers(0, max(1, h - size)))
        left = int(rng.integers(0, max(1, w - size)))
        out.append(image[top:top + size, left:left + size])
    return out


@register_metric
class MANIQA(LearnedMetric):
    """MANIQA: the score of the image under one of two inference protocols, inputs in [-1, 1].

    ``protocol=crops``: the mean over ``num_crops`` random 224x224 crops at full resolution (20
    by default), as the official ``predict_one_image.py`` (IIGROUP/MANIQA); the positions come
    from ``numpy.random.default_rng(seed)``, the same for every image of a given size.
    ``protocol=resize``: the whole image resized to 224x224 (bicubic as OpenCV's INTER_CUBIC)
    and scored once, as the official training and validation on KonIQ-10k (its ``Koniq10k``
    dataset resizes with ``cv2.resize(…, (224, 224), INTER_CUBIC)``), hence how
    ``ckpt_koniq10k.pt`` was trained and validated. ``auto`` (default): ``resize`` for
    ``ckpt_koniq10k.pt``, ``crops`` for ``ckpt_kadid10k.pt`` (trained on crops of the full
    512x384 images), for weights trained here and for the random default weights. RGB / 255,
    ``(x - 0.5) / 0.5``. Training: one random crop (``crops``) or the resized image
    (``resize``), with a random horizontal flip. Yang et al., CVPRW 2022.
    """

    name: ClassVar[str] = "maniqa"
    requires: ClassVar[tuple[str, ...]] = ("torch", "timm")
    lower_better: ClassVar[bool] = False
    citation: ClassVar[str] = (
        "S. Yang, T. Wu, S. Shi, S. Lao, Y. Gong, M. Cao, J. Wang, Y. Yang. MANIQA: Multi-"
        "dimension Attention Network for No-Reference Image Quality Assessment. CVPR "
        "Workshops (NTIRE) 2022, pp. 1191-1200.")
    description: ClassVar[str] = "ViT-B/8 + transposed attention + Swin (random init until " \
        "trained or given checkpoint=, e.g. the official ckpt_koniq10k.pt; needs timm)."
    defaults: ClassVar[dict[str, Any]] = {**LEARNED_DEFAULTS, "protocol": "auto",
                                          "num_crops": 20, "seed": 0}
    protocols: ClassVar[dict[str, str]] = {
        "crops": "mean of num_crops random 224 crops at full resolution (predict_one_image.py)",
        "resize": "whole image resized to 224x224 (cv2 bicubic), scored once (KonIQ training)",
    }
    checkpoint_protocols: ClassVar[dict[str, str]] = checkpoint_table({
        "maniqa/ckpt_koniq10k.pt": "resize", "maniqa/ckpt_kadid10k.pt": "crops"})
    default_protocol: ClassVar[str] = "crops"
    mean: ClassVar[tuple[float, float, float]] = (0.5, 0.5, 0.5)
    std: ClassVar[tuple[float, float, float]] = (0.5, 0.5, 0.5)
    #: Input side of the network (224 for the official ViT-B/8 configuration).
    crop_size: ClassVar[int] = 224

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if int(self.options["num_crops"]) < 1:
            raise MetricError(f"metric {self.name!r}: option num_crops must be >= 1")

    def build_model(self) -> torch.nn.Module:
        from aigiqa.metrics.learned.networks.maniqa import MANIQANet

        return MANIQANet()

    def transform(self, image: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        if self.inference_protocol() == "resize":
            whole = resize_bicubic(image, self.crop_size, self.crop_size)
            if rng is not None and rng.random() < 0.5:
                whole = whole[:, ::-1]
            return stack_normalised([whole], self.mean, self.std)
        check_min_size(self.name, image, self.crop_size)
        if rng is not None:
            crops = [random_crop(image, self.crop_size, rng)]
        else:
            crops = official_crops(image, self.crop_size, int(self.options["num_crops"]),
                                   int(self.options["seed"]))
        return stack_normalised(crops, self.mean, self.std)

    def forward(self, model: torch.nn.Module, batch: torch.Tensor,
                prompts: Sequence[str] | None) -> torch.Tensor:
        return mean_over_crops(model, batch)
