"""StairIQA (Sun et al. 2023): staircase fusion of ResNet-50 hierarchical features."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from aigiqa.errors import MetricError
from aigiqa.metrics.learned._blocks import (
    check_min_size,
    five_crop,
    random_crop,
    resize_shorter_tv,
    stack_normalised,
)
from aigiqa.metrics.learned.base import LEARNED_DEFAULTS, LearnedMetric
from aigiqa.metrics.registry import register_metric

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Same order as networks.stairiqa.HEADS (kept here so that importing stays cheap).
HEADS = ("flive", "flive_patch", "live_challenge", "koniq10k", "spaq", "bid")


@register_metric
class StairIQA(LearnedMetric):
    """StairIQA: mean score of the five 320x320 crops (FiveCrop) of the image resized to 384.

    Preprocessing as the official test code (sunwei925/StairIQA, ``--test_method five``): shorter
    side to ``resize`` (384), ``FiveCrop(crop)`` (320), ImageNet normalisation. ``head`` picks one
    of the six database-specific regressors of the released model (KonIQ-10k by default).
    Training: a random crop (no flip, as the official training). Sun et al., IEEE JSTSP 2023.
    """

    name: ClassVar[str] = "stairiqa"
    requires: ClassVar[tuple[str, ...]] = ("torch", "torchvision")
    lower_better: ClassVar[bool] = False
    citation: ClassVar[str] = (
        "W. Sun, X. Min, D. Tu, S. Ma, G. Zhai. Blind Quality Assessment for in-the-Wild Images "
        "via Hierarchical Feature Fusion and Iterative Mixed Database Training. IEEE JSTSP "
        "17(6):1178-1192, 2023.")
    description: ClassVar[str] = "ResNet-50 staircase fusion, six heads (random init until " \
        "trained or given checkpoint=, an official StairIQA checkpoint)."
    defaults: ClassVar[dict[str, Any]] = {**LEARNED_DEFAULTS, "head": "koniq10k", "resize": 384,
                                          "crop": 320}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options["head"] not in HEADS:
            raise MetricError(f"metric {self.name!r}: option head={self.options['head']!r} is "
                              f"not one of {', '.join(HEADS)}")

    def build_model(self) -> torch.nn.Module:
        from aigiqa.metrics.learned.networks.stairiqa import StairIQANet

        return StairIQANet()

    def convert_state_dict(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        from aigiqa.metrics.learned.networks.stairiqa import convert_official

        return convert_official(state_dict)

    def transform(self, image: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        size = int(self.options["crop"])
        image = resize_shorter_tv(image, int(self.options["resize"]))
        check_min_size(self.name, image, size)
        crops = [random_crop(image, size, rng, flip=False)] if rng is not None \
            else five_crop(image, size)
        return stack_normalised(crops, self.mean, self.std)

    def forward(self, model: torch.nn.Module, batch: torch.Tensor,
                prompts: Sequence[str] | None) -> torch.Tensor:
        b, k = batch.shape[:2]
        head = HEADS.index(self.options["head"])
        return model(batch.flatten(0, 1))[:, head].reshape(b, k).mean(dim=1)
