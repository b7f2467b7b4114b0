"""CLIPScore: w · max(cos(image, "A photo depicts " + prompt), 0) with OpenAI CLIP (higher better).

Hessel et al., "CLIPScore: A Reference-free Evaluation Metric for Image Captioning", EMNLP 2021.
As the official ``clipscore.py``: prompt prefix "A photo depicts ", ``clip.tokenize(truncate=True)``
(first 75 tokens kept), shortest side to 224 bicubic + centre crop, w = 2.5; ViT-B/32 default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from aigiqa.errors import MetricError
from aigiqa.metrics.alignment import _clip
from aigiqa.metrics.alignment._common import open_clip_transform
from aigiqa.metrics.registry import register_metric
from aigiqa.metrics.torch_base import TORCH_DEFAULTS, TorchMetric

ARCHS = ("ViT-B-32", "ViT-L-14")


@register_metric
class CLIPScore(TorchMetric):
    """CLIPScore on a batch of (image, prompt) pairs; scores in [0, 2.5]."""

    name: ClassVar[str] = "clipscore"
    kind: ClassVar[str] = "alignment"
    needs_prompt: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ("torch", "torchvision", "open_clip")
    score_range: ClassVar[tuple[float, float] | None] = (0.0, 2.5)
    citation: ClassVar[str] = "Hessel et al., CLIPScore, EMNLP 2021"
    description: ClassVar[str] = "w·max(cos,0) of OpenAI CLIP image and prompt embeddings"
    defaults: ClassVar[dict[str, Any]] = {
        **TORCH_DEFAULTS,
        "model": "ViT-B-32",
        "w": 2.5,
        "prefix": "A photo depicts ",
    }
    #: open_clip reads a folder for ``model="local-dir:PATH"``, so ``model`` names files too.
    file_options: ClassVar[tuple[str, ...]] = ("checkpoint", "model")
    _unpicklable: ClassVar[tuple[str, ...]] = ("tokenize", "pixels")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        arch = self.options["model"]
        if arch not in ARCHS and not self.options["checkpoint"]:
            raise MetricError(
                f"metric 'clipscore': model={arch!r} is not one of {ARCHS} (another open_clip "
                "architecture needs checkpoint=PATH)"
            )
        self.weights = _clip.openai_weights(self.name, self.options["checkpoint"], arch,
                                            "ViT-B-32")

    def weight_files(self) -> list[Path]:
        return [self.weights]

    def build_model(self) -> Any:
        arch = self.options["model"]
        model = _clip.build_open_clip(arch, self.weights, self.name, quick_gelu=True)
        self.tokenize = _clip.tokenizer(arch)
        self.pixels = open_clip_transform(model.visual.image_size[0])
        return model

    def transform(self, image: np.ndarray) -> Any:
        from PIL import Image

        return self.pixels(Image.fromarray(image))

    def forward(self, model: Any, batch: Any, prompts: list[str] | None) -> Any:
        import torch

        assert prompts is not None
        prefix = self.options["prefix"]
        if prefix and not prefix.endswith(" "):  # as the official code
            prefix += " "
        tokens = self.tokenize([prefix + p for p in prompts]).to(batch.device)
        img = torch.nn.functional.normalize(model.encode_image(batch), dim=-1)
        txt = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1)
        cos = (img.float() * txt.float()).sum(-1)
        return self.options["w"] * cos.clamp(min=0)
