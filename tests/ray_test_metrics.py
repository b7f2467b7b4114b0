"""Test metrics for tests/test_ray_backend.py, in their own module so Ray workers can import
them (the tests put this folder on the workers' PYTHONPATH).

``RayProbe`` scores an image by its mean pixel value (+ ``offset``), appends ``pid digest`` of
every computation to the file ``log`` and, given ``kill_on`` (an image digest) and ``marker``,
ends its own process with ``os._exit`` the first time it meets that image (the marker file,
holding the killed process id, makes it happen once).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import ClassVar

import numpy as np

from aigiqa.metrics.base import Metric
from aigiqa.metrics.registry import register_metric


def image_digest(image: np.ndarray) -> str:
    """A short digest of decoded pixels: identifies an image across processes."""
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()[:16]


@register_metric
class RayProbe(Metric):
    """Mean pixel value + offset; logs computations; may kill its process once."""

    name: ClassVar[str] = "test-ray-probe"
    defaults: ClassVar[dict] = {"offset": 0.0, "log": "", "kill_on": "", "marker": ""}

    def score(self, images, prompts=None):
        out = []
        for image in images:
            digest = image_digest(image)
            marker = self.options["marker"]
            if digest == self.options["kill_on"] and marker and not os.path.exists(marker):
                Path(marker).write_text(str(os.getpid()))
                os._exit(1)  # the worker process dies mid-batch, as if OOM-killed
            if self.options["log"]:
                with open(self.options["log"], "a") as f:
                    f.write(f"{os.getpid()} {digest}\n")
            out.append(float(image.mean()) + self.options["offset"])
        return np.array(out)


@register_metric
class RayPromptProbe(Metric):
    """Prompt-aware test metric: mean pixel value + 1000 × prompt length."""

    name: ClassVar[str] = "test-ray-prompt-probe"
    kind: ClassVar[str] = "alignment"
    needs_prompt: ClassVar[bool] = True

    def score(self, images, prompts=None):
        self.check_batch(images, prompts)
        return np.array([float(im.mean()) + 1000 * len(p) for im, p in zip(images, prompts,
                                                                             strict=True)])


@register_metric
class RayNameProbe(Metric):
    """A metric that reads names: its text is ``generator|first part of the name|prompt``;
    scores mean pixel value + 1000 × a digest of that text (so each text gives its own score)."""

    name: ClassVar[str] = "test-ray-name-probe"
    kind: ClassVar[str] = "alignment"
    needs_prompt: ClassVar[bool] = True
    reads_names = True

    def model_text(self, prompt: str, name: str, generator: str) -> str:
        return f"{generator}|{name.split('_')[0]}|{prompt}"

    def score(self, images, prompts=None):
        self.check_batch(images, prompts)
        return np.array([float(im.mean()) + 1000 * (int(hashlib.sha256(p.encode()).hexdigest()[:6],
                                                        16) % 997)
                         for im, p in zip(images, prompts, strict=True)])


@register_metric
class GpuProbe(Metric):
    """A metric declaring one GPU per actor (never scored in the tests)."""

    name: ClassVar[str] = "test-ray-gpu-probe"
    resources: ClassVar[dict[str, float]] = {"num_gpus": 1}

    def score(self, images, prompts=None):
        return np.zeros(len(images))
