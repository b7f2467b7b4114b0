"""BLIPScore: cosine of BLIP's projected image and text [CLS] features (higher better).

As ImageReward's ``BLIPScore`` (Xu et al. 2023, the BLIP baseline of its benchmark), with BLIP
(Li et al., "BLIP: Bootstrapping Language-Image Pre-training", ICML 2022) ViT-L pre-trained
weights ``model_large.pth``: shortest side to 224 bicubic + centre crop, OpenAI mean/std; prompt
tokenised by bert-base-uncased, ``max_length=35`` (first 33 word pieces); text encoder in
unimodal mode (no cross-attention); score = cos(vision_proj(img[CLS]), text_proj(txt[CLS])).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from aigiqa.assets import catalog
from aigiqa.metrics.alignment import _blip
from aigiqa.metrics.alignment._common import (
    open_clip_transform,
    read_state_dict,
    resolve_weights,
)
from aigiqa.metrics.registry import register_metric
from aigiqa.metrics.torch_base import TORCH_DEFAULTS, TorchMetric

FILE = catalog.entry("blip/model_large.pth")
URL = FILE.url
#: checkpoint tensors BLIPScore does not use (momentum encoders, queues, ITM head, decoder)
UNUSED = ("visual_encoder_m.", "text_encoder_m.", "vision_proj_m.", "text_proj_m.", "image_queue",
          "text_queue", "idx_queue", "ptr_queue", "queue_ptr", "itm_head.", "text_decoder.",
          "temp")


@register_metric
class BLIPScore(TorchMetric):
    """BLIPScore of (image, prompt) pairs: a cosine similarity in [−1, 1]."""

    name: ClassVar[str] = "blipscore"
    score_range: ClassVar[tuple[float, float] | None] = (-1.0, 1.0)
    citation: ClassVar[str] = "Li et al., BLIP, ICML 2022; as in Xu et al., ImageReward, 2023"
    description: ClassVar[str] = "cos of BLIP projected image and text features"
    kind: ClassVar[str] = "alignment"
    needs_prompt: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ("torch", "torchvision", "transformers", "open_clip")
    defaults: ClassVar[dict[str, Any]] = {**TORCH_DEFAULTS, "vocab": ""}
    file_options: ClassVar[tuple[str, ...]] = ("checkpoint", "vocab")
    hashed_options: ClassVar[tuple[str, ...]] = ("checkpoint", "vocab")
    _unpicklable: ClassVar[tuple[str, ...]] = ("tokenizer", "pixels")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.weights = resolve_weights(self.name, self.options["checkpoint"], FILE.name)
        self.vocab = resolve_weights(self.name, self.options["vocab"], _blip.BERT_VOCAB.name,
                                     [_blip.BERT_VOCAB_HUB])

    def weight_files(self) -> list[Path]:
        return [self.weights, self.vocab]

    def build_model(self) -> Any:
        official = read_state_dict(self.weights)
        if isinstance(official.get("model"), dict):  # BLIP saves {"model": state_dict, ...}
            official = official["model"]
        official = {k[len("blip."):] if k.startswith("blip.") else k: v
                    for k, v in official.items()}
        state = _blip.convert_state_dict(official, ("vision_proj.", "text_proj."), UNUSED,
                                         self.weights, self.name)
        from torch import nn

        proj = state["vision_proj.weight"].shape
        tproj = state["text_proj.weight"].shape
        extra = {"vision_proj": nn.Linear(proj[1], proj[0]),
                 "text_proj": nn.Linear(tproj[1], tproj[0])}
        model = _blip.build_blip(state, extra, self.weights, self.name)
        self.tokenizer = _blip.bert_tokenizer(self.vocab)
        self.pixels = open_clip_transform(model.vision.config.image_size)
        return model

    def transform(self, image: np.ndarray) -> Any:
        from PIL import Image

        return self.pixels(Image.fromarray(image))

    def forward(self, model: Any, batch: Any, prompts: list[str] | None) -> Any:
        import torch.nn.functional as F

        assert prompts is not None
        ids, mask = _blip.tokenize(self.tokenizer, prompts)
        text = model.text(input_ids=ids.to(batch.device), attention_mask=mask.to(batch.device),
                          is_decoder=False)
        txt = F.normalize(model.text_proj(text.last_hidden_state[:, 0, :]).float(), dim=-1)
        image = model.vision(pixel_values=batch).last_hidden_state
        img = F.normalize(model.vision_proj(image[:, 0, :]).float(), dim=-1)
        return (img * txt).sum(-1)
