"""MANIQA network: ViT-B/8 features of four blocks, transposed attention blocks and residual
Swin stages, patch-weighted score (Yang et al. 2022).

Key names follow the official code (IIGROUP/MANIQA ``models/maniqa.py`` and ``models/swin.py``
with a timm ``vit_base_patch8_224``), so its released checkpoints (e.g. ``ckpt_koniq10k.pt``)
load strictly. The ViT comes from timm; the Swin parts (window attention with relative position
bias, shifted windows, a conv after each stage) are written here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TABlock(nn.Module):
    """Transposed attention over the channel axis of (B, C, N) features, residual."""

    def __init__(self, dim: int, drop: float = 0.1) -> None:
        super().__init__()
        self.c_q = nn.Linear(dim, dim)
        self.c_k = nn.Linear(dim, dim)
        self.c_v = nn.Linear(dim, dim)
        self.norm_fact = dim**-0.5
        self.softmax = nn.Softmax(dim=-1)
        self.proj_drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n = x.shape
        attn = self.softmax(self.c_q(x) @ self.c_k(x).transpose(-2, -1) * self.norm_fact)
        # the official code reshapes the transposed product without transposing back
        out = (attn @ self.c_v(x)).transpose(1, 2).reshape(b, c, n)
        return self.proj_drop(out) + x


class Mlp(nn.Module):
    """Linear -> GELU -> Linear (dropout after each)."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def _windows(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, size * size, C)."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // size, size, w // size, size, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, size * size, c)


def _unwindows(x: torch.Tensor, size: int, h: int, w: int) -> torch.Tensor:
    """(B * nW, size * size, C) -> (B, H, W, C)."""
    c = x.shape[-1]
    x = x.reshape(-1, h // size, w // size, size, size, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside windows, with a learnt relative position bias."""

    def __init__(self, dim: int, window: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window - 1) ** 2, num_heads))
        ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        coords = torch.stack([ys.flatten(), xs.flatten()])  # (2, w*w)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        index = rel[..., 0] * (2 * window - 1) + rel[..., 1]
        self.register_buffer("relative_position_index", index)
        self.qkv = nn.Linear(dim, dim * 3)
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(0.0)
        self.softmax = nn.Softmax(dim=-1)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = attn + bias.reshape(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            windows = mask.shape[0]
            attn = attn.reshape(b // windows, windows, self.num_heads, n, n) + mask[None, :, None]
            attn = attn.reshape(-1, self.num_heads, n, n)
        attn = self.attn_drop(self.softmax(attn))
        return self.proj_drop(self.proj((attn @ v).transpose(1, 2).reshape(b, n, c)))


class SwinBlock(nn.Module):
    """Pre-norm (shifted) window attention + MLP, both residual with stochastic depth."""

    def __init__(self, dim: int, resolution: tuple[int, int], num_heads: int, window: int,
                 shift: int, dim_mlp: int, drop_path: float) -> None:
        super().__init__()
        from timm.layers import DropPath

        self.resolution = resolution
        if min(resolution) <= window:
            shift, window = 0, min(resolution)
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, num_heads)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dim_mlp)
        mask = None
        if shift > 0:
            h, w = resolution
            regions = torch.zeros((1, h, w, 1))
            spans = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
            for label, (hs, ws) in enumerate((hs, ws) for hs in spans for ws in spans):
                regions[:, hs, ws, :] = label
            ids = _windows(regions, window).squeeze(-1)
            mask = (ids.unsqueeze(1) - ids.unsqueeze(2)) != 0
            mask = torch.zeros(mask.shape).masked_fill(mask, -100.0)
        self.register_buffer("attn_mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        b, _, c = x.shape
        y = self.norm1(x).reshape(b, h, w, c)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = _unwindows(self.attn(_windows(y, self.window), self.attn_mask), self.window, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + self.drop_path(y.reshape(b, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class BasicLayer(nn.Module):
    """Swin blocks (alternately shifted) followed by a 3x3 conv + ReLU on the token grid."""

    def __init__(self, dim: int, resolution: tuple[int, int], depth: int, num_heads: int,
                 window: int, dim_mlp: int, drop_path: list[float]) -> None:
        super().__init__()
        self.resolution = resolution
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)
        self.blocks = nn.ModuleList([
            SwinBlock(dim, resolution, num_heads, window, 0 if i % 2 == 0 else window // 2,
                      dim_mlp, drop_path[i]) for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        h, w = self.resolution
        grid = x.transpose(1, 2).reshape(x.shape[0], -1, h, w)
        return F.relu(self.conv(grid)).flatten(2).transpose(1, 2)


class SwinTransformer(nn.Module):
    """Residual stages ``x = scale * layer(x) + x`` on (B, C, H, W) -> (B, C, H, W).

    ``downsample`` exists in the official model (and its checkpoints) but is never used.
    """

    def __init__(self, resolution: tuple[int, int], depths: list[int], num_heads: list[int],
                 embed_dim: int, window: int, dim_mlp: int, scale: float, drop: float = 0.1,
                 drop_path_rate: float = 0.1) -> None:
        super().__init__()
        self.scale = scale
        self.resolution = resolution
        self.dropout = nn.Dropout(p=drop)
        self.downsample = nn.Conv2d(embed_dim, embed_dim, kernel_size=3, stride=2, padding=1)
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            self.layers.append(BasicLayer(embed_dim, resolution, depth, num_heads[i], window,
                                          dim_mlp, rates[start:start + depth]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = self.dropout(x).flatten(2).transpose(1, 2)
        for layer in self.layers:
            x = self.scale * layer(x) + x
        return x.transpose(1, 2).reshape(b, c, h, w)


def vit_backbone(name: str = "vit_base_patch8_224", **kwargs) -> nn.Module:
    """The timm ViT (random init, never downloads); ``kwargs`` override its configuration."""
    import timm

    return timm.create_model(name, pretrained=False, **kwargs)


class MANIQANet(nn.Module):
    """MANIQA: (N, 3, img, img) crops normalised to [-1, 1] -> (N,) quality.

    Official configuration: ViT-B/8 at 224 (28x28 tokens), embed_dim 768, dim_mlp 768, window
    4, depths [2, 2], heads [4, 4], two TA blocks per stage, scale 0.8. ``vit`` may be any timm
    ViT with at least 10 blocks whose width is ``embed_dim`` (smaller ones for tests).
    """

    def __init__(self, embed_dim: int = 768, num_outputs: int = 1, patch_size: int = 8,
                 drop: float = 0.1, depths: tuple[int, ...] = (2, 2), window_size: int = 4,
                 dim_mlp: int = 768, num_heads: tuple[int, ...] = (4, 4), img_size: int = 224,
                 num_tab: int = 2, scale: float = 0.8, vit: nn.Module | None = None) -> None:
        super().__init__()
        self.side = img_size // patch_size
        resolution = (self.side, self.side)
        self.vit = vit if vit is not None else vit_backbone()
        tokens = self.side**2
        self.tablock1 = nn.ModuleList([TABlock(tokens) for _ in range(num_tab)])
        self.conv1 = nn.Conv2d(embed_dim * 4, embed_dim, 1, 1, 0)
        self.swintransformer1 = SwinTransformer(resolution, list(depths), list(num_heads),
                                                embed_dim, window_size, dim_mlp, scale)
        self.tablock2 = nn.ModuleList([TABlock(tokens) for _ in range(num_tab)])
        self.conv2 = nn.Conv2d(embed_dim, embed_dim // 2, 1, 1, 0)
        self.swintransformer2 = SwinTransformer(resolution, list(depths), list(num_heads),
                                                embed_dim // 2, window_size, dim_mlp, scale)
        half = embed_dim // 2
        self.fc_score = nn.Sequential(nn.Linear(half, half), nn.ReLU(), nn.Dropout(drop),
                                      nn.Linear(half, num_outputs), nn.ReLU())
        self.fc_weight = nn.Sequential(nn.Linear(half, half), nn.ReLU(), nn.Dropout(drop),
                                       nn.Linear(half, num_outputs), nn.Sigmoid())

    def vit_features(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens of ViT blocks 6-9 (0-based) concatenated: (N, tokens, 4 * width)."""
        feats = self.vit.forward_intermediates(x, indices=[6, 7, 8, 9], output_fmt="NLC",
                                               intermediates_only=True)
        return torch.cat(feats, dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s = x.shape[0], self.side
        x = self.vit_features(x).transpose(1, 2)  # (B, C, tokens)
        for tab in self.tablock1:
            x = tab(x)
        x = self.swintransformer1(self.conv1(x.reshape(b, -1, s, s)))
        x = x.flatten(2)
        for tab in self.tablock2:
            x = tab(x)
        x = self.swintransformer2(self.conv2(x.reshape(b, -1, s, s)))
        x = x.flatten(2).transpose(1, 2)  # (B, tokens, C)
        f, w = self.fc_score(x), self.fc_weight(x)
        return (f * w).sum(dim=(1, 2)) / w.sum(dim=(1, 2))
