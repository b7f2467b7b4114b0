"""ImageReward: BLIP image-grounded text encoder + MLP head, normalised (higher better).

Xu et al., "ImageReward: Learning and Evaluating Human Preferences for Text-to-Image Generation",
NeurIPS 2023. As the official ``ImageReward.score``: BLIP ViT-L/16 at 224 px (shortest side to
224 bicubic, centre crop, OpenAI mean/std), the prompt tokenised by bert-base-uncased with
``max_length=35, truncation=True`` (first 33 word pieces kept), text encoder cross-attending to all
image tokens, the [CLS] feature through the MLP 768→1024→128→64→16→1, then
(reward − 0.16717362830052426) / 1.0333394966054072.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from aigiqa.assets import catalog
from aigiqa.metrics.alignment import _blip
from aigiqa.metrics.alignment._common import (
    HubFile,
    open_clip_transform,
    read_state_dict,
    resolve_weights,
)
from aigiqa.metrics.registry import register_metric
from aigiqa.metrics.torch_base import TORCH_DEFAULTS, TorchMetric

MEAN = 0.16717362830052426
STD = 1.0333394966054072
FILE = catalog.entry("imagereward/ImageReward.pt")
_HUB = HubFile(*catalog.hub(FILE.name).key)
#: tensors of the official checkpoint that the reward does not use
UNUSED = ("blip.vision_proj.", "blip.text_proj.")


def mlp_head(width: int) -> Any:
    """The official head: Linear/Dropout stack, keys ``layers.{0,2,4,6,7}`` (no activations)."""
    from torch import nn

    return nn.Sequential(
        nn.Linear(width, 1024), nn.Dropout(0.2), nn.Linear(1024, 128), nn.Dropout(0.2),
        nn.Linear(128, 64), nn.Dropout(0.1), nn.Linear(64, 16), nn.Linear(16, 1),
    )


@register_metric
class ImageReward(TorchMetric):
    """ImageReward of (image, prompt) pairs: a z-score-like reward, typically −2 … 2."""

    name: ClassVar[str] = "imagereward"
    citation: ClassVar[str] = "Xu et al., ImageReward, NeurIPS 2023"
    description: ClassVar[str] = "BLIP cross-attention [CLS] feature → MLP, normalised"
    kind: ClassVar[str] = "alignment"
    needs_prompt: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ("torch", "torchvision", "transformers", "open_clip")
    defaults: ClassVar[dict[str, Any]] = {**TORCH_DEFAULTS, "vocab": ""}
    file_options: ClassVar[tuple[str, ...]] = ("checkpoint", "vocab")
    hashed_options: ClassVar[tuple[str, ...]] = ("checkpoint", "vocab")
    _unpicklable: ClassVar[tuple[str, ...]] = ("tokenizer", "pixels")

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.weights = resolve_weights(self.name, self.options["checkpoint"], FILE.name, [_HUB])
        self.vocab = resolve_weights(self.name, self.options["vocab"], _blip.BERT_VOCAB.name,
                                     [_blip.BERT_VOCAB_HUB])

    def weight_files(self) -> list[Path]:
        return [self.weights, self.vocab]

    def build_model(self) -> Any:
        from torch import nn

        official = read_state_dict(self.weights)
        blip = {k[len("blip."):]: v for k, v in official.items() if k.startswith("blip.")}
        state = _blip.convert_state_dict(blip, (), ("vision_proj.", "text_proj."),
                                         self.weights, self.name)
        rest = {k: v for k, v in official.items() if not k.startswith("blip.")}
        state.update({("head." + k[len("mlp."):] if k.startswith("mlp.") else k): v
                      for k, v in rest.items()})
        width = state["text.embeddings.word_embeddings.weight"].shape[1]
        head = nn.Module()
        head.layers = mlp_head(width)
        model = _blip.build_blip(state, {"head": head}, self.weights, self.name)
        self.tokenizer = _blip.bert_tokenizer(self.vocab)
        self.pixels = open_clip_transform(model.vision.config.image_size)
        return model

    def transform(self, image: np.ndarray) -> Any:
        from PIL import Image

        return self.pixels(Image.fromarray(image))

    def forward(self, model: Any, batch: Any, prompts: list[str] | None) -> Any:
        import torch

        assert prompts is not None
        ids, mask = _blip.tokenize(self.tokenizer, prompts)
        image_embeds = model.vision(pixel_values=batch).last_hidden_state
        image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long,
                                device=image_embeds.device)
        text = model.text(input_ids=ids.to(batch.device), attention_mask=mask.to(batch.device),
                          encoder_hidden_states=image_embeds,
                          encoder_attention_mask=image_mask, is_decoder=False)
        reward = model.head.layers(text.last_hidden_state[:, 0, :])[:, 0].float()
        return (reward - MEAN) / STD
