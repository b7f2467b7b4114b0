"""HPSv2: Human Preference Score v2 (v2.0 / v2.1), cos(image, prompt) of a fine-tuned CLIP-H.

Wu et al., "Human Preference Score v2: A Solid Benchmark for Evaluating Human Preferences of
Text-to-Image Synthesis", 2023. As the official ``hpsv2`` package: open_clip ViT-H-14 with the
HPS checkpoint's ``state_dict``; preprocessing ToTensor → longest side to 224 (bicubic on the
tensor, antialiased, as torchvision ≥ 0.17 does by default) → zero padding to 224x224 → OpenAI
mean/std (the official code skips the padding, and then fails, for a non-square image whose longest
side is already 224; we pad it);
open_clip tokenizer, 77-token context (first 75 prompt tokens kept); score = cos (no scale).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from aigiqa.assets import catalog
from aigiqa.errors import MetricError
from aigiqa.metrics.alignment import _clip
from aigiqa.metrics.alignment._common import HubFile, resolve_weights
from aigiqa.metrics.registry import register_metric
from aigiqa.metrics.torch_base import TORCH_DEFAULTS, TorchMetric

FILES = {
    "v2.0": catalog.entry("hpsv2/HPS_v2_compressed.pt"),
    "v2.1": catalog.entry("hpsv2/HPS_v2.1_compressed.pt"),
}
_HUB = {version: HubFile(*catalog.hub(asset.name).key) for version, asset in FILES.items()}


def hps_transform(image_size: int) -> Any:
    """The official validation transform: a callable PIL RGB image → (3, S, S) float tensor."""
    import torch
    from torchvision.transforms import functional as tf

    mean = (0.48145466, 0.4578275, 0.40821073)
    std = (0.26862954, 0.26130258, 0.27577711)

    def transform(image: Any) -> torch.Tensor:
        x = tf.to_tensor(image)
        height, width = x.shape[1:]
        scale = image_size / float(max(height, width))
        if scale != 1.0:
            new = (round(height * scale), round(width * scale))
            x = tf.resize(x, list(new), tf.InterpolationMode.BICUBIC, antialias=True)
        # the official code pads only after a resize; a non-square image whose longest side is
        # already image_size then crashes the ViT there: we pad it the same way instead
        pad_h, pad_w = image_size - x.shape[1], image_size - x.shape[2]
        if pad_h or pad_w:
            x = tf.pad(x, [pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2], 0)
        return tf.normalize(x, mean, std)

    return transform


@register_metric
class HPSv2(TorchMetric):
    """HPSv2 score of (image, prompt) pairs: cosine similarity, typically 0.2-0.35."""

    name: ClassVar[str] = "hpsv2"
    score_range: ClassVar[tuple[float, float] | None] = (-1.0, 1.0)
    citation: ClassVar[str] = "Wu et al., Human Preference Score v2, arXiv:2306.09341, 2023"
    description: ClassVar[str] = "cos of HPS-fine-tuned open_clip ViT-H-14 embeddings"
    kind: ClassVar[str] = "alignment"
    needs_prompt: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ("torch", "torchvision", "open_clip")
    defaults: ClassVar[dict[str, Any]] = {**TORCH_DEFAULTS, "version": "v2.1", "model": "ViT-H-14"}
    #: open_clip reads a folder for ``model="local-dir:PATH"``, so ``model`` names files too.
    file_options: ClassVar[tuple[str, ...]] = ("checkpoint", "model")
    _unpicklable: ClassVar[tuple[str, ...]] = ("tokenize", "pixels")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        version = self.options["version"]
        if version not in FILES:
            raise MetricError(f"metric 'hpsv2': version={version!r} is not one of {list(FILES)}")
        self.weights = resolve_weights(
            self.name, self.options["checkpoint"], FILES[version].name, [_HUB[version]]
        )

    def weight_files(self) -> list[Path]:
        return [self.weights]

    def build_model(self) -> Any:
        arch = self.options["model"]
        model = _clip.build_open_clip(arch, self.weights, self.name, quick_gelu=False)
        self.tokenize = _clip.tokenizer(arch)
        self.pixels = hps_transform(model.visual.image_size[0])
        return model

    def transform(self, image: np.ndarray) -> Any:
        from PIL import Image

        return self.pixels(Image.fromarray(image))

    def forward(self, model: Any, batch: Any, prompts: list[str] | None) -> Any:
        import torch

        assert prompts is not None
        tokens = self.tokenize(prompts).to(batch.device)
        img = torch.nn.functional.normalize(model.encode_image(batch).float(), dim=-1)
        txt = torch.nn.functional.normalize(model.encode_text(tokens).float(), dim=-1)
        return (img * txt).sum(-1)
