"""CLIP-IQA: softmax of CLIP similarities to an antonym prompt pair (higher better, in [0, 1]).

Wang, Chan and Loy, "Exploring CLIP for Assessing the Look and Feel of Images", AAAI 2023. As the
official ``CLIPIQAFixed`` (IceClear/CLIP-IQA): OpenAI CLIP RN50, prompts "Good photo." /
"Bad photo.", the image at its full resolution (no resize, no crop) scaled to [0, 1] and
normalised with the OpenAI mean/std, the attention pool WITHOUT its positional embedding (the
official default ``pos_embedding=False``; ``positional_embedding=True`` adds it resized bicubically
as the official option does), logits exp(logit_scale)·cos, score = softmax probability of the
positive prompt. Computed in float32 by default (the official CLIP loader may run in float16 on
GPU; ``dtype=`` chooses). Images are scored at their own size, so only images of the same size
share a forward pass, and at most :attr:`CLIPIQA.max_batch_pixels` pixels go into one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from aigiqa.errors import MetricError
from aigiqa.metrics.alignment import _clip
from aigiqa.metrics.registry import register_metric
from aigiqa.metrics.torch_base import TORCH_DEFAULTS, TorchMetric

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def attention_pool(pool: Any, x: Any, positional: bool) -> Any:
    """open_clip's ``AttentionPool2d`` on (N, C, H, W) features of any H, W → (N, D).

    ``positional``: add the positional embedding resized bicubically to (H·W + 1, C) (as the
    official CLIP-IQA option); otherwise none (the official default).
    """
    import torch
    import torch.nn.functional as F

    x = x.flatten(2).permute(2, 0, 1)  # (HW, N, C)
    x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)
    if positional:
        pos = F.interpolate(pool.positional_embedding[None, None], size=(x.shape[0], x.shape[2]),
                            mode="bicubic", align_corners=False)[0, 0]
        x = x + pos[:, None, :].to(x.dtype)
    out, _ = F.multi_head_attention_forward(
        query=x, key=x, value=x, embed_dim_to_check=x.shape[-1], num_heads=pool.num_heads,
        q_proj_weight=pool.q_proj.weight, k_proj_weight=pool.k_proj.weight,
        v_proj_weight=pool.v_proj.weight, in_proj_weight=None,
        in_proj_bias=torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
        out_proj_weight=pool.c_proj.weight, out_proj_bias=pool.c_proj.bias,
        use_separate_proj_weight=True, training=False, need_weights=False,
    )
    return out[0]


@register_metric
class CLIPIQA(TorchMetric):
    """CLIP-IQA of a batch of images (prompts are not used); scores in [0, 1]."""

    name: ClassVar[str] = "clipiqa"
    kind: ClassVar[str] = "alignment"
    needs_prompt: ClassVar[bool] = False
    score_range: ClassVar[tuple[float, float] | None] = (0.0, 1.0)
    citation: ClassVar[str] = "Wang, Chan and Loy, Exploring CLIP for Assessing the Look and Feel "\
        "of Images, AAAI 2023"
    description: ClassVar[str] = "softmax of CLIP RN50 similarity to 'Good photo.'/'Bad photo.'"
    requires: ClassVar[tuple[str, ...]] = ("torch", "torchvision", "open_clip")
    defaults: ClassVar[dict[str, Any]] = {
        **TORCH_DEFAULTS,
        "model": "RN50",
        "positive": "Good photo.",
        "negative": "Bad photo.",
        "positional_embedding": False,
    }
    #: open_clip reads a folder for ``model="local-dir:PATH"``, so ``model`` names files too.
    file_options: ClassVar[tuple[str, ...]] = ("checkpoint", "model")
    #: full-resolution input: at most 16 MPix (e.g. 16 images of 1024²) per forward pass
    max_batch_pixels: ClassVar[int | None] = 16 * 1024 * 1024
    _unpicklable: ClassVar[tuple[str, ...]] = ("text", "mean", "std")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        arch = self.options["model"]
        if not arch.startswith("RN"):
            raise MetricError(f"metric 'clipiqa': model={arch!r} is not a CLIP ResNet (RN50 …)")
        if arch not in _clip.OPENAI_FILES and not self.options["checkpoint"]:
            raise MetricError(f"metric 'clipiqa': model={arch!r} needs checkpoint=PATH")
        self.weights = _clip.openai_weights(self.name, self.options["checkpoint"], arch, "RN50")

    def weight_files(self) -> list[Path]:
        return [self.weights]

    def build_model(self) -> Any:
        import torch

        arch = self.options["model"]
        model = _clip.build_open_clip(arch, self.weights, self.name, quick_gelu=True)
        tokens = _clip.tokenizer(arch)([self.options["positive"], self.options["negative"]])
        with torch.inference_mode():
            text = model.encode_text(tokens)
        self.text = torch.nn.functional.normalize(text, dim=-1)
        self.mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(STD).view(1, 3, 1, 1)
        return model

    def on_device(self, device: Any) -> None:
        self.text = self.text.to(device)

    def batch_group(self, image: np.ndarray) -> tuple:
        return tuple(image.shape[:2])  # full resolution: only equal sizes stack

    def transform(self, image: np.ndarray) -> Any:
        import torch

        h, w = image.shape[:2]
        if min(h, w) < 32:
            raise MetricError(
                f"metric 'clipiqa': an image of {w}x{h} pixels is too small; the CLIP ResNet "
                "needs at least 32x32 (images are scored at full size)"
            )
        return torch.from_numpy(image.astype(np.float32) / 255.0)  # (H, W, 3) in [0, 1]

    def collate(self, items: Any) -> Any:
        """Normalised (N, 3, H, W) pixels, stored channels-last (N, H, W, 3) as the images are:
        the CPU convolutions of the ResNet run fastest on that layout."""
        import torch

        x = torch.stack(list(items)).permute(0, 3, 1, 2)
        return (x - self.mean) / self.std

    def encode_image(self, pixels: Any, model: Any = None) -> Any:
        """Image features (N, D) of normalised pixels (N, 3, H, W) of any size ≥ 32."""
        visual = (self.model if model is None else model).visual
        x = visual.stem(pixels)
        x = visual.layer4(visual.layer3(visual.layer2(visual.layer1(x))))
        return attention_pool(visual.attnpool, x, self.options["positional_embedding"])

    def forward(self, model: Any, batch: Any, prompts: list[str] | None) -> Any:
        import torch

        img = torch.nn.functional.normalize(self.encode_image(batch, model), dim=-1)
        logits = model.logit_scale.exp() * img @ self.text.T.to(img.dtype)
        return logits.float().softmax(dim=-1)[:, 0]
