"""The network of ``fused-quality-alignment`` (SF-IQA kind): stage features → quality, fused with a
CLIP similarity by a small MLP. torch is imported by the functions that build it.

Quality branch (as SF-IQA's, itself after TReS): each stage map is L2-normalised over channels,
L2-pooled (a 3×3 Hanning window over the squares, square root; stride 1), dropped out (p 0.1) and
average-pooled to the last stage's grid; the maps are concatenated (d = Σ channels), a 2-D sine
position embedding is added to the queries and keys of a post-norm transformer encoder (``layers``
layers, ``heads`` heads, feed-forward 64, dropout 0.5; as SF-IQA's code the attention sub-layer
has no residual connection); its tokens are averaged and projected to the last stage's width,
concatenated with the average-pooled last stage, and a linear layer gives the quality ``q``.
Fusion: ``MLP(2 → 10 → 10 → 1, ReLU)`` of ``(q, s)``, ``s`` the CLIP scorer's similarity.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

#: the feed-forward width and dropout of SF-IQA's encoder layers
FEEDFORWARD, DROPOUT = 64, 0.5


def l2_pool(x: torch.Tensor) -> torch.Tensor:
    """sqrt(hanning3×3 * x² + 1e-12), per channel, stride 1, same size (SF-IQA / TReS)."""
    import torch
    import torch.nn.functional as F

    a = torch.as_tensor(np.hanning(5)[1:-1], dtype=x.dtype, device=x.device)
    g = a[:, None] * a[None, :]
    g = (g / g.sum()).expand(x.shape[1], 1, 3, 3)
    return (F.conv2d(x * x, g, padding=1, groups=x.shape[1]) + 1e-12).sqrt()


def sine_position(channels: int, height: int, width: int, device=None) -> torch.Tensor:
    """The normalised 2-D sine embedding (DETR's, temperature 10000, scale 2π): (channels, h, w);
    the first half encodes the row, the second the column."""
    import torch

    half = channels // 2
    eps, scale = 1e-6, 2 * math.pi
    y = torch.arange(1, height + 1, dtype=torch.float32, device=device)
    x = torch.arange(1, width + 1, dtype=torch.float32, device=device)
    y = (y / (height + eps) * scale)[:, None].expand(height, width)
    x = (x / (width + eps) * scale)[None, :].expand(height, width)
    k = torch.arange(half, dtype=torch.float32, device=device)
    dim = 10000 ** (2 * (k // 2) / half)

    def embed(pos: torch.Tensor) -> torch.Tensor:
        t = pos[..., None] / dim
        return torch.stack((t[..., 0::2].sin(), t[..., 1::2].cos()), dim=-1).flatten(2)

    return torch.cat((embed(y), embed(x)), dim=-1).permute(2, 0, 1)


def make_encoder_layer(d_model: int, heads: int) -> torch.nn.Module:
    from torch import nn

    class EncoderLayer(nn.Module):
        """Post-norm; position added to queries and keys; no residual around attention."""

        def __init__(self) -> None:
            super().__init__()
            self.self_attn = nn.MultiheadAttention(d_model, heads, dropout=DROPOUT)
            self.linear1 = nn.Linear(d_model, FEEDFORWARD)
            self.linear2 = nn.Linear(FEEDFORWARD, d_model)
            self.norm1 = nn.LayerNorm(d_model)
            self.norm2 = nn.LayerNorm(d_model)
            self.dropout = nn.Dropout(DROPOUT)
            self.dropout1 = nn.Dropout(DROPOUT)
            self.dropout2 = nn.Dropout(DROPOUT)

        def forward(self, src: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
            q = src + pos
            src = self.norm1(self.dropout1(self.self_attn(q, q, value=src)[0]))
            ff = self.linear2(self.dropout(self.linear1(src).relu()))
            return self.norm2(src + self.dropout2(ff))

    return EncoderLayer()


def make_fusion_net(backbone: torch.nn.Module, channels: list[int], heads: int,
                    layers: int, clip: torch.nn.Module) -> torch.nn.Module:
    """forward(stages (list of (B, C_i, H_i, W_i)), similarity (B,)) → scores (B,), with
    ``backbone`` (images → stage list) and ``clip`` (the CLIP scorer's model) as submodules."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    d_model, last = sum(channels), channels[-1]

    class FusedQualityNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone
            self.clip = clip
            self.drop2d = nn.Dropout(0.1)
            self.encoder = nn.ModuleList(make_encoder_layer(d_model, heads)
                                         for _ in range(layers))
            for p in self.encoder.parameters():  # as SF-IQA (DETR's transformer init)
                if p.dim() > 1:
                    nn.init.xavier_uniform_(p)
            self.fc2 = nn.Linear(d_model, last)
            self.fc = nn.Linear(2 * last, 1)
            self.fusion = nn.Sequential(nn.Linear(2, 10), nn.ReLU(), nn.Linear(10, 10),
                                        nn.ReLU(), nn.Linear(10, 1))
            self.frozen_backbone = False
            self.frozen_clip = False

        def train(self, mode: bool = True) -> FusedQualityNet:
            super().train(mode)
            if self.frozen_backbone:
                self.backbone.eval()
            if self.frozen_clip:
                self.clip.eval()
            return self

        def pooled_stages(self, stages: list[torch.Tensor]) -> torch.Tensor:
            """(B, d, h, w): every stage normalised, L2-pooled, on the last stage's grid."""
            grid = stages[-1].shape[-2:]
            maps = [F.adaptive_avg_pool2d(self.drop2d(l2_pool(F.normalize(s, dim=1))), grid)
                    for s in stages]
            return torch.cat(maps, dim=1)

        def quality(self, stages: list[torch.Tensor]) -> torch.Tensor:
            """The quality branch's score (B,)."""
            x = self.pooled_stages(stages)
            b, d, h, w = x.shape
            pos = sine_position(d, h, w, x.device).to(x.dtype).flatten(1).T[:, None]
            tokens = x.flatten(2).permute(2, 0, 1)  # (h·w, B, d)
            for layer in self.encoder:
                tokens = layer(tokens, pos)
            mixed = self.fc2(tokens.mean(0))
            return self.fc(torch.cat((mixed, stages[-1].mean((2, 3))), dim=1)).squeeze(-1)

        def fuse(self, quality: torch.Tensor, similarity: torch.Tensor) -> torch.Tensor:
            x = torch.stack((quality, similarity.to(quality.dtype)), dim=1)
            return self.fusion(x).squeeze(-1)

        def forward(self, stages: list[torch.Tensor], similarity: torch.Tensor) -> torch.Tensor:
            return self.fuse(self.quality(stages), similarity)

    return FusedQualityNet()
