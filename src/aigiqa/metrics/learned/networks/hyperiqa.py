"""HyperIQA network: ResNet-50 + local distortion aware module + hyper network generating the
weights of a small target network (Su et al. 2020).

Key names follow the official code (SSL92/hyperIQA, ``HyperNet(16, 112, 224, 112, 56, 28, 14, 7)``),
whose ``koniq_pretrained.pkl`` loads strictly.
"""

from __future__ import annotations

import torch
from torch import nn

from aigiqa.metrics.learned.networks._common import resnet50_trunk


class HyperBackbone(nn.Module):
    """ResNet-50 (torchvision) with the four LDA heads: (N, 3, 224, 224) -> features, vector."""

    def __init__(self, lda_out_channels: int, in_chn: int) -> None:
        super().__init__()
        for name, module in resnet50_trunk().items():
            self.add_module(name, module)
        self.lda1_pool = nn.Sequential(nn.Conv2d(256, 16, 1, bias=False), nn.AvgPool2d(7, 7))
        self.lda1_fc = nn.Linear(16 * 64, lda_out_channels)
        self.lda2_pool = nn.Sequential(nn.Conv2d(512, 32, 1, bias=False), nn.AvgPool2d(7, 7))
        self.lda2_fc = nn.Linear(32 * 16, lda_out_channels)
        self.lda3_pool = nn.Sequential(nn.Conv2d(1024, 64, 1, bias=False), nn.AvgPool2d(7, 7))
        self.lda3_fc = nn.Linear(64 * 4, lda_out_channels)
        self.lda4_pool = nn.AvgPool2d(7, 7)
        self.lda4_fc = nn.Linear(2048, in_chn - lda_out_channels * 3)
        for module in (self.lda1_pool[0], self.lda2_pool[0], self.lda3_pool[0], self.lda1_fc,
                       self.lda2_fc, self.lda3_fc, self.lda4_fc):
            nn.init.kaiming_normal_(module.weight)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        lda = [self.lda1_fc(self.lda1_pool(x).flatten(1))]
        x = self.layer2(x)
        lda.append(self.lda2_fc(self.lda2_pool(x).flatten(1)))
        x = self.layer3(x)
        lda.append(self.lda3_fc(self.lda3_pool(x).flatten(1)))
        x = self.layer4(x)
        lda.append(self.lda4_fc(self.lda4_pool(x).flatten(1)))
        return x, torch.cat(lda, dim=1)


class HyperNet(nn.Module):
    """HyperIQA: (N, 3, 224, 224) ImageNet-normalised crops -> (N,) quality (KonIQ scale 0-100).

    The hyper network turns the last ResNet features into the weights and biases of a 5-layer
    target network (sigmoid between layers) that maps the multi-scale LDA vector to the score.
    """

    def __init__(self, lda_out_channels: int = 16, hyper_in_channels: int = 112,
                 target_in_size: int = 224, target_fc1_size: int = 112,
                 target_fc2_size: int = 56, target_fc3_size: int = 28, target_fc4_size: int = 14,
                 feature_size: int = 7) -> None:
        super().__init__()
        self.hyper_in = hyper_in_channels
        self.sizes = (target_in_size, target_fc1_size, target_fc2_size, target_fc3_size,
                      target_fc4_size)
        self.feature_size = feature_size
        self.res = HyperBackbone(lda_out_channels, target_in_size)
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.conv1 = nn.Sequential(
            nn.Conv2d(2048, 1024, 1), nn.ReLU(inplace=True),
            nn.Conv2d(1024, 512, 1), nn.ReLU(inplace=True),
            nn.Conv2d(512, hyper_in_channels, 1), nn.ReLU(inplace=True),
        )
        area = feature_size**2
        s = self.sizes
        for i in range(1, 5):
            self.add_module(f"fc{i}w_conv", nn.Conv2d(hyper_in_channels, s[i - 1] * s[i] // area,
                                                      3, padding=1))
            self.add_module(f"fc{i}b_fc", nn.Linear(hyper_in_channels, s[i]))
        self.fc5w_fc = nn.Linear(hyper_in_channels, s[4])
        self.fc5b_fc = nn.Linear(hyper_in_channels, 1)
        for name, module in self.named_children():
            if name.startswith("fc"):
                nn.init.kaiming_normal_(module.weight)

    def target_params(self, feat: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Weights (N, out, in) and biases (N, out) of the five target layers from (N, C, 7, 7)."""
        n = feat.shape[0]
        pooled = self.pool(feat).flatten(1)
        s = self.sizes
        params = []
        for i in range(1, 5):
            weight = getattr(self, f"fc{i}w_conv")(feat).reshape(n, s[i], s[i - 1])
            params.append((weight, getattr(self, f"fc{i}b_fc")(pooled)))
        params.append((self.fc5w_fc(pooled).reshape(n, 1, s[4]), self.fc5b_fc(pooled)))
        return params

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, vec = self.res(x)
        feat = self.conv1(features).reshape(-1, self.hyper_in, self.feature_size,
                                            self.feature_size)
        q = vec
        params = self.target_params(feat)
        for i, (weight, bias) in enumerate(params):
            q = torch.baddbmm(bias.unsqueeze(2), weight, q.unsqueeze(2)).squeeze(2)
            if i < len(params) - 1:
                q = torch.sigmoid(q)
        return q.squeeze(1)
