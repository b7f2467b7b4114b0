"""Seeded random weights in the formats the torch metrics read, for tests (no download).

Each writer builds a model of a small or the real architecture with random weights under
``torch.manual_seed(seed)`` and saves it as the released files are saved, so a metric reads it
with ``checkpoint=PATH`` exactly as it reads the official file. Tiny open_clip architectures
are registered with open_clip under their own names (``add_model_config``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch

#: A reduced ViT-H-14-family configuration (patch 14, 224 px, GELU) for HPSv2 and CLIPScore.
TINY_VIT = "ViT-H-14-aigiqa-tiny"
TINY_VIT_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 80, "head_width": 40,
                   "patch_size": 14},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 4,
                 "layers": 2},
}
#: A reduced ModifiedResNet (CLIP RN50 family, attention pooling) for CLIP-IQA.
TINY_RN = "RN50-aigiqa-tiny"
TINY_RN_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 224, "layers": [1, 1, 1, 1], "width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 4,
                 "layers": 2},
}
#: A reduced ViT-B-32 (patch 32, 224 px, 64-wide heads) whose shapes OpenAI's ``clip.model.
#: build_model`` infers back (heads = width // 64), for the IPCE/LIQE reference check.
TINY_B32 = "ViT-B-32-aigiqa-tiny"
TINY_B32_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 128, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 2,
                 "layers": 2},
}
BERT_WORDS = "a red car on the road cat sofa tree photo of dog blue sky".split()


def register_open_clip(folder: Path, name: str, config: dict) -> str:
    """Register ``config`` with open_clip as architecture ``name``; returns the name."""
    import open_clip

    path = Path(folder) / f"{name}.json"
    path.write_text(json.dumps(config))
    open_clip.add_model_config(path)
    return name


def open_clip_file(path: Path, arch: str, seed: int, *, quick_gelu: bool = True,
                   wrapped: bool = False, logit_scale: float | None = 100.0):
    """An open_clip ``arch`` with random weights saved at ``path`` as a state dict (``wrapped``:
    ``{"state_dict": ..., "epoch": 1}``, as the HPS checkpoints); returns the model (eval)."""
    import open_clip

    torch.manual_seed(seed)
    model = open_clip.create_model(arch, pretrained=None, force_quick_gelu=quick_gelu).eval()
    if logit_scale is not None:
        with torch.no_grad():  # a visible logit scale and non-trivial similarities
            model.logit_scale.fill_(np.log(logit_scale))
    state = model.state_dict()
    torch.save({"state_dict": state, "epoch": 1} if wrapped else state, path)
    return model


def hf_clip_folder(folder: Path, seed: int):
    """A small transformers CLIPModel saved as a hub snapshot folder (config.json +
    model.safetensors), as PickScore is released; returns the model (eval)."""
    import transformers

    config = transformers.CLIPConfig(
        text_config={"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
                     "num_hidden_layers": 2, "hidden_act": "gelu", "eos_token_id": 2},
        vision_config={"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
                       "num_hidden_layers": 2, "patch_size": 14, "image_size": 224,
                       "hidden_act": "gelu"},
        projection_dim=32)
    torch.manual_seed(seed)
    model = transformers.CLIPModel(config).eval()
    model.save_pretrained(folder)
    return model


def bert_vocab(path: Path) -> Path:
    """A small BERT WordPiece vocabulary (specials, a few words, letters) at ``path``."""
    words = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(97, 123)]
    words += sorted(set(BERT_WORDS)) + letters + [f"##{c}" for c in letters] + ["!", ".", ","]
    path.write_text("\n".join(dict.fromkeys(words)) + "\n")
    return path


_BLIP_NAMES = (  # transformers' BLIP names → the official BLIP / ImageReward names
    (r"^vision\.embeddings\.class_embedding$", "visual_encoder.cls_token"),
    (r"^vision\.embeddings\.position_embedding$", "visual_encoder.pos_embed"),
    (r"^vision\.embeddings\.patch_embedding\.", "visual_encoder.patch_embed.proj."),
    (r"^vision\.encoder\.layers\.(\d+)\.layer_norm(\d)\.", r"visual_encoder.blocks.\1.norm\2."),
    (r"^vision\.encoder\.layers\.(\d+)\.self_attn\.qkv\.", r"visual_encoder.blocks.\1.attn.qkv."),
    (r"^vision\.encoder\.layers\.(\d+)\.self_attn\.projection\.",
     r"visual_encoder.blocks.\1.attn.proj."),
    (r"^vision\.encoder\.layers\.(\d+)\.mlp\.", r"visual_encoder.blocks.\1.mlp."),
    (r"^vision\.post_layernorm\.", "visual_encoder.norm."),
    (r"^text\.", "text_encoder."),
)


def official_blip_name(key: str) -> str:
    """The official BLIP name of a transformers BLIP parameter (written independently of the
    rules aigiqa's ``_blip`` converts with)."""
    for pattern, repl in _BLIP_NAMES:
        new, n = re.subn(pattern, repl, key)
        if n:
            return new
    return key


def blip_files(folder: Path, vocab: Path, seed: int) -> tuple[Path, Path]:
    """A tiny BLIP (ViT 128 wide/2 deep, BERT 128/2 with cross-attention) with random weights,
    saved under the official key names as ``ImageReward.pt`` (with the reward MLP) and
    ``model_large.pth`` (BLIP's, with tensors BLIPScore ignores) are; returns both paths."""
    from transformers import BlipTextConfig, BlipVisionConfig
    from transformers.models.blip.modeling_blip import BlipVisionModel
    from transformers.models.blip.modeling_blip_text import BlipTextModel

    n_vocab = len(vocab.read_text().splitlines()) + 2  # + [DEC], [ENC]
    torch.manual_seed(seed)
    vision = BlipVisionModel(BlipVisionConfig(
        hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=2,
        image_size=224, patch_size=16, layer_norm_eps=1e-6))
    text = BlipTextModel(BlipTextConfig(
        vocab_size=n_vocab, hidden_size=128, encoder_hidden_size=128, intermediate_size=512,
        num_hidden_layers=2, num_attention_heads=2, is_decoder=True, bos_token_id=None,
        sep_token_id=None), add_pooling_layer=False)
    blip = {official_blip_name("vision." + k): v for k, v in vision.state_dict().items()}
    blip.update({official_blip_name("text." + k): v for k, v in text.state_dict().items()})
    blip["vision_proj.weight"], blip["vision_proj.bias"] = torch.randn(32, 128), torch.randn(32)
    blip["text_proj.weight"], blip["text_proj.bias"] = torch.randn(32, 128), torch.randn(32)
    sizes = [(128, 1024), (1024, 128), (128, 64), (64, 16), (16, 1)]
    mlp = {}
    for index, (fan_in, fan_out) in zip((0, 2, 4, 6, 7), sizes, strict=True):
        mlp[f"mlp.layers.{index}.weight"] = torch.randn(fan_out, fan_in) / fan_in ** 0.5
        mlp[f"mlp.layers.{index}.bias"] = torch.randn(fan_out) * 0.1
    reward, blip_large = folder / "ImageReward.pt", folder / "model_large.pth"
    torch.save({**{f"blip.{k}": v for k, v in blip.items()}, **mlp}, reward)
    extra = {"visual_encoder_m.cls_token": torch.zeros(1), "text_queue": torch.zeros(2, 3),
             "temp": torch.tensor(0.07)}
    torch.save({"model": {**blip, **extra}, "epoch": 19}, blip_large)
    return reward, blip_large
