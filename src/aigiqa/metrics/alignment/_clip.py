"""An open_clip CLIP model loaded strictly from a checkpoint, plus its tokenizer and transform."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aigiqa.assets import Asset, register_model_files
from aigiqa.metrics.alignment._common import HubFile, load_strict, read_state_dict

_OPENAI = "https://openaipublic.azureedge.net/clip/models"
_MIT = "MIT (OpenAI CLIP)"

#: OpenAI CLIP checkpoints (TorchScript archives); the sha256 is the one the official download
#: code checks (it is part of the URL).
OPENAI_FILES = {
    "RN50": Asset(
        "clip/RN50.pt",
        "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762",
        f"{_OPENAI}/afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt",
        "OpenAI CLIP RN50", _MIT),
    "ViT-B-32": Asset(
        "clip/ViT-B-32.pt",
        "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
        f"{_OPENAI}/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
        "OpenAI CLIP ViT-B/32", _MIT),
    "ViT-L-14": Asset(
        "clip/ViT-L-14.pt",
        "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
        f"{_OPENAI}/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
        "OpenAI CLIP ViT-L/14", _MIT),
}
register_model_files(*OPENAI_FILES.values())

#: The same OpenAI weights as open_clip state dicts on the hub (open_clip's own cache).
OPENAI_HUB = {
    "RN50": HubFile("timm/resnet50_clip.openai", "open_clip_pytorch_model.bin"),
    "ViT-B-32": HubFile("timm/vit_base_patch32_clip_224.openai", "open_clip_pytorch_model.bin"),
    "ViT-L-14": HubFile("timm/vit_large_patch14_clip_224.openai", "open_clip_pytorch_model.bin"),
}


def openai_cache(arch: str) -> list[Path]:
    """Where the official ``clip`` package keeps its download: ``~/.cache/clip/<arch>.pt``."""
    return [Path.home() / ".cache" / "clip" / f"{arch}.pt"]


def build_open_clip(arch: str, path: Path, metric: str, quick_gelu: bool) -> Any:
    """open_clip model ``arch`` (random init, no download), strict-loaded from ``path``, eval, fp32.

    ``quick_gelu``: True for OpenAI's weights (trained with QuickGELU), False for LAION's.
    """
    import open_clip
    import torch

    with torch.random.fork_rng():  # keep the caller's RNG stream untouched by the random init
        model = open_clip.create_model(arch, pretrained=None, force_quick_gelu=quick_gelu)
    load_strict(model, read_state_dict(path), path, metric)
    return model.float().eval()


def tokenizer(arch: str) -> Any:
    """open_clip's tokenizer for ``arch`` (the CLIP BPE vocabulary ships with open_clip).

    Prompts longer than the context (77 tokens with SOT/EOT) keep their first 75 tokens and end in
    EOT, as OpenAI's ``clip.tokenize(truncate=True)`` and open_clip do.
    """
    import open_clip

    return open_clip.get_tokenizer(arch)
