"""MUSIQ (Ke et al. 2021): multi-scale image quality transformer on native-resolution patches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from aigiqa.errors import MetricError
from aigiqa.metrics.learned.base import LEARNED_DEFAULTS, LearnedMetric
from aigiqa.metrics.registry import register_metric

if TYPE_CHECKING:  # pragma: no cover
    import torch


@register_metric
class MUSIQ(LearnedMetric):
    """MUSIQ: one pass over tokens from the image at longer side 224 and 384 and at its own size.

    Preprocessing as the PyTorch port whose checkpoint format is used (pyiqa): RGB in [-1, 1],
    bicubic aspect-preserving resizes (no antialias), 32x32 patches with TensorFlow SAME zero
    padding, hashed 10x10 spatial positions, scale index; the two resized scales padded to
    49 and 144 tokens, the original resolution with all its patches (``original_max_len`` -1;
    N >= 0 pads/cuts to N tokens). Padding tokens are masked, so a batch may mix image sizes.
    ``num_class`` 10 for the AVA checkpoint (score = mean of the predicted distribution).
    Training: the same tokens of a randomly flipped image. Ke et al., ICCV 2021.
    """

    name: ClassVar[str] = "musiq"
    lower_better: ClassVar[bool] = False
    citation: ClassVar[str] = (
        "J. Ke, Q. Wang, Y. Wang, P. Milanfar, F. Yang. MUSIQ: Multi-scale Image Quality "
        "Transformer. ICCV 2021, pp. 5148-5157.")
    description: ClassVar[str] = "Multi-scale patch transformer (random init until trained " \
        "or given checkpoint=, a MUSIQ checkpoint in the pyiqa PyTorch port's format)."
    defaults: ClassVar[dict[str, Any]] = {**LEARNED_DEFAULTS, "num_class": 1,
                                          "original_max_len": -1}
    #: tokens of the whole image: at most 4 MPix (4,096 native-resolution patches) per pass
    max_batch_pixels: ClassVar[int | None] = 4 * 1024 * 1024
    #: Longer sides of the resized scales and patch size (the released models' configuration).
    longer_sides: ClassVar[tuple[int, ...]] = (224, 384)
    patch_size: ClassVar[int] = 32

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if int(self.options["num_class"]) < 1:
            raise MetricError(f"metric {self.name!r}: option num_class must be >= 1")

    def build_model(self) -> torch.nn.Module:
        from aigiqa.metrics.learned.networks.musiq import MUSIQNet

        return MUSIQNet(patch_size=self.patch_size, num_class=int(self.options["num_class"]))

    def transform(self, image: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        import torch

        from aigiqa.metrics.learned.networks.musiq import multiscale_patches

        if rng is not None and rng.random() < 0.5:
            image = image[:, ::-1]
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
        return multiscale_patches((x - 0.5) * 2, self.patch_size, 10, self.longer_sides,
                                  int(self.options["original_max_len"]))

    def collate(self, items: Sequence[torch.Tensor]) -> torch.Tensor:
        """Pad token sequences with masked (all-zero) tokens to the longest: (B, L, D)."""

        longest = max(len(t) for t in items)
        out = items[0].new_zeros(len(items), longest, items[0].shape[1])
        for i, t in enumerate(items):
            out[i, :len(t)] = t
        return out

    def forward(self, model: torch.nn.Module, batch: torch.Tensor,
                prompts: Sequence[str] | None) -> torch.Tensor:
        return model(batch)
