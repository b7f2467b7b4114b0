"""HyperIQA (Su et al. 2020): a hyper network predicts the weights of the quality regressor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from aigiqa.errors import MetricError
from aigiqa.metrics.learned._blocks import (
    check_min_size,
    mean_over_crops,
    random_crop,
    random_crops,
    resize_exact,
    stack_normalised,
)
from aigiqa.metrics.learned.base import LEARNED_DEFAULTS, LearnedMetric, checkpoint_table
from aigiqa.metrics.registry import register_metric

if TYPE_CHECKING:  # pragma: no cover
    import torch

CROP = 224
#: Crops per image of each inference protocol.
PROTOCOL_CROPS = {"demo": 10, "paper": 25}


@register_metric
class HyperIQA(LearnedMetric):
    """HyperIQA: mean score of random 224x224 crops of the image resized to 512x384.

    Preprocessing as the official code (SSL92/hyperIQA): bilinear resize to 512 (height) x 384
    (width), random 224 crops, ImageNet normalisation. ``protocol=demo``: 10 crops, as
    ``demo.py``; ``protocol=paper``: 25, the test protocol of the paper and of
    ``train_test_IQA.py`` (``test_patch_num=25``), with which ``koniq_pretrained.pkl`` was
    tested. ``auto`` (default): ``paper`` for ``koniq_pretrained.pkl``, ``demo`` for other
    weights. ``num_crops=N`` (N >= 1) overrides the protocol's count (0: the protocol's). The
    crop positions are drawn from ``numpy.random.default_rng(seed)``, the same for every image
    (deterministic). Training: one random crop with a random horizontal flip. Su et al., CVPR
    2020.
    """

    name: ClassVar[str] = "hyperiqa"
    requires: ClassVar[tuple[str, ...]] = ("torch", "torchvision")
    lower_better: ClassVar[bool] = False
    citation: ClassVar[str] = (
        "S. Su, Q. Yan, Y. Zhu, C. Zhang, X. Ge, J. Sun, Y. Zhang. Blindly Assess Image Quality "
        "in the Wild Guided by a Self-Adaptive Hyper Network. CVPR 2020, pp. 3667-3676.")
    description: ClassVar[str] = "ResNet-50 + hyper network (random init until trained or " \
        "given checkpoint=, e.g. the official koniq_pretrained.pkl)."
    defaults: ClassVar[dict[str, Any]] = {**LEARNED_DEFAULTS, "protocol": "auto",
                                          "num_crops": 0, "seed": 0, "height": 512,
                                          "width": 384}
    protocols: ClassVar[dict[str, str]] = {
        "demo": "mean of 10 random 224 crops of the 512x384 resize (demo.py)",
        "paper": "mean of 25 random 224 crops of the 512x384 resize (paper, train_test_IQA.py)",
    }
    checkpoint_protocols: ClassVar[dict[str, str]] = checkpoint_table({
        "hyperiqa/koniq_pretrained.pkl": "paper"})
    default_protocol: ClassVar[str] = "demo"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if int(self.options["num_crops"]) < 0:
            raise MetricError(f"metric {self.name!r}: option num_crops must be >= 1 (or 0: as "
                              "the protocol)")

    def crop_count(self) -> int:
        """Crops per image at inference: ``num_crops``, or the protocol's count when 0."""
        return int(self.options["num_crops"]) or PROTOCOL_CROPS[self.inference_protocol()]

    def build_model(self) -> torch.nn.Module:
        from aigiqa.metrics.learned.networks.hyperiqa import HyperNet

        return HyperNet(16, 112, 224, 112, 56, 28, 14, 7)

    def parameter_groups(self, model: torch.nn.Module, lr: float) -> list[dict[str, Any]]:
        """As the official solver: the ResNet + LDA part at ``lr``, the hyper network at 10x."""
        backbone, hyper = [], []
        for name, param in model.named_parameters():
            if param.requires_grad:
                (backbone if name.startswith("res.") else hyper).append(param)
        return [{"params": backbone, "lr": lr}, {"params": hyper, "lr": lr * 10}]

    def transform(self, image: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        resized = resize_exact(image, int(self.options["height"]), int(self.options["width"]))
        check_min_size(self.name, resized, CROP)
        if rng is not None:
            crops = [random_crop(resized, CROP, rng)]
        else:
            crops = random_crops(resized, CROP, self.crop_count(), int(self.options["seed"]))
        return stack_normalised(crops, self.mean, self.std)

    def forward(self, model: torch.nn.Module, batch: torch.Tensor,
                prompts: Sequence[str] | None) -> torch.Tensor:
        return mean_over_crops(model, batch)
