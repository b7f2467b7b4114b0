"""CNNIQA network: one 7x7 conv layer, max-min pooling, two FC layers (Kang et al. 2014).

Key names follow the official PyTorch code (lidq92/CNNIQA), whose ``models/CNNIQA-LIVE`` loads
strictly.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class CNNIQANet(nn.Module):
    """Score 32x32 locally normalised grey patches: (N, 1, 32, 32) -> (N,)."""

    def __init__(self, ker_size: int = 7, n_kers: int = 50, n1_nodes: int = 800,
                 n2_nodes: int = 800) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, n_kers, ker_size)
        self.fc1 = nn.Linear(2 * n_kers, n1_nodes)
        self.fc2 = nn.Linear(n1_nodes, n2_nodes)
        self.fc3 = nn.Linear(n2_nodes, 1)
        self.dropout = nn.Dropout()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x.reshape(-1, *x.shape[-3:])).flatten(2)
        h = torch.cat((h.amax(dim=2), h.amin(dim=2)), dim=1)  # max-min pooling
        h = self.dropout(F.relu(self.fc1(h)))
        h = F.relu(self.fc2(h))
        return self.fc3(h).squeeze(1)


def cnniqa_patches(grey: np.ndarray, patch_size: int = 32, stride: int = 32) -> np.ndarray:
    """Non-overlapping, locally normalised patches of a grey image, as the official test code.

    ``grey``: (H, W) uint8 (PIL "L" conversion). Returns (P, 1, patch, patch) float32: each patch
    in [0, 1] minus its 3x3 local mean, divided by the 3x3 local std + 1 (symmetric borders).
    The official loops stop at ``size - stride`` (exclusive), which this reproduces.
    """
    from scipy.ndimage import uniform_filter

    h, w = grey.shape
    image = grey.astype(np.float32) / np.float32(255.0)
    tops = range(0, h - stride, stride)
    lefts = range(0, w - stride, stride)
    patches = np.stack(
        [image[i:i + patch_size, j:j + patch_size] for i in tops for j in lefts]
    ).astype(np.float64) if len(tops) and len(lefts) else np.zeros((0, patch_size, patch_size))
    mean = uniform_filter(patches, size=(1, 3, 3), mode="reflect")
    mean_sq = uniform_filter(patches**2, size=(1, 3, 3), mode="reflect")
    std = np.sqrt(np.maximum(mean_sq - mean**2, 0.0)) + 1.0
    return ((patches - mean) / std).astype(np.float32)[:, None]
