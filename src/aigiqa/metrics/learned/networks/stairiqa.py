"""StairIQA network: ResNet-50 with staircase fusion of the hierarchical features and six
database-specific regression heads (Sun et al. 2023).

Key names follow the official release (sunwei925/StairIQA, ``models/ResNet_staircase.resnet50``
saved from ``nn.DataParallel``: ``module.`` prefix, removed by :func:`convert_official`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from aigiqa.metrics.learned.networks._common import resnet50_trunk, strip_prefix

#: Order of the six regression heads (quality1 .. quality6) in the official model.
HEADS = ("flive", "flive_patch", "live_challenge", "koniq10k", "spaq", "bid")


def _stair(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin // 4, 1, bias=False),
        nn.Conv2d(cin // 4, cin // 4, 3, stride, 1, bias=False),
        nn.Conv2d(cin // 4, cout, 1, bias=False),
    )


class StairIQANet(nn.Module):
    """StairIQA: (N, 3, H, W) ImageNet-normalised crops -> (N, 6) scores, one per head."""

    def __init__(self) -> None:
        super().__init__()
        for name, module in resnet50_trunk().items():
            self.add_module(name, module)
        self.hyper1_1 = _stair(64, 256, 1)
        self.hyper2_1 = _stair(256, 512, 2)
        self.hyper3_1 = _stair(512, 1024, 2)
        self.hyper4_1 = _stair(1024, 2048, 2)
        self.hyper2_2 = _stair(256, 512, 2)
        self.hyper3_2 = _stair(512, 1024, 2)
        self.hyper4_2 = _stair(1024, 2048, 2)
        self.hyper3_3 = _stair(512, 1024, 2)
        self.hyper4_3 = _stair(1024, 2048, 2)
        self.hyper4_4 = _stair(1024, 2048, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        for i in range(1, len(HEADS) + 1):
            self.add_module(f"quality{i}", nn.Sequential(nn.Linear(2048, 128), nn.Linear(128, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        s1 = self.hyper1_1(x)
        x = self.layer1(x)
        s1 = self.hyper2_1(s1 + x)
        s2 = self.hyper2_2(x)
        x = self.layer2(x)
        s1 = self.hyper3_1(s1 + x)
        s2 = self.hyper3_2(s2 + x)
        s3 = self.hyper3_3(x)
        x = self.layer3(x)
        s1 = self.hyper4_1(s1 + x)
        s2 = self.hyper4_2(s2 + x)
        s3 = self.hyper4_3(s3 + x)
        s4 = self.hyper4_4(x)
        x = self.layer4(x)
        x = torch.flatten(self.avgpool(x + s1 + s2 + s3 + s4), 1)
        return torch.cat([getattr(self, f"quality{i}")(x) for i in range(1, len(HEADS) + 1)], 1)


def convert_official(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official StairIQA checkpoint (DataParallel) -> our keys."""
    return strip_prefix(state)
