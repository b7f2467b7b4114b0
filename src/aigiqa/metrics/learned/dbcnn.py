"""DBCNN (Zhang et al. 2020): bilinear pooling of VGG-16 and S-CNN features."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from aigiqa.errors import MetricError
from aigiqa.metrics.learned._blocks import (
    check_min_size,
    random_crop,
    resize_shorter_tv,
    stack_normalised,
)
from aigiqa.metrics.learned.base import LEARNED_DEFAULTS, LearnedMetric
from aigiqa.metrics.registry import register_metric

if TYPE_CHECKING:  # pragma: no cover
    import torch


@register_metric
class DBCNN(LearnedMetric):
    """DBCNN: the whole image at its own resolution (as the official test code), one score.

    Preprocessing as the official code (zwx8981/DBCNN-PyTorch): ToTensor + ImageNet
    normalisation of the full image (``resize`` > 0 first resizes the shorter side to that many
    pixels, for very large images). Training: a random ``train_crop`` crop with a random
    horizontal flip (448 as for LIVE Challenge). Only images of the same size share a forward pass
    (``batch_size`` 1 by default: VGG-16 at full resolution is large). Zhang et al., IEEE TCSVT
    2020.
    """

    name: ClassVar[str] = "dbcnn"
    requires: ClassVar[tuple[str, ...]] = ("torch", "torchvision")
    lower_better: ClassVar[bool] = False
    citation: ClassVar[str] = (
        "W. Zhang, K. Ma, J. Yan, D. Deng, Z. Wang. Blind Image Quality Assessment Using a Deep "
        "Bilinear Convolutional Neural Network. IEEE TCSVT 30(1):36-47, 2020.")
    description: ClassVar[str] = "VGG-16 x S-CNN bilinear pooling (random init until trained " \
        "or given checkpoint=, an official DBCNN checkpoint)."
    defaults: ClassVar[dict[str, Any]] = {**LEARNED_DEFAULTS, "batch_size": 1, "resize": 0,
                                          "train_crop": 448}

    #: full-resolution input: at most 8 MPix per forward pass
    max_batch_pixels: ClassVar[int | None] = 8 * 1024 * 1024

    def batch_group(self, image: np.ndarray) -> tuple:
        return tuple(image.shape[:2])  # full resolution: only equal sizes stack

    def build_model(self) -> torch.nn.Module:
        from aigiqa.metrics.learned.networks.dbcnn import DBCNNNet

        return DBCNNNet()

    def convert_state_dict(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        from aigiqa.metrics.learned.networks.dbcnn import convert_official

        return convert_official(state_dict)

    def transform(self, image: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        if int(self.options["resize"]) > 0:
            image = resize_shorter_tv(image, int(self.options["resize"]))
        if rng is not None:
            size = int(self.options["train_crop"])
            check_min_size(self.name, image, size)
            image = random_crop(image, size, rng)
        else:
            check_min_size(self.name, image, 32)
        return stack_normalised([image], self.mean, self.std)[0]

    def collate(self, items: Sequence[torch.Tensor]) -> torch.Tensor:
        import torch

        shapes = {tuple(t.shape) for t in items}
        if len(shapes) > 1:
            raise MetricError(f"metric {self.name!r}: images of different sizes "
                              f"{sorted(shapes)} in one batch; use batch_size=1 or resize=N")
        return torch.stack(list(items))

    def forward(self, model: torch.nn.Module, batch: torch.Tensor,
                prompts: Sequence[str] | None) -> torch.Tensor:
        return model(batch)
