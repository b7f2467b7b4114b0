"""Tiny torch metrics for tests (not registered: worker processes inherit them by fork)."""

from __future__ import annotations

from typing import ClassVar

import torch

from aigiqa.metrics.learned.base import LEARNED_DEFAULTS, LearnedMetric, resize_crop_tensor


class TinyConv(LearnedMetric):
    """A conv regressor with 17 parameters on 16×16 crops: trains and scores in milliseconds."""

    name = "test-tiny-conv"
    defaults: ClassVar = dict(LEARNED_DEFAULTS)

    def build_model(self):
        return torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.AdaptiveAvgPool2d(1),
                                   torch.nn.Flatten(), torch.nn.Linear(2, 1))

    def transform(self, image, rng=None):
        return resize_crop_tensor(image, 16, rng, self.mean, self.std)

    def forward(self, model, batch, prompts):
        return model(batch).squeeze(-1)
