"""PickScore: exp(logit_scale) · cos(image, prompt) of the PickScore_v1 CLIP-H (higher better).

Kirstain et al., "Pick-a-Pic: An Open Dataset of User Preferences for Text-to-Image Generation",
NeurIPS 2023. As the official inference snippet: transformers ``CLIPModel`` (weights
``yuvalkirstain/PickScore_v1``), the ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` processor (shortest
side to 224 bicubic with PIL, centre crop 224, OpenAI mean/std; the PIL processor, as in 2023) and
its CLIP tokenizer with ``truncation=True, max_length=77`` (first 75 prompt tokens kept). The token
ids come from open_clip's copy of the same BPE vocabulary (no tokenizer download).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from aigiqa.assets import catalog
from aigiqa.errors import AssetError
from aigiqa.metrics.alignment._common import (
    HubFile,
    load_strict,
    read_state_dict,
    resolve_weights,
)
from aigiqa.metrics.registry import register_metric
from aigiqa.metrics.torch_base import TORCH_DEFAULTS, TorchMetric

FILE = catalog.entry("pickscore/model.safetensors")
REPO = catalog.hub(FILE.name).repo
#: the hub copies looked for in the Hugging Face cache: the catalog's file, then the pickle
_HUB = [HubFile(*catalog.hub(FILE.name).key), HubFile(REPO, "pytorch_model.bin")]


def clip_h_config() -> Any:
    """The transformers ``CLIPConfig`` of PickScore_v1 (CLIP ViT-H/14, as LAION's conversion)."""
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config={
            "hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16,
            "num_hidden_layers": 24, "hidden_act": "gelu", "max_position_embeddings": 77,
            "vocab_size": 49408, "eos_token_id": 2, "bos_token_id": 0, "pad_token_id": 1,
        },
        vision_config={
            "hidden_size": 1280, "intermediate_size": 5120, "num_attention_heads": 16,
            "num_hidden_layers": 32, "patch_size": 14, "image_size": 224, "hidden_act": "gelu",
        },
        projection_dim=1024,
    )


def build_clip_model(weights: Path, metric: str) -> Any:
    """A transformers CLIPModel strict-loaded from a weight file or a saved model folder."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    config_file, weights = model_files(weights, metric)
    config = CLIPConfig.from_pretrained(config_file.parent) if config_file else clip_h_config()
    state = read_state_dict(weights)
    state.pop("text_model.embeddings.position_ids", None)  # a buffer older exports saved
    state.pop("vision_model.embeddings.position_ids", None)
    with torch.device("meta"):  # check names and shapes before paying for a 1B-parameter init
        load_strict(CLIPModel(config), state, weights, metric, assign=True)
    with torch.random.fork_rng():
        model = CLIPModel(config)
    load_strict(model, state, weights, metric)
    return model.float().eval()


def model_files(weights: Path, metric: str) -> tuple[Path | None, Path]:
    """(config.json or None for the CLIP-H config, weight file) of a weight file or a saved model
    folder (a hub snapshot keeps config.json beside the weights)."""
    if weights.is_dir():
        found = [f for f in (weights / "model.safetensors", weights / "pytorch_model.bin")
                 if f.is_file()]
        if not found:
            raise AssetError(f"metric {metric!r}: {weights} holds no model.safetensors")
        return weights / "config.json", found[0]
    config_file = weights.parent / "config.json"
    return (config_file if config_file.is_file() else None), weights


def clip_token_ids(prompts: list[str], context: int = 77) -> tuple[Any, Any]:
    """Token ids (N, context) and attention mask of ``prompts``, as CLIPTokenizer with
    ``truncation=True, max_length=context`` gives them (padding after EOT is masked out)."""
    import torch

    ids = _clip_tokenizer()(prompts, context_length=context)
    eot = ids.argmax(dim=-1, keepdim=True)
    mask = (torch.arange(context)[None, :] <= eot).long()
    return ids, mask


@functools.cache
def _clip_tokenizer() -> Any:
    """open_clip's CLIP BPE tokenizer (built once: it reads the vocabulary file)."""
    import open_clip

    return open_clip.get_tokenizer("ViT-H-14")


@register_metric
class PickScore(TorchMetric):
    """PickScore of (image, prompt) pairs: 100·cos for the released model, typically 18-23."""

    name: ClassVar[str] = "pickscore"
    score_range: ClassVar[tuple[float, float] | None] = None
    citation: ClassVar[str] = "Kirstain et al., Pick-a-Pic, NeurIPS 2023"
    description: ClassVar[str] = "logit_scale·cos of the PickScore_v1 CLIP-H embeddings"
    kind: ClassVar[str] = "alignment"
    needs_prompt: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ("torch", "transformers", "open_clip")
    defaults: ClassVar[dict[str, Any]] = dict(TORCH_DEFAULTS)
    file_options: ClassVar[tuple[str, ...]] = ("checkpoint",)
    _unpicklable: ClassVar[tuple[str, ...]] = ("processor",)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.weights = resolve_weights(self.name, self.options["checkpoint"], FILE.name, _HUB)

    def weight_files(self) -> list[Path]:
        config, weights = model_files(self.weights, self.name)
        return [f for f in (config, weights) if f is not None]

    def build_model(self) -> Any:
        from transformers import CLIPImageProcessorPil

        model = build_clip_model(self.weights, self.name)
        size = model.config.vision_config.image_size
        self.processor = CLIPImageProcessorPil(
            size={"shortest_edge": size}, crop_size={"height": size, "width": size}, resample=3
        )
        return model

    def transform(self, image: np.ndarray) -> Any:
        from PIL import Image

        return self.processor(images=[Image.fromarray(image)],
                              return_tensors="pt")["pixel_values"][0]

    def forward(self, model: Any, batch: Any, prompts: list[str] | None) -> Any:
        import torch

        assert prompts is not None
        ids, mask = clip_token_ids(prompts, model.config.text_config.max_position_embeddings)
        img = _features(model.get_image_features(pixel_values=batch)).float()
        txt = _features(model.get_text_features(input_ids=ids.to(batch.device),
                                                attention_mask=mask.to(batch.device))).float()
        cos = (torch.nn.functional.normalize(img, dim=-1)
               * torch.nn.functional.normalize(txt, dim=-1)).sum(-1)
        return model.logit_scale.exp() * cos


def _features(out: Any) -> Any:
    """transformers 5 returns a model output from ``get_*_features``; older ones a tensor."""
    return out if not hasattr(out, "pooler_output") else out.pooler_output
