"""BLIP (Li et al. 2022) as ImageReward and BLIPScore use it, on transformers' BLIP modules.

The official checkpoints use the original BLIP key names (``visual_encoder.blocks.0.attn.qkv``,
``text_encoder.encoder.layer.0.crossattention.self.key`` …); ``convert_state_dict`` renames them to
transformers' ``BlipVisionModel`` / ``BlipTextModel`` (the same computation: timm-style ViT with
LayerNorm eps 1e-6, BERT with cross-attention). The architecture is read from the checkpoint's
tensor shapes (head size 64, as in every BLIP model).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aigiqa.assets import catalog
from aigiqa.errors import AssetError
from aigiqa.metrics.alignment._common import HubFile, load_strict

HEAD_DIM = 64
BERT_VOCAB = catalog.entry("bert/bert-base-uncased-vocab.txt")
BERT_VOCAB_HUB = HubFile(*catalog.hub(BERT_VOCAB.name).key)

_VISION_RULES = (
    (r"^visual_encoder\.cls_token$", "vision.embeddings.class_embedding"),
    (r"^visual_encoder\.pos_embed$", "vision.embeddings.position_embedding"),
    (r"^visual_encoder\.patch_embed\.proj\.", "vision.embeddings.patch_embedding."),
    (r"^visual_encoder\.blocks\.(\d+)\.norm1\.", r"vision.encoder.layers.\1.layer_norm1."),
    (r"^visual_encoder\.blocks\.(\d+)\.norm2\.", r"vision.encoder.layers.\1.layer_norm2."),
    (r"^visual_encoder\.blocks\.(\d+)\.attn\.qkv\.", r"vision.encoder.layers.\1.self_attn.qkv."),
    (r"^visual_encoder\.blocks\.(\d+)\.attn\.proj\.",
     r"vision.encoder.layers.\1.self_attn.projection."),
    (r"^visual_encoder\.blocks\.(\d+)\.mlp\.", r"vision.encoder.layers.\1.mlp."),
    (r"^visual_encoder\.norm\.", "vision.post_layernorm."),
    (r"^text_encoder\.", "text."),
)


def rename(key: str) -> str | None:
    """Our name of an official BLIP key (``visual_encoder.*``, ``text_encoder.*``), else None."""
    for pattern, repl in _VISION_RULES:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    return None


_INVERSE_RULES = (
    (r"^vision\.embeddings\.class_embedding$", "visual_encoder.cls_token"),
    (r"^vision\.embeddings\.position_embedding$", "visual_encoder.pos_embed"),
    (r"^vision\.embeddings\.patch_embedding\.", "visual_encoder.patch_embed.proj."),
    (r"^vision\.encoder\.layers\.(\d+)\.layer_norm(\d)\.", r"visual_encoder.blocks.\1.norm\2."),
    (r"^vision\.encoder\.layers\.(\d+)\.self_attn\.projection\.",
     r"visual_encoder.blocks.\1.attn.proj."),
    (r"^vision\.encoder\.layers\.(\d+)\.self_attn\.", r"visual_encoder.blocks.\1.attn."),
    (r"^vision\.encoder\.layers\.(\d+)\.mlp\.", r"visual_encoder.blocks.\1.mlp."),
    (r"^vision\.post_layernorm\.", "visual_encoder.norm."),
    (r"^text\.", "text_encoder."),
)


def official_name(key: str) -> str:
    """The official BLIP name of one of our keys (inverse of ``rename``; others unchanged)."""
    for pattern, repl in _INVERSE_RULES:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    return key


def convert_state_dict(
    official: dict[str, Any], keep: tuple[str, ...], ignore: tuple[str, ...], path: Path,
    metric: str,
) -> dict[str, Any]:
    """Official BLIP keys → ours. ``keep``: other top-level prefixes used as they are
    (``vision_proj.`` …); ``ignore``: prefixes of tensors the metric does not use (momentum
    encoders, decoder, queues …). Any other key is an AssetError (a wrong checkpoint)."""
    out, unknown = {}, []
    for key, value in official.items():
        if key == "text_encoder.embeddings.position_ids":  # a buffer, not a weight
            continue
        new = rename(key)
        if new is None and key.startswith(keep):
            new = key
        if new is not None:
            out[new] = value
        elif not key.startswith(ignore):
            unknown.append(key)
    if unknown:
        raise AssetError(
            f"metric {metric!r}: checkpoint {path} has keys that are not BLIP's: "
            f"{', '.join(unknown[:8])}{' …' if len(unknown) > 8 else ''}"
        )
    return out


def blip_configs(state: dict[str, Any]) -> tuple[Any, Any]:
    """transformers BlipVisionConfig and BlipTextConfig inferred from (converted) tensor shapes."""
    from transformers import BlipTextConfig, BlipVisionConfig

    try:
        patch = state["vision.embeddings.patch_embedding.weight"]
        positions = state["vision.embeddings.position_embedding"].shape[1]
        width = patch.shape[0]
        vision_layers = 1 + max(int(k.split(".")[3]) for k in state
                                if k.startswith("vision.encoder.layers."))
        words = state["text.embeddings.word_embeddings.weight"]
        text_layers = 1 + max(int(k.split(".")[3]) for k in state
                              if k.startswith("text.encoder.layer."))
        cross_in = state["text.encoder.layer.0.crossattention.self.key.weight"].shape[1]
        text_ffn = state["text.encoder.layer.0.intermediate.dense.weight"].shape[0]
        max_pos = state["text.embeddings.position_embeddings.weight"].shape[0]
        vision_ffn = state["vision.encoder.layers.0.mlp.fc1.weight"].shape[0]
    except (KeyError, ValueError) as exc:
        raise AssetError(f"not a BLIP checkpoint: tensor {exc} missing") from None
    grid = int(round((positions - 1) ** 0.5))
    vision = BlipVisionConfig(
        hidden_size=width, intermediate_size=vision_ffn, num_hidden_layers=vision_layers,
        num_attention_heads=width // HEAD_DIM, image_size=grid * patch.shape[2],
        patch_size=patch.shape[2], layer_norm_eps=1e-6, hidden_act="gelu",
    )
    text = BlipTextConfig(
        vocab_size=words.shape[0], hidden_size=words.shape[1], encoder_hidden_size=cross_in,
        intermediate_size=text_ffn, num_hidden_layers=text_layers,
        num_attention_heads=words.shape[1] // HEAD_DIM, max_position_embeddings=max_pos,
        layer_norm_eps=1e-12, hidden_act="gelu", is_decoder=True,  # builds the cross-attention
        bos_token_id=None, sep_token_id=None, pad_token_id=0,
    )
    return vision, text


def build_blip(state: dict[str, Any], extra: dict[str, Any], path: Path, metric: str) -> Any:
    """A module with ``vision`` (BlipVisionModel), ``text`` (BlipTextModel) and the ``extra``
    submodules, strict-loaded from the converted ``state``; eval, float32."""
    import torch
    from transformers.models.blip.modeling_blip import BlipVisionModel
    from transformers.models.blip.modeling_blip_text import BlipTextModel

    vision_cfg, text_cfg = blip_configs(state)
    with torch.random.fork_rng():
        model = torch.nn.Module()
        model.vision = BlipVisionModel(vision_cfg)
        model.text = BlipTextModel(text_cfg, add_pooling_layer=False)
        for name, module in extra.items():
            setattr(model, name, module)
    load_strict(model, state, path, metric)
    return model.float().eval()


def bert_tokenizer(vocab: Path) -> Any:
    """BLIP's tokenizer: bert-base-uncased plus the added ``[DEC]`` (bos) and ``[ENC]`` tokens."""
    from transformers import BertTokenizer

    words = vocab.read_text(encoding="utf-8").splitlines()
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(words)})
    tok.add_special_tokens({"bos_token": "[DEC]"})
    tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tok


def tokenize(tok: Any, prompts: list[str], max_length: int = 35) -> tuple[Any, Any]:
    """ids and attention mask as ImageReward/BLIPScore call the tokenizer: ``padding='max_length',
    truncation=True, max_length=35`` ([CLS] + the first 33 word pieces + [SEP])."""
    enc = tok(prompts, padding="max_length", truncation=True, max_length=max_length,
              return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]
