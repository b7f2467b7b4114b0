"""CNNIQA (Kang et al. 2014): a shallow CNN on locally normalised 32x32 grey patches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from PIL import Image

from aigiqa.errors import MetricError
from aigiqa.metrics.learned.base import LEARNED_DEFAULTS, LearnedMetric
from aigiqa.metrics.registry import register_metric

if TYPE_CHECKING:  # pragma: no cover
    import torch

PATCH = 32


@register_metric
class CNNIQA(LearnedMetric):
    """CNNIQA: mean of per-patch scores over all non-overlapping 32x32 patches.

    Preprocessing as the official test code (lidq92/CNNIQA): grey (Pillow "L"), non-overlapping
    32x32 patches (stride 32), each divided by its 3x3 local std + 1 after removing the 3x3 local
    mean. When training, ``train_patches`` patches per image are drawn at random (seeded).
    Kang et al., CVPR 2014.
    """

    name: ClassVar[str] = "cnniqa"
    lower_better: ClassVar[bool] = False
    citation: ClassVar[str] = (
        "L. Kang, P. Ye, Y. Li, D. Doermann. Convolutional Neural Networks for No-Reference "
        "Image Quality Assessment. CVPR 2014, pp. 1733-1740.")
    description: ClassVar[str] = "Shallow CNN on local-normalised grey patches (random init " \
        "until trained or given checkpoint=, e.g. the official CNNIQA-LIVE)."
    defaults: ClassVar[dict[str, Any]] = {**LEARNED_DEFAULTS, "train_patches": 32}
    #: patches of the whole image: at most 4 MPix (4,096 patches) per forward pass
    max_batch_pixels: ClassVar[int | None] = 4 * 1024 * 1024

    def build_model(self) -> torch.nn.Module:
        from aigiqa.metrics.learned.networks.cnniqa import CNNIQANet

        return CNNIQANet()

    def transform(self, image: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        import torch

        from aigiqa.metrics.learned.networks.cnniqa import cnniqa_patches

        grey = np.asarray(Image.fromarray(image).convert("L"))
        patches = cnniqa_patches(grey, PATCH, PATCH)
        if len(patches) == 0:
            h, w = grey.shape
            raise MetricError(f"metric {self.name!r}: image of {w}x{h} pixels is too small; "
                              f"it needs at least {PATCH + 1}x{PATCH + 1}")
        n = int(self.options["train_patches"])
        if rng is not None and len(patches) > n:
            patches = patches[np.sort(rng.choice(len(patches), n, replace=False))]
        return torch.from_numpy(patches)

    def collate(self, items: Sequence[torch.Tensor]) -> torch.Tensor:
        """Pad the per-image patch stacks to (B, Pmax, 1, 32, 32); padding patches are NaN."""
        import torch

        most = max(len(t) for t in items)
        out = torch.full((len(items), most, *items[0].shape[1:]), float("nan"))
        for i, t in enumerate(items):
            out[i, :len(t)] = t
        return out

    def forward(self, model: torch.nn.Module, batch: torch.Tensor,
                prompts: Sequence[str] | None) -> torch.Tensor:
        import torch

        valid = ~torch.isnan(batch[:, :, 0, 0, 0])
        owner = torch.arange(batch.shape[0], device=batch.device).unsqueeze(1).expand_as(valid)
        scores = model(batch[valid])
        total = torch.zeros(batch.shape[0], dtype=scores.dtype, device=batch.device)
        total = total.index_add(0, owner[valid], scores)
        return total / valid.sum(dim=1)
