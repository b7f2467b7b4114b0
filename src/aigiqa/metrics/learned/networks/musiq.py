"""MUSIQ network: multi-scale patch tokens, a ResNet root per patch, a transformer with hashed
spatial and scale embeddings (Ke et al. 2021).

The official code is TF/JAX (google-research/musiq); key names and preprocessing follow the
widely used PyTorch port's checkpoint format (pyiqa ``musiq_*_ckpt-*.pth``): patch 32, hidden 384,
14 layers, 6 heads, MLP 1152, hash grid 10, scales 224 and 384 plus the original resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Zero padding of TensorFlow's ``padding='SAME'`` (the extra pixel goes right/bottom)."""
    h, w = x.shape[-2:]
    rows = max((math.ceil(h / stride) - 1) * stride + kernel - h, 0)
    cols = max((math.ceil(w / stride) - 1) * stride + kernel - w, 0)
    return F.pad(x, (cols // 2, cols - cols // 2, rows // 2, rows - rows // 2))


class SamePad(nn.Module):
    """:func:`same_pad` as a module."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return same_pad(x, self.kernel, self.stride)


class StdConv(nn.Conv2d):
    """Conv with weight standardisation (per output channel, unbiased std + 1e-5), SAME pad."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        w = (w - w.mean((1, 2, 3), keepdim=True)) / (w.std((1, 2, 3), keepdim=True) + 1e-5)
        return F.conv2d(same_pad(x, self.kernel_size[0], self.stride[0]), w, self.bias,
                        self.stride)


class Bottleneck(nn.Module):
    """Pre-activation-free ResNet bottleneck with StdConv + GroupNorm(32)."""

    def __init__(self, inplanes: int, outplanes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = StdConv(inplanes, inplanes, 1, 1, bias=False)
        self.gn1 = nn.GroupNorm(32, inplanes, eps=1e-4)
        self.conv2 = StdConv(inplanes, inplanes, 3, 1, bias=False)
        self.gn2 = nn.GroupNorm(32, inplanes, eps=1e-4)
        self.conv3 = StdConv(inplanes, outplanes, 1, 1, bias=False)
        self.gn3 = nn.GroupNorm(32, outplanes, eps=1e-4)
        self.relu = nn.ReLU(inplace=True)
        self.needs_projection = inplanes != outplanes or stride != 1
        if self.needs_projection:
            self.conv_proj = StdConv(inplanes, outplanes, 1, stride, bias=False)
            self.gn_proj = nn.GroupNorm(32, outplanes, eps=1e-4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.gn_proj(self.conv_proj(x)) if self.needs_projection else x
        y = self.relu(self.gn1(self.conv1(x)))
        y = self.relu(self.gn2(self.conv2(y)))
        return self.relu(self.gn3(self.conv3(y)) + skip)


class MultiHeadAttention(nn.Module):
    """Self-attention; pairs involving a padding token get the logit -1000."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        logits = (q @ k.transpose(-2, -1)) * self.scale
        pair = mask[:, None, :, None] & mask[:, None, None, :]
        attn = logits.masked_fill(~pair, -1e3).softmax(dim=-1)
        return self.out((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """Linear -> GELU -> Linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-6)."""

    def __init__(self, dim: int, mlp_dim: int, num_heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attention = MultiHeadAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


class AddHashSpatialPositionEmbs(nn.Module):
    """Learnt embedding of the hashed (grid x grid) spatial position of each patch."""

    def __init__(self, grid: int, dim: int) -> None:
        super().__init__()
        self.position_emb = nn.Parameter(torch.randn(1, grid * grid, dim) * 0.02)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return x + self.position_emb[0][positions.long()]


class AddScaleEmbs(nn.Module):
    """Learnt embedding of the scale index of each patch."""

    def __init__(self, num_scales: int, dim: int) -> None:
        super().__init__()
        self.scale_emb = nn.Parameter(torch.randn(num_scales, dim) * 0.02)

    def forward(self, x: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        return x + self.scale_emb[scales.long()]


class TransformerEncoder(nn.Module):
    """Embeddings + class token + transformer blocks + final LayerNorm."""

    def __init__(self, dim: int, mlp_dim: int, num_heads: int, num_layers: int,
                 num_scales: int, grid: int) -> None:
        super().__init__()
        self.posembed_input = AddHashSpatialPositionEmbs(grid, dim)
        self.scaleembed_input = AddScaleEmbs(num_scales, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.encoder_norm = nn.LayerNorm(dim, eps=1e-6)
        self.transformer = nn.ModuleDict({
            f"encoderblock_{i}": TransformerBlock(dim, mlp_dim, num_heads)
            for i in range(num_layers)})

    def forward(self, x: torch.Tensor, positions: torch.Tensor, scales: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        x = self.scaleembed_input(self.posembed_input(x, positions), scales)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)
        mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        for block in self.transformer.values():
            x = block(x, mask)
        return self.encoder_norm(x)


class MUSIQNet(nn.Module):
    """MUSIQ: (N, L, 3*p*p + 3) multi-scale patch tokens (see :func:`multiscale_patches`)
    -> (N,) quality; with ``num_class`` > 1 (AVA) the mean of the softmax score distribution.
    """

    def __init__(self, patch_size: int = 32, num_class: int = 1, hidden_size: int = 384,
                 mlp_dim: int = 1152, num_heads: int = 6, num_layers: int = 14,
                 num_scales: int = 3, spatial_pos_grid_size: int = 10) -> None:
        super().__init__()
        token_dim = 64
        self.patch_size = patch_size
        self.conv_root = StdConv(3, token_dim, 7, 2, bias=False)
        self.gn_root = nn.GroupNorm(32, token_dim, eps=1e-6)
        self.root_pool = nn.Sequential(nn.ReLU(inplace=True), SamePad(3, 2),
                                       nn.MaxPool2d(3, 2))
        self.block1 = Bottleneck(token_dim, token_dim * 4)
        self.embedding = nn.Linear(token_dim * 4 * (patch_size // 4) ** 2, hidden_size)
        self.transformer_encoder = TransformerEncoder(hidden_size, mlp_dim, num_heads,
                                                      num_layers, num_scales,
                                                      spatial_pos_grid_size)
        if num_class > 1:
            self.head: nn.Module = nn.Sequential(nn.Linear(hidden_size, num_class),
                                                 nn.Softmax(dim=-1))
        else:
            self.head = nn.Linear(hidden_size, num_class)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, n, _ = tokens.shape
        p = self.patch_size
        positions, scales = tokens[:, :, -3], tokens[:, :, -2]
        mask = tokens[:, :, -1].bool()
        x = tokens[:, :, :-3].reshape(-1, 3, p, p)
        x = self.root_pool(self.gn_root(self.conv_root(x)))
        x = self.block1(x).permute(0, 2, 3, 1).reshape(b, n, -1)  # (h, w, c) token order
        x = self.transformer_encoder(self.embedding(x), positions, scales, mask)
        q = self.head(x[:, 0])
        return (q * torch.arange(1, q.shape[-1] + 1, dtype=q.dtype, device=q.device)).sum(-1)


def _hash_positions(grid: int, rows: int, cols: int) -> torch.Tensor:
    """Hashed spatial index of each patch of a rows x cols grid (nearest, row-major): (L,)."""
    base = torch.arange(grid, dtype=torch.float32).reshape(1, 1, grid)
    hw = F.interpolate(base, size=cols, mode="nearest").reshape(1, cols)
    hh = F.interpolate(base, size=rows, mode="nearest").reshape(rows, 1)
    return (hh * grid + hw).reshape(-1)


def _tokens(image: torch.Tensor, patch: int, grid: int, scale_id: int,
            max_len: int) -> torch.Tensor:
    """Patches (SAME zero padding, row-major, each flattened (c, y, x)) of a (3, H, W) image,
    with hashed position, scale index and mask 1; padded with zero rows or cut to ``max_len``
    (< 0: all patches). Returns (L, 3*p*p + 3)."""
    padded = same_pad(image.unsqueeze(0), patch, patch)
    rows, cols = padded.shape[-2] // patch, padded.shape[-1] // patch
    flat = F.unfold(padded, patch, stride=patch)[0].T  # (L, 3*p*p)
    extra = torch.stack([_hash_positions(grid, rows, cols),
                         torch.full((rows * cols,), float(scale_id)),
                         torch.ones(rows * cols)], dim=1)
    out = torch.cat([flat, extra], dim=1)
    if max_len >= 0:
        out = torch.cat([out, out.new_zeros(max(0, max_len - len(out)), out.shape[1])])[:max_len]
    return out


def multiscale_patches(image: torch.Tensor, patch: int = 32, grid: int = 10,
                       longer_sides: Sequence[int] = (224, 384),
                       max_len_original: int | None = -1) -> torch.Tensor:
    """Multi-scale token sequence of a (3, H, W) image in [-1, 1]: (L, 3*p*p + 3).

    For each longer side (ascending): bicubic resize keeping the aspect ratio (no antialias),
    all patches padded to ceil(side / p)^2 tokens; then the original resolution
    (``max_len_original`` < 0: all its patches; None: not used).
    """
    h, w = image.shape[-2:]
    parts = []
    sides = sorted(longer_sides)
    for scale_id, side in enumerate(sides):
        ratio = side / max(h, w)
        resized = F.interpolate(image.unsqueeze(0), (round(h * ratio), round(w * ratio)),
                                mode="bicubic", align_corners=False, antialias=False)[0]
        parts.append(_tokens(resized, patch, grid, scale_id, math.ceil(side / patch) ** 2))
    if max_len_original is not None:
        parts.append(_tokens(image, patch, grid, len(sides), max_len_original))
    return torch.cat(parts, dim=0)
