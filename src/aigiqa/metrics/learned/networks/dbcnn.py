"""DBCNN network: VGG-16 (authentic distortions) and S-CNN (synthetic distortions) features,
bilinearly pooled (Zhang et al. 2020).

Key names follow the official code (zwx8981/DBCNN-PyTorch, ``DBCNN``); its checkpoints are saved
from ``nn.DataParallel`` (``module.`` prefix, removed by :func:`convert_official`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from aigiqa.metrics.learned.networks._common import strip_prefix


def scnn_features() -> nn.Sequential:
    """The S-CNN trunk (nine 3x3 conv + BN + ReLU, four of stride 2), 128 output channels."""
    layers: list[nn.Module] = []
    plan = [(3, 48, 1), (48, 48, 2), (48, 64, 1), (64, 64, 2), (64, 64, 1), (64, 64, 2),
            (64, 128, 1), (128, 128, 1), (128, 128, 2)]
    for cin, cout, stride in plan:
        layers += [nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class DBCNNNet(nn.Module):
    """DBCNN: (N, 3, H, W) ImageNet-normalised images (any size >= 32) -> (N,) quality."""

    def __init__(self) -> None:
        super().__init__()
        # torchvision's VGG-16 convolutional trunk without its last max-pool (the classifier of
        # ``vgg16()`` is never used, so it is not built: 120M parameters less to initialise).
        self.features1 = nn.Sequential(*list(make_layers(cfgs["D"]).children())[:-1])
        self.features2 = scnn_features()
        self.fc = nn.Linear(512 * 128, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.features1(x)
        n, _, h, w = x1.shape
        x2 = self.features2(x)
        if x2.shape[2:] != x1.shape[2:]:
            x2 = F.interpolate(x2, size=(h, w), mode="bilinear", align_corners=True)
        pooled = torch.bmm(x1.flatten(2), x2.flatten(2).transpose(1, 2)) / (h * w)
        pooled = F.normalize(torch.sqrt(pooled.flatten(1) + 1e-8))
        return self.fc(pooled).squeeze(1)


def convert_official(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official DBCNN checkpoint (DataParallel) -> our keys."""
    return strip_prefix(state)
