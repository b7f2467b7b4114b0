"""CLIPScore: w · max(cos(image, "A photo depicts " + prompt), 0) with OpenAI CLIP (higher better).

Hessel et al., "CLIPScore: A Reference-free Evaluation Metric for Image Captioning", EMNLP 2021.
As the official ``clipscore.py``: prompt prefix "A photo depicts ", ``clip.tokenize(truncate=True)``
(first 75 tokens kept), shortest side to 224 bicubic + centre crop, w = 2.5; ViT-B/32 default.
"""

from __future__ import annotations

from typing import Any, ClassVar

from aigiqa.errors import MetricError
from aigiqa.metrics.alignment import _clip
from aigiqa.metrics.alignment._common import TorchMetric, open_clip_transform, resolve_weights
from aigiqa.metrics.registry import register_metric

ARCHS = ("ViT-B-32", "ViT-L-14")


@register_metric
class CLIPScore(TorchMetric):
    """CLIPScore on a batch of (image, prompt) pairs; scores in [0, 2.5]."""

    name: ClassVar[str] = "clipscore"
    score_range: ClassVar[tuple[float, float] | None] = (0.0, 2.5)
    citation: ClassVar[str] = "Hessel et al., CLIPScore, EMNLP 2021"
    description: ClassVar[str] = "w·max(cos,0) of OpenAI CLIP image and prompt embeddings"
    defaults: ClassVar[dict[str, Any]] = {
        "model": "ViT-B-32",
        "checkpoint": "",
        "w": 2.5,
        "prefix": "A photo depicts ",
        "batch_size": 16,
    }
    #: open_clip reads a folder for ``model="local-dir:PATH"``, so ``model`` names files too.
    file_options: ClassVar[tuple[str, ...]] = ("checkpoint", "model")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        arch = self.options["model"]
        if arch not in ARCHS and not self.options["checkpoint"]:
            raise MetricError(
                f"metric 'clipscore': model={arch!r} is not one of {ARCHS} (another open_clip "
                "architecture needs checkpoint=PATH)"
            )
        self.weights = resolve_weights(
            self.name,
            self.options["checkpoint"],
            _clip.OPENAI_FILES.get(arch, _clip.OPENAI_FILES["ViT-B-32"]).name,
            [_clip.OPENAI_HUB[arch]] if arch in _clip.OPENAI_HUB else [],
            _clip.openai_cache(arch),
        )

    def _build(self) -> None:
        arch = self.options["model"]
        self.model = _clip.build_open_clip(arch, self.weights, self.name, quick_gelu=True)
        self.tokenize = _clip.tokenizer(arch)
        self.transform = open_clip_transform(self.model.visual.image_size[0])

    def _score_chunk(self, images: list[Any], prompts: list[str] | None) -> Any:
        import torch

        assert prompts is not None
        pixels = torch.stack([self.transform(im) for im in images])
        prefix = self.options["prefix"]
        if prefix and not prefix.endswith(" "):  # as the official code
            prefix += " "
        tokens = self.tokenize([prefix + p for p in prompts])
        img = torch.nn.functional.normalize(self.model.encode_image(pixels), dim=-1)
        txt = torch.nn.functional.normalize(self.model.encode_text(tokens), dim=-1)
        cos = (img * txt).sum(-1)
        return (self.options["w"] * cos.clamp(min=0)).double().numpy()
